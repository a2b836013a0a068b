#include "agent/workspace.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "tests/agent/test_util.h"
#include "tests/testing/status_matchers.h"

namespace farm::agent {
namespace {

namespace fs = std::filesystem;
using ::farm::agent::testing::TempDir;
using ::farm::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(WorkspaceTest, CreatesAFreshDirectoryPerAttemptAndRemovesIt) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(Workspace a, Workspace::Create(dir.path(), "job-7", 2));
  ASSERT_OK_AND_ASSIGN(Workspace b, Workspace::Create(dir.path(), "job-7", 2));
  EXPECT_NE(a.path(), b.path());
  EXPECT_THAT(a.path(), StartsWith(dir.path() + "/job-7-2-"));
  EXPECT_TRUE(fs::is_directory(a.path()));
  EXPECT_TRUE(fs::is_empty(a.path()));

  fs::create_directories(a.path() + "/out/deep");
  std::ofstream(a.path() + "/out/deep/file.txt") << "data";
  ASSERT_OK(a.Remove());
  EXPECT_FALSE(fs::exists(a.path()));
  EXPECT_TRUE(fs::exists(b.path()));
}

TEST(WorkspaceTest, JobIdCannotEscapeTheWorkDir) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(Workspace w, Workspace::Create(dir.path(), "../../etc/x", 1));
  EXPECT_EQ(fs::path(w.path()).parent_path(), fs::path(dir.path()));
  EXPECT_THAT(fs::path(w.path()).filename().string(), StartsWith(".._.._etc_x-1-"));
  ASSERT_OK(w.Remove());
}

TEST(WorkspaceTest, RemovesReadOnlyTrees) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(Workspace w, Workspace::Create(dir.path(), "j", 1));
  fs::create_directories(w.path() + "/cache/pkg");
  std::ofstream(w.path() + "/cache/pkg/mod.go") << "package x";
  ::chmod((w.path() + "/cache/pkg").c_str(), 0555);
  ::chmod((w.path() + "/cache").c_str(), 0555);
  ASSERT_OK(w.Remove());
  EXPECT_FALSE(fs::exists(w.path()));
}

TEST(WorkspaceTest, MissingWorkDirIsAnError) {
  TempDir dir;
  absl::StatusOr<Workspace> w = Workspace::Create(dir.path() + "/missing", "j", 1);
  EXPECT_THAT(w, StatusIs(absl::StatusCode::kInternal));
  EXPECT_THAT(std::string(w.status().message()), HasSubstr("cannot create workspace"));
}

}  // namespace
}  // namespace farm::agent
