// Hostile paths (issue 12), artifact collection and upload: workspaces prepared by a step that
// wants the agent to read outside them. Every row of the table is one named test: what is
// planted in the workspace, the globs, and the refusal expected. Each row also proves that
// nothing outside was read (the canary's content is in no collected digest and not in the CAS,
// and its access time did not move) and nothing outside was changed. Input staging, farmctl's
// download and the setsid race are in hostile_io_test.cc.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "agent/artifacts.h"
#include "agent/workspace.h"
#include "common/cas_client.h"
#include "common/channel.h"
#include "common/digest.h"
#include "common/status_macros.h"
#include "tests/agent/hostile_env.h"
#include "tests/common/fake_cas.h"
#include "tests/testing/status_matchers.h"

namespace farm::agent {
namespace {

namespace fs = std::filesystem;
using namespace ::farm::agent::testing;  // NOLINT: the hostile environment's vocabulary
using ::farm::testing::FakeCas;
using ::farm::testing::StatusIsWithMessage;
using ::testing::Contains;
using ::testing::HasSubstr;
using Change = std::function<void(const Env&)>;
using Code = absl::StatusCode;

struct CollectCase {
  std::string name;
  std::vector<Plant> plants;
  std::vector<std::string> globs;
  // The collection's status (find, hash, upload). OK when the entry is skipped: `text` is then
  // in a note of ArtifactMatches::skipped ("" for none: nothing matched). Else `text` is in the
  // error.
  Code code;
  std::string text;
  Change after_find = nullptr;  // a change between finding and hashing (a race, made certain)
  Change after_hash = nullptr;  // ... between hashing and uploading
};

CollectCase Row(std::string name, std::vector<Plant> plants, std::vector<std::string> globs,
                Code code, std::string text, Change after_find = nullptr,
                Change after_hash = nullptr) {
  return {std::move(name), std::move(plants),     std::move(globs),     code,
          std::move(text), std::move(after_find), std::move(after_hash)};
}

const std::string kOut = "a symbolic link to a path outside the workspace";

std::vector<CollectCase> GlobAndLinkCases() {
  return {
      Row("GlobAbsolute", {}, {"/etc/passwd"}, Code::kInvalidArgument, "absolute path"),
      Row("GlobDotDot", {}, {"../outside/secret"}, Code::kInvalidArgument, "\"..\""),
      Row("GlobDotDotInside", {}, {"out/../../outside/*"}, Code::kInvalidArgument, "\"..\""),
      Row("LinkAbsoluteToFile", {Symlink("$OUT/secret", "out/s")}, {"out/*"}, Code::kOk,
          "out/s: " + kOut),
      Row("LinkRelativeToFile", {Symlink("../../outside/secret", "out/s")}, {"out/s"}, Code::kOk,
          "out/s: " + kOut),
      Row("LinkToEtcPasswd", {Symlink("/etc/passwd", "out/passwd")}, {"out/**"}, Code::kOk,
          "out/passwd: " + kOut),
      Row("LinkedDirectoryAbsolute", {Symlink("$OUT", "out")}, {"out/secret"}, Code::kOk,
          "out: " + kOut),
      Row("LinkedDirectoryRelative", {Symlink("../outside", "out")}, {"out/*"}, Code::kOk,
          "out: " + kOut),
      Row("LinkedParentDeep", {Symlink("$OUT/sub", "a/b")}, {"a/b/secret"}, Code::kOk,
          "a/b: " + kOut),
      Row("LinkChainLeaving", {Symlink("y", "out/x"), Symlink("../../outside/secret", "out/y")},
          {"out/x"}, Code::kOk, "out/x: " + kOut),
      Row("LinkInsideThenUp", {File("in/keep"), Symlink("../in/../../outside/secret", "out/x")},
          {"out/x"}, Code::kOk, "out/x: " + kOut),
      Row("LinkToParentOfWorkspace", {Symlink("../..", "out/up")}, {"out/up/outside/secret"},
          Code::kOk, "out/up: " + kOut),
      Row("LinkThroughProc", {Symlink("/proc/self/root$OUT/secret", "out/p")}, {"out/p"}, Code::kOk,
          "out/p: " + kOut),
      Row("LinkLoop", {Symlink("l2", "out/l1"), Symlink("l1", "out/l2")}, {"out/l1"}, Code::kOk,
          "symbolic links (a loop?)"),
      Row("LinkToDevice", {Symlink("/dev/zero", "out/zero")}, {"out/zero"}, Code::kOk,
          "out/zero: " + kOut),
      Row("DoubleStarDoesNotEnterALinkedDirectory", {Symlink("$OUT", "o")}, {"**/secret"},
          Code::kOk, ""),
      Row("StarMatchesALinkedDirectory", {Symlink("$OUT", "o")}, {"*"}, Code::kOk, "o: " + kOut),
  };
}

std::vector<CollectCase> FileKindAndNameCases() {
  return {
      // A FIFO nobody writes to: opening it for reading would block the agent for ever.
      Row("Fifo", {Fifo("out/fifo")}, {"out/*"}, Code::kOk, "out/fifo: not a regular file"),
      Row("FifoNamedLiterally", {Fifo("out/fifo")}, {"out/fifo"}, Code::kOk,
          "out/fifo: not a regular file"),
      Row("UnixSocket", {Socket("out/sock")}, {"out/**"}, Code::kOk,
          "out/sock: not a regular file"),
      Row("ControlCharacterInName", {File("out/bad\x1b[2Jname")}, {"out/*"}, Code::kInvalidArgument,
          "contains a control character"),
      Row("NewlineInName", {File("out/a\nb")}, {"out/**"}, Code::kInvalidArgument,
          "contains a control character"),
      Row("C1ControlInName",
          {File("out/\xc2\x9b"
                "31m")},
          {"out/*"}, Code::kInvalidArgument, "contains a control character"),
      Row("InvalidUtf8Name", {File("out/\xff\xfe")}, {"out/*"}, Code::kInvalidArgument,
          "is not valid UTF-8"),
      Row("ControlCharacterInDirectory", {File("out/d\x07/f")}, {"out/**"}, Code::kInvalidArgument,
          "contains a control character"),
      Row("DirectoryPathOverTheLimitIsNotSearched", {TooLongDir()}, {"**"}, Code::kOk,
          "not searched: the path is 4266 bytes; the limit is 4096"),
      Row("FilePathOverTheLimit", {TooLongFile()}, {"**"}, Code::kInvalidArgument,
          "the path is 4216 bytes; the limit is 4096"),
  };
}

std::vector<CollectCase> SwapCases() {
  const Change swap_dir = [](const Env& e) {
    fs::rename(e.In("d"), e.In("d.real"));
    fs::create_symlink(e.outside, e.In("d"));
  };
  const Change swap_file = [](const Env& e) {
    fs::remove(e.In("d/secret"));
    fs::create_symlink(e.outside + "/secret", e.In("d/secret"));
  };
  const Change fifo_for_file = [](const Env& e) {
    fs::remove(e.In("d/secret"));
    MakeFifo(e.In("d/secret"));
  };
  const Change hard_link_for_file = [](const Env& e) {
    fs::remove(e.In("d/secret"));
    fs::create_hard_link(e.outside + "/secret", e.In("d/secret"));
  };
  const std::vector<Plant> d = {File("d/secret")};
  const std::string link = "\"d\" is a symbolic link";
  return {
      Row("DirectorySwappedForALinkBeforeHashing", d, {"d/*"}, Code::kPermissionDenied, link,
          swap_dir),
      Row("DirectorySwappedForALinkBeforeUploading", d, {"d/*"}, Code::kPermissionDenied, link,
          nullptr, swap_dir),
      Row("FileSwappedForALinkBeforeHashing", d, {"d/secret"}, Code::kFailedPrecondition,
          "not a regular file", swap_file),
      Row("FileSwappedForALinkBeforeUploading", d, {"d/secret"}, Code::kFailedPrecondition,
          "not a regular file", nullptr, swap_file),
      Row("FileSwappedForAFifoBeforeHashing", d, {"d/secret"}, Code::kFailedPrecondition,
          "not a regular file", fifo_for_file),
      Row("FileSwappedForAHardLinkToTheCanaryBeforeHashing", d, {"d/secret"},
          Code::kFailedPrecondition, "changed while being read", hard_link_for_file),
      // Run below with the workspace opened first, as the agent does.
      Row("WorkspaceSwappedForALinkAfterItWasOpened", {}, {"secret", "sub/secret"}, Code::kOk, ""),
  };
}

std::vector<CollectCase> AllCollectCases() {
  std::vector<CollectCase> all = GlobAndLinkCases();
  for (auto* more : {&FileKindAndNameCases, &SwapCases}) {
    for (CollectCase& c : more()) all.push_back(std::move(c));
  }
  return all;
}

class CollectHostileTest : public ::testing::TestWithParam<CollectCase> {
 protected:
  void SetUp() override {
    address_ = cas_.Start();
    ASSERT_FALSE(address_.empty());
    ASSERT_FALSE(env_.base.empty());
  }

  // Find, hash, upload, with the row's changes in between.
  absl::Status Collect(const CollectCase& c, ArtifactMatches* matches) {
    FARM_ASSIGN_OR_RETURN(*matches, FindArtifacts(env_.ws, c.globs));
    if (c.after_find) c.after_find(env_);
    FARM_RETURN_IF_ERROR(HashArtifacts(*matches));
    if (c.after_hash) c.after_hash(env_);
    FARM_ASSIGN_OR_RETURN(auto channel, common::MakeChannel(address_));
    common::CasClient client(channel);
    return UploadArtifacts(client, *matches, nullptr).status();
  }

  // The agent's way: the workspace is opened when it is created; then a step moves it away and
  // leaves a link to the outside (which has a secret and a sub/secret) in its place.
  absl::Status CollectFromAMovedWorkspace(const CollectCase& c, ArtifactMatches* matches) {
    FARM_ASSIGN_OR_RETURN(Workspace workspace, Workspace::Create(env_.base, "job", 1));
    fs::rename(workspace.path(), env_.base + "/moved");
    fs::create_symlink(env_.outside, workspace.path());
    FARM_ASSIGN_OR_RETURN(*matches, FindArtifacts(workspace.root(), c.globs));
    EXPECT_EQ(matches->empty_globs, c.globs);
    return HashArtifacts(*matches);
  }

  FakeCas cas_;
  std::string address_;
  Env env_;
};

TEST_P(CollectHostileTest, IsRefusedAndNothingOutsideIsRead) {
  const CollectCase& c = GetParam();
  PlantAll(env_, c.plants);
  if (HasFatalFailure()) return;
  const std::map<std::string, std::string> before = Snapshot(env_.outside);
  const std::map<std::string, int64_t> armed = ArmAccessTimes(env_);

  ArtifactMatches matches;
  const absl::Status status = c.name == "WorkspaceSwappedForALinkAfterItWasOpened"
                                  ? CollectFromAMovedWorkspace(c, &matches)
                                  : Collect(c, &matches);
  if (c.code == Code::kOk) {
    ASSERT_OK(status);
    if (c.text.empty()) {
      EXPECT_TRUE(matches.files.empty());
    } else {
      EXPECT_THAT(matches.skipped, Contains(HasSubstr(c.text)));
    }
  } else {
    EXPECT_THAT(status, StatusIsWithMessage(c.code, HasSubstr(c.text)));
  }
  for (const ArtifactFile& file : matches.files) {
    EXPECT_NE(file.digest, common::DigestOf(kCanary)) << file.path;
  }
  EXPECT_FALSE(cas_.Has(common::DigestOf(kCanary).ToString()));
  EXPECT_EQ(AccessTimes(env_), armed) << "a canary file outside the workspace was read";
  EXPECT_EQ(Snapshot(env_.outside), before);
}

std::string RowName(const ::testing::TestParamInfo<CollectCase>& info) { return info.param.name; }

INSTANTIATE_TEST_SUITE_P(Table, CollectHostileTest, ::testing::ValuesIn(AllCollectCases()),
                         RowName);

TEST(CollectHostileTableTest, HasAtLeastThirtyRows) { EXPECT_GE(AllCollectCases().size(), 30u); }

// A device node (when this process may make one): skipped, never opened. It has /dev/null's
// numbers: read, it would become an empty artifact.
TEST(CollectHostileDeviceTest, ADeviceNodeIsSkippedAndNeverOpened) {
  Env env;
  fs::create_directories(env.In("out"));
  if (::mknod(env.In("out/null").c_str(), S_IFCHR | 0666, makedev(1, 3)) != 0) {
    GTEST_SKIP() << "cannot make a device node here: " << std::strerror(errno);
  }
  ASSERT_OK_AND_ASSIGN(ArtifactMatches m, FindArtifacts(env.ws, {"out/*"}));
  EXPECT_TRUE(m.files.empty());
  EXPECT_THAT(m.skipped, Contains(HasSubstr("out/null: not a regular file")));
}

}  // namespace
}  // namespace farm::agent
