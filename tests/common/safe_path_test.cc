// common/safe_path: the path checker's rules one by one, messages that never echo raw control
// bytes, and the walks beneath a root (links followed only inside, "..", loops, creation),
// reading without following or blocking, and removal that never follows a link.
#include "common/safe_path.h"

#include <dirent.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/text.h"
#include "tests/testing/status_matchers.h"

namespace farm::common {
namespace {

namespace fs = std::filesystem;
using ::farm::testing::StatusIs;
using ::farm::testing::StatusIsWithMessage;
using ::testing::HasSubstr;
using ::testing::Not;

// A plain path of exactly `bytes` bytes, in components of 100.
std::string LongPath(int bytes) {
  std::string path;
  while (static_cast<int>(path.size()) + 100 < bytes) path += std::string(99, 'x') + "/";
  return path + std::string(static_cast<size_t>(bytes) - path.size(), 'y');
}

TEST(CheckRelativePathTest, AcceptsPlainRelativePaths) {
  for (const std::string& path : std::vector<std::string>{
           "a", "out/app", "dist/x/y/z/c.tar.gz", ".hidden", "a/.b/c", "..a", "a..", "...",
           "with space", "ünïcödé/日本語", "emoji/\xf0\x9f\x98\x80", std::string(255, 'n'),
           LongPath(kMaxRelativePathBytes)}) {
    EXPECT_TRUE(CheckRelativePath(path).ok()) << Quote(path);
  }
}

TEST(CheckRelativePathTest, RefusesEachRuleWithAMessageSayingWhich) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"", "is empty"},
      {LongPath(kMaxRelativePathBytes + 1), "the limit is 4096"},
      {"/etc/passwd", "absolute path"},
      {"/", "absolute path"},
      {"..", "\"..\" component"},
      {"../x", "\"..\" component"},
      {"a/../../x", "\"..\" component"},
      {"a/..", "\"..\" component"},
      {".", "\".\" component"},
      {"./a", "\".\" component"},
      {"a//b", "empty component"},
      {"a/", "empty component"},
      {std::string("a\0b", 3), "NUL byte"},
      {"a\nb", "control character"},
      {"a\tb", "control character"},
      {"a\x1b[31mb", "control character"},
      {"a\x7f", "control character"},
      {"a\xc2\x85", "control character"},  // U+0085 (NEL), a C1 control
      {"a\xc2\x9b", "control character"},  // U+009B (CSI)
      {"\xff", "not valid UTF-8"},
      {"a\xc3", "not valid UTF-8"},              // cut short
      {"a\xc0\xaf", "not valid UTF-8"},          // overlong '/'
      {"a\xe0\x80\xaf", "not valid UTF-8"},      // overlong '/'
      {"a\xed\xa0\x80", "not valid UTF-8"},      // a surrogate
      {"a\xf4\x90\x80\x80", "not valid UTF-8"},  // beyond U+10FFFF
      {"a/" + std::string(kMaxPathComponentBytes + 1, 'n'), "the limit is 255"},
  };
  for (const auto& [path, why] : bad) {
    EXPECT_THAT(CheckRelativePath(path),
                StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr(why)))
        << Quote(path);
  }
}

TEST(CheckRelativePathTest, AComponentHasNoSlash) {
  EXPECT_OK(CheckPathComponent("name.txt"));
  EXPECT_THAT(CheckPathComponent("a/b"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(CheckPathComponent(".."), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(CheckRelativePathTest, ARefusalEchoesThePathEscaped) {
  // The message of a refusal echoes the escaped form only.
  const absl::Status s = CheckRelativePath("a\x1b]0;pwned\x07");
  EXPECT_THAT(std::string(s.message()), Not(HasSubstr("\x1b")));
}

class WalkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "safe_path.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    base_ = tmpl;
    fs::create_directories(base_ + "/root/real/deep");
    fs::create_directories(base_ + "/outside");
    std::ofstream(base_ + "/root/real/deep/f") << "inside";
    std::ofstream(base_ + "/outside/f") << "outside";
    ASSERT_OK_AND_ASSIGN(BeneathRoot root, BeneathRoot::Open(base_ + "/root", "the root"));
    root_ = std::make_unique<BeneathRoot>(std::move(root));
  }
  void TearDown() override {
    root_.reset();
    std::error_code ec;
    fs::remove_all(base_, ec);
  }
  std::string In(const std::string& relative) const { return base_ + "/root/" + relative; }

  std::string base_;
  std::unique_ptr<BeneathRoot> root_;
};

TEST_F(WalkTest, FollowsLinksOnlyWhileTheyStayInside) {
  fs::create_symlink("real/deep", In("rel"));
  fs::create_symlink(In("real"), In("abs"));  // absolute, but naming a path inside
  fs::create_symlink("../outside", In("up"));
  fs::create_symlink(base_ + "/outside", In("away"));
  ASSERT_OK_AND_ASSIGN(WalkEnd end, WalkBeneath(*root_, "rel/f"));
  EXPECT_EQ(end.resolved, "real/deep/f");
  EXPECT_TRUE(end.exists && S_ISREG(end.st.st_mode));
  ASSERT_OK_AND_ASSIGN(end, WalkBeneath(*root_, "abs/deep/../deep/f"));
  EXPECT_EQ(end.resolved, "real/deep/f");
  EXPECT_THAT(WalkBeneath(*root_, "up/f"),
              StatusIsWithMessage(absl::StatusCode::kPermissionDenied,
                                  HasSubstr("\"up\" is a symbolic link leading outside the root")));
  EXPECT_THAT(WalkBeneath(*root_, "away/f"), StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(WalkBeneath(*root_, "../outside/f"), StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(WalkBeneath(*root_, "rel/f", {.follow_links = false}),
              StatusIsWithMessage(absl::StatusCode::kPermissionDenied,
                                  HasSubstr("\"rel\" is a symbolic link")));
}

TEST_F(WalkTest, LoopsMissingDirectoriesAndFilesOnTheWay) {
  fs::create_symlink("b", In("a"));
  fs::create_symlink("a", In("b"));
  EXPECT_THAT(WalkBeneath(*root_, "a"),
              StatusIsWithMessage(absl::StatusCode::kFailedPrecondition, HasSubstr("a loop?")));
  EXPECT_THAT(WalkBeneath(*root_, "missing/x"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(
      WalkBeneath(*root_, "real/deep/f/x"),
      StatusIsWithMessage(absl::StatusCode::kFailedPrecondition, HasSubstr("is not a directory")));
  ASSERT_OK_AND_ASSIGN(WalkEnd end, WalkBeneath(*root_, "real/missing"));
  EXPECT_FALSE(end.exists);
  EXPECT_EQ(end.name, "missing");
  ASSERT_OK_AND_ASSIGN(end, WalkBeneath(*root_, ""));
  EXPECT_EQ(end.name, "");
  EXPECT_TRUE(end.exists && S_ISDIR(end.st.st_mode));
}

// Listing the root through one descriptor must not use up another listing's entries (a dup'd
// descriptor shares the directory offset).
TEST_F(WalkTest, EachOpenedRootListsFromTheStart) {
  auto count = [](UniqueFd fd) {
    DIR* dir = ::fdopendir(fd.Release());
    int n = 0;
    while (::readdir(dir) != nullptr) ++n;
    ::closedir(dir);
    return n;
  };
  ASSERT_OK_AND_ASSIGN(UniqueFd first, OpenDirBeneath(*root_, ""));
  ASSERT_OK_AND_ASSIGN(UniqueFd second, OpenDirBeneath(*root_, ""));
  const int entries = count(std::move(first));
  EXPECT_GT(entries, 2);  // ".", ".." and "real"
  EXPECT_EQ(count(std::move(second)), entries);
}

TEST_F(WalkTest, CreatesDirectoriesBeneathTheRootOnly) {
  ASSERT_OK(OpenDirBeneath(*root_, "new/a/b", {.create_dirs = true}).status());
  EXPECT_TRUE(fs::is_directory(In("new/a/b")));
  fs::create_symlink(base_ + "/outside", In("away"));
  EXPECT_THAT(OpenDirBeneath(*root_, "away/x/y", {.create_dirs = true}),
              StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_FALSE(fs::exists(base_ + "/outside/x"));
}

TEST_F(WalkTest, OpensOnlyRegularFilesWithoutBlocking) {
  ASSERT_EQ(::mkfifo(In("fifo").c_str(), 0644), 0);
  fs::create_symlink("real/deep/f", In("link"));
  UniqueFd dir(::open(In("").c_str(), O_RDONLY | O_DIRECTORY));
  EXPECT_THAT(
      OpenRegularFileAt(dir.get(), "fifo", "fifo"),
      StatusIsWithMessage(absl::StatusCode::kFailedPrecondition, HasSubstr("not a regular file")));
  EXPECT_THAT(OpenRegularFileAt(dir.get(), "link", "link"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(OpenRegularFileAt(dir.get(), "real", "real"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  struct stat other;
  ASSERT_EQ(::stat((base_ + "/outside/f").c_str(), &other), 0);
  UniqueFd deep(::open(In("real/deep").c_str(), O_RDONLY | O_DIRECTORY));
  ASSERT_OK(OpenRegularFileAt(deep.get(), "f", "f").status());
  EXPECT_THAT(OpenRegularFileAt(deep.get(), "f", "f", &other),
              StatusIsWithMessage(absl::StatusCode::kFailedPrecondition, HasSubstr("changed")));
}

TEST_F(WalkTest, CreateFileAtNeverFollowsAPlantedLink) {
  fs::create_symlink(base_ + "/outside/f", In("planted"));
  fs::create_symlink(base_ + "/outside/new", In("dangling"));
  UniqueFd dir(::open(In("").c_str(), O_RDONLY | O_DIRECTORY));
  EXPECT_THAT(CreateFileAt(dir.get(), "planted", 0644, "planted"),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(CreateFileAt(dir.get(), "dangling", 0644, "dangling"),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_FALSE(fs::exists(base_ + "/outside/new"));
  ASSERT_OK(CreateFileAt(dir.get(), "fresh", 0644, "fresh").status());
}

TEST_F(WalkTest, RemoveTreeAtRemovesLinksNotTheirTargets) {
  fs::create_symlink(base_ + "/outside", In("real/away"));
  fs::create_symlink(base_ + "/outside/f", In("real/deep/file-link"));
  ::chmod(In("real/deep").c_str(), 0555);
  ::chmod(In("real").c_str(), 0);
  UniqueFd base(::open(base_.c_str(), O_RDONLY | O_DIRECTORY));
  ASSERT_OK(RemoveTreeAt(base.get(), "root", "root"));
  EXPECT_FALSE(fs::exists(base_ + "/root"));
  EXPECT_TRUE(fs::exists(base_ + "/outside/f"));
  EXPECT_OK(RemoveTreeAt(base.get(), "root", "root"));  // gone already: fine
}

}  // namespace
}  // namespace farm::common
