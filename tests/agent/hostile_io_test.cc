// Hostile paths (issue 12), writing: input staging into a workspace where links were planted,
// and farmctl's download into a DIR prepared to lead it outside, from untrusted recorded paths.
// Every row is one named test and proves the outside directory unchanged. And the race: a
// background process in its own session keeps swapping a directory with a link to the outside
// while artifact collection runs again and again.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent/artifacts.h"
#include "agent/blob_cache.h"
#include "agent/inputs.h"
#include "agent/workspace.h"
#include "common/cas_client.h"
#include "common/channel.h"
#include "common/digest.h"
#include "common/status_macros.h"
#include "coordinator/cli/download.h"
#include "tests/agent/hostile_env.h"
#include "tests/common/fake_cas.h"
#include "tests/testing/status_matchers.h"

namespace farm::agent {
namespace {

namespace fs = std::filesystem;
using namespace ::farm::agent::testing;  // NOLINT: the hostile environment's vocabulary
using ::farm::testing::FakeCas;
using ::farm::testing::StatusIsWithMessage;
using ::testing::HasSubstr;
using Code = absl::StatusCode;

// ---- input staging

struct StageCase {
  std::string name;
  std::vector<Plant> plants;
  std::string dir;   // JobInput.dir
  std::string path;  // its artifact's path
  Code code;
  std::string text;
};

StageCase StageRow(std::string name, std::vector<Plant> plants, std::string dir, std::string path,
                   Code code, std::string text) {
  return {std::move(name), std::move(plants), std::move(dir), std::move(path), code,
          std::move(text)};
}

std::vector<StageCase> StageCases() {
  return {
      StageRow("DirWithDotDot", {}, "../outside", "x", Code::kInvalidArgument, "\"..\""),
      StageRow("DirAbsolute", {}, "/tmp", "x", Code::kInvalidArgument, "absolute path"),
      StageRow("PathWithDotDot", {}, "build", "../../../outside/x", Code::kInvalidArgument,
               "\"..\""),
      StageRow("PathAbsolute", {}, "build", "/etc/cron.d/x", Code::kInvalidArgument,
               "absolute path"),
      StageRow("PathWithControlCharacter", {}, "build", "out/\x1b]0;x\x07", Code::kInvalidArgument,
               "control character"),
      StageRow("DirWithInvalidUtf8", {}, "b\xc3(", "x", Code::kInvalidArgument, "not valid UTF-8"),
      StageRow("PlantedLinkForInputs", {Symlink("$OUT", "inputs")}, "build", "x",
               Code::kPermissionDenied, "\"inputs\" is a symbolic link"),
      StageRow("PlantedLinkForInputDir", {Symlink("../../outside", "inputs/build")}, "build",
               "sub/x", Code::kPermissionDenied, "\"inputs/build\" is a symbolic link"),
      StageRow("PlantedLinkForTheLastDir", {Symlink("$OUT", "inputs/build")}, "build", "x",
               Code::kPermissionDenied, "is a symbolic link"),
      StageRow("PlantedLinkAtTheFileName", {Symlink("$OUT/secret", "inputs/build/secret")}, "build",
               "secret", Code::kAlreadyExists, "already exists"),
      StageRow("PlantedDanglingLinkAtTheFileName", {Symlink("$OUT/new", "inputs/build/new")},
               "build", "new", Code::kAlreadyExists, "already exists"),
  };
}

class StageHostileTest : public ::testing::TestWithParam<StageCase> {};

TEST_P(StageHostileTest, IsRefusedAndNothingOutsideIsWritten) {
  const StageCase& c = GetParam();
  Env env;
  FakeCas cas;
  const std::string address = cas.Start();
  ASSERT_FALSE(address.empty());
  cas.Put(kPayload);
  ASSERT_OK_AND_ASSIGN(auto channel, common::MakeChannel(address));
  common::CasClient client(channel);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<BlobCache> cache,
                       BlobCache::Open({env.base + "/cache", 1 << 20}, &client));
  PlantAll(env, c.plants);
  const std::map<std::string, std::string> before = Snapshot(env.outside);

  google::protobuf::RepeatedPtrField<farm::v1::JobInput> inputs;
  farm::v1::JobInput* input = inputs.Add();
  input->set_dir(c.dir);
  input->set_job_id("build");
  farm::v1::Artifact* artifact = input->add_artifacts();
  artifact->set_path(c.path);
  artifact->set_hash(common::DigestOf(kPayload).hash);
  artifact->set_size(static_cast<int64_t>(sizeof(kPayload) - 1));
  EXPECT_THAT(StageInputs(inputs, env.ws, *cache, nullptr),
              StatusIsWithMessage(c.code, HasSubstr(c.text)));
  EXPECT_EQ(Snapshot(env.outside), before) << "something was written outside the workspace";
}

std::string StageRowName(const ::testing::TestParamInfo<StageCase>& info) {
  return info.param.name;
}

INSTANTIATE_TEST_SUITE_P(Table, StageHostileTest, ::testing::ValuesIn(StageCases()), StageRowName);

// ---- farmctl download

struct DownloadCase {
  std::string name;
  std::vector<Plant> plants;
  std::string path;  // the artifact's recorded path (from the coordinator: untrusted)
  Code code;
  std::string text;  // in the error; for OK, DIR/`text` must be a file with the payload
};

DownloadCase DownloadRow(std::string name, std::vector<Plant> plants, std::string path, Code code,
                         std::string text) {
  return {std::move(name), std::move(plants), std::move(path), code, std::move(text)};
}

std::vector<DownloadCase> DownloadCases() {
  const std::string refused = "refusing to write artifact";
  const std::string leads_out = "is a symbolic link leading outside";
  return {
      DownloadRow("PathWithDotDot", {}, "../outside/secret", Code::kPermissionDenied, refused),
      DownloadRow("PathAbsolute", {}, "/tmp/x", Code::kPermissionDenied, refused),
      DownloadRow("PathWithEscapeSequence", {}, "a/\x1b[2J", Code::kPermissionDenied,
                  "control character"),
      DownloadRow("PathWithInvalidUtf8", {}, "a/\xe2\x28\xa1", Code::kPermissionDenied,
                  "not valid UTF-8"),
      DownloadRow("LinkedDirectoryAbsolute", {Symlink("$OUT", "out")}, "out/x",
                  Code::kPermissionDenied, leads_out),
      DownloadRow("LinkedDirectoryRelative", {Symlink("../outside", "out")}, "out/sub/x",
                  Code::kPermissionDenied, leads_out),
      DownloadRow("LinkedDirectoryDeep", {Symlink("../../outside/sub", "a/b")}, "a/b/c/x",
                  Code::kPermissionDenied, leads_out),
      DownloadRow("FifoOnTheWay", {Fifo("a")}, "a/x", Code::kFailedPrecondition,
                  "is not a directory"),
      DownloadRow("LinkAtTheFileNameIsReplacedNotFollowed", {Symlink("$OUT/secret", "out/secret")},
                  "out/secret", Code::kOk, "out/secret"),
      DownloadRow("DanglingLinkAtTheFileNameIsReplaced", {Symlink("$OUT/new", "out/new")},
                  "out/new", Code::kOk, "out/new"),
  };
}

class DownloadHostileTest : public ::testing::TestWithParam<DownloadCase> {};

TEST_P(DownloadHostileTest, IsRefusedAndNothingOutsideIsWritten) {
  const DownloadCase& c = GetParam();
  Env env;
  FakeCas cas;
  const std::string address = cas.Start();
  ASSERT_FALSE(address.empty());
  cas.Put(kPayload);
  ASSERT_OK_AND_ASSIGN(auto channel, common::MakeChannel(address));
  common::CasClient client(channel);
  PlantAll(env, c.plants);
  const std::map<std::string, std::string> before = Snapshot(env.outside);

  // What `farmctl download JOB -o DIR` does for one artifact.
  auto download = [&]() -> absl::Status {
    FARM_ASSIGN_OR_RETURN(common::BeneathRoot root, cli::PrepareDirectory(env.ws));
    FARM_ASSIGN_OR_RETURN(cli::Target target, cli::PrepareTarget(root, env.ws, c.path));
    return client.DownloadAt(common::DigestOf(kPayload), target.dir.get(), target.name,
                             cli::JoinPath(env.ws, c.path));
  };
  const absl::Status status = download();
  if (c.code == Code::kOk) {
    ASSERT_OK(status);
    EXPECT_FALSE(fs::is_symlink(env.In(c.text)));
    EXPECT_EQ(ReadFile(env.In(c.text)), kPayload);
  } else {
    EXPECT_THAT(status, StatusIsWithMessage(c.code, HasSubstr(c.text)));
  }
  EXPECT_EQ(Snapshot(env.outside), before) << "something was written outside DIR";
}

std::string DownloadRowName(const ::testing::TestParamInfo<DownloadCase>& info) {
  return info.param.name;
}

INSTANTIATE_TEST_SUITE_P(Table, DownloadHostileTest, ::testing::ValuesIn(DownloadCases()),
                         DownloadRowName);

// ---- the race

// A background process in its own session (setsid, as a step's leftover would be) that swaps
// `dir` and `link` (a symbolic link to the outside) with renameat2(RENAME_EXCHANGE) as fast as
// it can, until killed. It writes one byte to `ready` after its first swap. Only system calls
// after fork: the test process has threads.
pid_t StartSwapper(const std::string& dir, const std::string& link, int ready) {
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  ::setsid();
  bool told = false;
  for (;;) {
    if (::renameat2(AT_FDCWD, dir.c_str(), AT_FDCWD, link.c_str(), RENAME_EXCHANGE) != 0) {
      ::_exit(2);
    }
    if (!told) told = ::write(ready, "x", 1) == 1;
  }
}

// Kills the swapper's process group (whatever the test's outcome) and reaps it.
struct KillOnExit {
  pid_t pid;
  ~KillOnExit() {
    if (pid <= 0) return;
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
};

TEST(CollectRaceTest, ASwapperInItsOwnSessionNeverMakesAnOutsideFileAnArtifact) {
  Env env;
  FakeCas cas;
  const std::string address = cas.Start();
  ASSERT_FALSE(address.empty());
  ASSERT_OK_AND_ASSIGN(auto channel, common::MakeChannel(address));
  common::CasClient client(channel);
  // The agent opens the workspace when it creates it, before any step runs.
  ASSERT_OK_AND_ASSIGN(Workspace workspace, Workspace::Create(env.base, "race", 1));
  const std::string dir = workspace.path() + "/d";
  const std::string link = workspace.path() + "/d.link";
  Write(dir + "/secret", kInside);
  Write(dir + "/sub/secret", kInside);
  fs::create_symlink(env.outside, link);
  Exchange(dir, link);  // the file system can swap: d is the link now, and back
  Exchange(dir, link);
  if (HasFatalFailure()) return;

  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  KillOnExit swapper{StartSwapper(dir, link, ready[1])};
  ::close(ready[1]);
  ASSERT_GT(swapper.pid, 0);
  char byte = 0;
  ASSERT_EQ(::read(ready[0], &byte, 1), 1) << "the swapper did not start";
  ::close(ready[0]);

  // Rounds until both outcomes were seen (proof that the race ran) and at least kMinRounds,
  // within a deadline; every round is checked.
  constexpr int kMinRounds = 200;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  const common::Digest canary = common::DigestOf(kCanary);
  int rounds = 0;
  int collected_inside = 0;
  int refused = 0;
  while ((rounds < kMinRounds || collected_inside == 0 || refused == 0) &&
         std::chrono::steady_clock::now() < deadline) {
    ++rounds;
    absl::StatusOr<ArtifactMatches> m =
        FindArtifacts(workspace.root(), {"d/secret", "d/*", "d/**", "**/secret"});
    ASSERT_OK(m.status());
    const absl::Status hashed = HashArtifacts(*m);
    bool inside = false;
    for (const ArtifactFile& file : m->files) {
      ASSERT_NE(file.digest, canary) << "round " << rounds << ": " << file.path;
      inside = inside || file.digest == common::DigestOf(kInside);
    }
    const absl::Status uploaded =
        hashed.ok() ? UploadArtifacts(client, *m, nullptr).status() : hashed;
    if (hashed.ok() && inside) ++collected_inside;
    if (!uploaded.ok() || !m->skipped.empty() || m->files.empty()) ++refused;
  }
  EXPECT_FALSE(cas.Has(canary.ToString())) << "the canary was uploaded";
  EXPECT_GE(rounds, kMinRounds);
  EXPECT_GT(collected_inside, 0) << "the inside files were never collected in " << rounds;
  EXPECT_GT(refused, 0) << "the swap was never seen in " << rounds << " rounds";
}

}  // namespace
}  // namespace farm::agent
