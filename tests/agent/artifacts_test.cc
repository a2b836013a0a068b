// Artifacts: glob expansion inside a workspace (never escaping it), hashing, the upload of only
// what the CAS lacks, and the whole agent flow (steps → artifacts → CompleteJob) against the
// fake AgentService with a fake CAS on the same address.
#include "agent/artifacts.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/agent.h"
#include "common/channel.h"
#include "common/digest.h"
#include "tests/agent/fake_agent_service.h"
#include "tests/agent/test_util.h"
#include "tests/common/fake_cas.h"
#include "tests/testing/status_matchers.h"

namespace farm::agent {
namespace {

namespace fs = std::filesystem;
using ::farm::agent::testing::FakeAgentService;
using ::farm::agent::testing::TempDir;
using ::farm::testing::FakeCas;
using ::farm::testing::StatusIs;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

void Write(const std::string& path, const std::string& data, bool executable = false) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << data;
  ::chmod(path.c_str(), executable ? 0755 : 0644);
}

std::vector<std::string> Paths(const ArtifactMatches& matches) {
  std::vector<std::string> paths;
  for (const ArtifactFile& file : matches.files) paths.push_back(file.path);
  return paths;
}

TEST(MatchComponentTest, StarAndQuestionMark) {
  EXPECT_TRUE(MatchComponent("*", "anything"));
  EXPECT_TRUE(MatchComponent("*", ".hidden"));
  EXPECT_TRUE(MatchComponent("*.tar.gz", "a.tar.gz"));
  EXPECT_TRUE(MatchComponent("*.tar.gz", ".tar.gz"));
  EXPECT_FALSE(MatchComponent("*.tar.gz", "a.tar.gz.sig"));
  EXPECT_TRUE(MatchComponent("a*b*c", "aXXbYYc"));
  EXPECT_TRUE(MatchComponent("a*b*c", "abbbc"));
  EXPECT_FALSE(MatchComponent("a*b*c", "aXXbYY"));
  EXPECT_TRUE(MatchComponent("?.txt", "a.txt"));
  EXPECT_FALSE(MatchComponent("?.txt", "ab.txt"));
  EXPECT_FALSE(MatchComponent("?.txt", ".txt"));
  EXPECT_TRUE(MatchComponent("exact", "exact"));
  EXPECT_FALSE(MatchComponent("exact", "exactly"));
  EXPECT_TRUE(MatchComponent("**", "x"));  // within one component, ** is *
}

class FindArtifactsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    ws_ = dir_.path() + "/ws";
    fs::create_directories(ws_);
  }
  std::string In(const std::string& relative) const { return ws_ + "/" + relative; }

  TempDir dir_;
  std::string ws_;
};

TEST_F(FindArtifactsTest, StarMatchesWithinOneDirectory) {
  Write(In("out/a.txt"), "a");
  Write(In("out/b.bin"), "b");
  Write(In("out/sub/c.txt"), "c");
  Write(In("other/d.txt"), "d");
  ASSERT_OK_AND_ASSIGN(ArtifactMatches m, FindArtifacts(ws_, {"out/*.txt"}));
  EXPECT_THAT(Paths(m), ElementsAre("out/a.txt"));
  // A matched directory brings everything below it.
  ASSERT_OK_AND_ASSIGN(m, FindArtifacts(ws_, {"out/*"}));
  EXPECT_THAT(Paths(m), ElementsAre("out/a.txt", "out/b.bin", "out/sub/c.txt"));
}

TEST_F(FindArtifactsTest, DoubleStarMatchesAnyNumberOfDirectories) {
  Write(In("dist/a.tar.gz"), "1");
  Write(In("dist/x/b.tar.gz"), "2");
  Write(In("dist/x/y/z/c.tar.gz"), "3");
  Write(In("dist/x/y/z/c.zip"), "4");
  Write(In("elsewhere/d.tar.gz"), "5");
  ASSERT_OK_AND_ASSIGN(ArtifactMatches m, FindArtifacts(ws_, {"dist/**/*.tar.gz"}));
  EXPECT_THAT(Paths(m), ElementsAre("dist/a.tar.gz", "dist/x/b.tar.gz", "dist/x/y/z/c.tar.gz"));
  ASSERT_OK_AND_ASSIGN(m, FindArtifacts(ws_, {"**/*.tar.gz"}));
  EXPECT_THAT(Paths(m), ElementsAre("dist/a.tar.gz", "dist/x/b.tar.gz", "dist/x/y/z/c.tar.gz",
                                    "elsewhere/d.tar.gz"));
  ASSERT_OK_AND_ASSIGN(m, FindArtifacts(ws_, {"dist/**"}));
  EXPECT_THAT(Paths(m), ElementsAre("dist/a.tar.gz", "dist/x/b.tar.gz", "dist/x/y/z/c.tar.gz",
                                    "dist/x/y/z/c.zip"));
}

TEST_F(FindArtifactsTest, QuestionMarkAndLiteralPathsAndDotComponents) {
  Write(In("logs/1.log"), "1");
  Write(In("logs/22.log"), "2");
  Write(In("report.html"), "r");
  ASSERT_OK_AND_ASSIGN(ArtifactMatches m,
                       FindArtifacts(ws_, {"logs/?.log", "./report.html", "logs//22.log"}));
  EXPECT_THAT(Paths(m), ElementsAre("logs/1.log", "logs/22.log", "report.html"));
}

TEST_F(FindArtifactsTest, EachFileOnceAndGlobsThatMatchNothingAreReported) {
  Write(In("out/a"), "a");
  ASSERT_OK_AND_ASSIGN(ArtifactMatches m,
                       FindArtifacts(ws_, {"out/*", "out/a", "**/a", "nothing/*", "none.txt"}));
  EXPECT_THAT(Paths(m), ElementsAre("out/a"));
  EXPECT_THAT(m.empty_globs, ElementsAre("nothing/*", "none.txt"));
}

TEST_F(FindArtifactsTest, SymlinksAreFollowedOnlyInsideTheWorkspace) {
  Write(dir_.path() + "/secret", "outside");
  fs::create_directories(dir_.path() + "/outside-dir");
  Write(dir_.path() + "/outside-dir/s", "outside");
  Write(In("real/data.txt"), "inside");
  fs::create_directories(In("out"));
  fs::create_symlink("../real/data.txt", In("out/inside-link"));
  fs::create_symlink(dir_.path() + "/secret", In("out/escape-absolute"));
  fs::create_symlink("../../secret", In("out/escape-relative"));
  fs::create_symlink("nowhere", In("out/dangling"));
  fs::create_symlink(dir_.path() + "/outside-dir", In("out/dir-escape"));
  fs::create_symlink(dir_.path() + "/outside-dir", In("linked"));
  fs::create_symlink("real", In("inside-dir"));

  ASSERT_OK_AND_ASSIGN(ArtifactMatches m,
                       FindArtifacts(ws_, {"out/*", "linked/*", "inside-dir/*", "**/s"}));
  EXPECT_THAT(Paths(m), ElementsAre("inside-dir/data.txt", "out/inside-link"));
  for (const ArtifactFile& file : m.files) {
    EXPECT_EQ(file.source, "real/data.txt") << file.path;  // what is read: inside, no link
  }
  EXPECT_THAT(m.skipped, Contains(HasSubstr("out/escape-absolute: a symbolic link to a path "
                                            "outside the workspace")));
  EXPECT_THAT(m.skipped, Contains(HasSubstr("out/escape-relative")));
  EXPECT_THAT(m.skipped, Contains(HasSubstr("out/dangling")));
  EXPECT_THAT(m.skipped, Contains(HasSubstr("out/dir-escape")));
  EXPECT_THAT(m.skipped, Contains(HasSubstr("linked")));
}

TEST_F(FindArtifactsTest, DoubleStarDoesNotFollowSymlinkedDirectories) {
  Write(In("a/f"), "f");
  fs::create_symlink("..", In("a/loop"));  // would recurse forever if followed
  ASSERT_OK_AND_ASSIGN(ArtifactMatches m, FindArtifacts(ws_, {"**/f", "a/**"}));
  EXPECT_THAT(Paths(m), ElementsAre("a/f"));
}

TEST_F(FindArtifactsTest, OnlyRegularFilesWithTheirExecutableBit) {
  Write(In("bin/tool"), "#!/bin/sh\n", /*executable=*/true);
  Write(In("bin/data"), "data");
  ASSERT_EQ(::mkfifo(In("bin/fifo").c_str(), 0644), 0);
  ASSERT_OK_AND_ASSIGN(ArtifactMatches m, FindArtifacts(ws_, {"bin/*"}));
  ASSERT_THAT(Paths(m), ElementsAre("bin/data", "bin/tool"));
  EXPECT_FALSE(m.files[0].executable);
  EXPECT_TRUE(m.files[1].executable);
  EXPECT_THAT(m.skipped, ElementsAre(HasSubstr("bin/fifo: not a regular file")));
}

TEST_F(FindArtifactsTest, MoreFilesThanTheLimitFailClearly) {
  for (int i = 0; i < 6; ++i) Write(In(absl::StrCat("out/f", i)), "x");
  ASSERT_OK(FindArtifacts(ws_, {"out/*"}, /*max_files=*/6).status());
  EXPECT_THAT(FindArtifacts(ws_, {"out/*"}, /*max_files=*/5),
              ::farm::testing::StatusIsWithMessage(absl::StatusCode::kResourceExhausted,
                                                   HasSubstr("more than 5 files")));
}

TEST_F(FindArtifactsTest, InvalidGlobsAreRefused) {
  EXPECT_THAT(FindArtifacts(ws_, {"../x"}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(FindArtifacts(ws_, {"/etc/*"}), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(FindArtifactsTest, HashesEachFileOnce) {
  Write(In("out/a"), "same");
  Write(In("out/b"), "same");
  Write(In("out/c"), "other");
  fs::create_symlink("a", In("out/link-to-a"));
  ASSERT_OK_AND_ASSIGN(ArtifactMatches m, FindArtifacts(ws_, {"out/*"}));
  ASSERT_OK(HashArtifacts(m));
  ASSERT_EQ(m.files.size(), 4u);
  EXPECT_EQ(m.files[0].digest, common::DigestOf("same"));
  EXPECT_EQ(m.files[1].digest, common::DigestOf("same"));
  EXPECT_EQ(m.files[2].digest, common::DigestOf("other"));
  EXPECT_EQ(m.files[3].path, "out/link-to-a");
  EXPECT_EQ(m.files[3].digest, common::DigestOf("same"));
  std::vector<farm::v1::Artifact> protos = ToArtifactProtos(m.files);
  ASSERT_EQ(protos.size(), 4u);
  EXPECT_EQ(protos[2].path(), "out/c");
  EXPECT_EQ(protos[2].hash(), common::DigestOf("other").hash);
  EXPECT_EQ(protos[2].size(), 5);
}

TEST_F(FindArtifactsTest, UploadsOnlyWhatTheCasLacksAndEachContentOnce) {
  FakeCas cas;
  const std::string address = cas.Start();
  ASSERT_FALSE(address.empty());
  Write(In("out/a"), "same");
  Write(In("out/b"), "same");
  Write(In("out/known"), "already there");
  Write(In("out/empty"), "");
  cas.Put("already there");
  ASSERT_OK_AND_ASSIGN(ArtifactMatches m, FindArtifacts(ws_, {"out/*"}));
  ASSERT_OK(HashArtifacts(m));
  ASSERT_OK_AND_ASSIGN(auto channel, common::MakeChannel(address));
  common::CasClient client(channel);
  ASSERT_OK_AND_ASSIGN(UploadStats stats, UploadArtifacts(client, m, nullptr));
  EXPECT_EQ(stats.files, 4);
  EXPECT_EQ(stats.blobs, 3);
  EXPECT_EQ(stats.uploaded_blobs, 1);
  EXPECT_EQ(stats.uploaded_bytes, 4);
  EXPECT_THAT(cas.stats().batch_sizes, ElementsAre(1));
  EXPECT_EQ(cas.Get(common::DigestOf("same").ToString()), "same");
}

// ---- the agent flow

class AgentArtifactsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fake_.AddService(cas_.services()[0]);
    fake_.AddService(cas_.services()[1]);
    fake_.AddService(cas_.services()[2]);
    address_ = fake_.Start();
    ASSERT_FALSE(address_.empty());
    fake_.SetTimings(/*lease_ttl_ms=*/30'000, /*heartbeat_interval_ms=*/200);
    options_.coordinator = address_;
    options_.security.insecure = true;  // the test coordinator speaks plaintext
    options_.name = "test-agent";
    options_.slots = 1;
    options_.work_dir = dir_.path() + "/work";
    options_.lease_wait_ms = 500;
    options_.version = "test";
    agent_ = std::make_unique<Agent>(options_);
    ASSERT_OK(agent_->Init());
    ASSERT_OK(agent_->Start());
  }
  void TearDown() override {
    if (agent_ != nullptr) agent_->Shutdown();
  }

  FakeAgentService::FakeJob Run(const std::string& id, const farm::v1::JobSpec& spec) {
    fake_.AddJob(id, spec);
    EXPECT_TRUE(fake_.WaitUntil([&](const FakeAgentService::State& s) {
      auto it = s.jobs.find(id);
      return it != s.jobs.end() && it->second.completions > 0;
    })) << "job "
        << id << " did not complete";
    return fake_.Snapshot().jobs[id];
  }

  static farm::v1::JobSpec Spec(const std::string& run, std::vector<std::string> globs) {
    farm::v1::JobSpec spec;
    spec.set_name("artifacts");
    farm::v1::StepSpec* step = spec.add_steps();
    step->set_name("build");
    step->set_run(run);
    for (const std::string& glob : globs) spec.add_artifacts(glob);
    return spec;
  }

  FakeCas cas_;  // declared first: it must outlive the server that serves it
  FakeAgentService fake_;
  TempDir dir_;
  AgentOptions options_;
  std::string address_;
  std::unique_ptr<Agent> agent_;
};

TEST_F(AgentArtifactsTest, ASucceededJobReportsAndUploadsItsArtifacts) {
  const FakeAgentService::FakeJob job =
      Run("j1", Spec("mkdir -p out/sub && printf hello > out/a.txt && printf x > out/sub/b && "
                     "printf '#!/bin/sh\\n' > out/tool && chmod +x out/tool && printf no > c",
                     {"out/**", "missing/*"}));
  EXPECT_EQ(job.outcome, farm::v1::ATTEMPT_SUCCEEDED) << job.reason;
  ASSERT_EQ(job.artifacts.size(), 3u);
  EXPECT_EQ(job.artifacts[0].path(), "out/a.txt");
  EXPECT_EQ(job.artifacts[0].hash(), common::DigestOf("hello").hash);
  EXPECT_EQ(job.artifacts[0].size(), 5);
  EXPECT_FALSE(job.artifacts[0].executable());
  EXPECT_EQ(job.artifacts[1].path(), "out/sub/b");
  EXPECT_EQ(job.artifacts[2].path(), "out/tool");
  EXPECT_TRUE(job.artifacts[2].executable());
  for (const farm::v1::Artifact& artifact : job.artifacts) {
    EXPECT_TRUE(cas_.Has(absl::StrCat(artifact.hash(), "/", artifact.size()))) << artifact.path();
  }
  EXPECT_EQ(cas_.Get(common::DigestOf("hello").ToString()), "hello");
}

TEST_F(AgentArtifactsTest, AFailedJobKeepsNoArtifactsUnlessAlways) {
  FakeAgentService::FakeJob job = Run("j1", Spec("printf a > a.txt; exit 3", {"*.txt"}));
  EXPECT_EQ(job.outcome, farm::v1::ATTEMPT_FAILED);
  EXPECT_THAT(job.artifacts, IsEmpty());
  EXPECT_EQ(cas_.blob_count(), 0u);

  farm::v1::JobSpec always = Spec("printf b > b.txt; exit 3", {"*.txt"});
  always.set_artifacts_when(farm::v1::ARTIFACTS_ALWAYS);
  job = Run("j2", always);
  EXPECT_EQ(job.outcome, farm::v1::ATTEMPT_FAILED);
  EXPECT_THAT(job.reason, HasSubstr("exited with code 3"));
  ASSERT_EQ(job.artifacts.size(), 1u);
  EXPECT_EQ(job.artifacts[0].path(), "b.txt");
  EXPECT_TRUE(cas_.Has(common::DigestOf("b").ToString()));
}

TEST_F(AgentArtifactsTest, TooManyFilesFailTheAttemptWithAClearReason) {
  const FakeAgentService::FakeJob job =
      Run("j1", Spec(absl::StrCat("mkdir out && cd out && seq 1 ", common::kMaxArtifactsPerJob + 1,
                                  " | xargs touch"),
                     {"out/*"}));
  EXPECT_EQ(job.outcome, farm::v1::ATTEMPT_FAILED);
  EXPECT_THAT(job.reason,
              AllOf(StartsWith("artifacts: "),
                    HasSubstr(absl::StrCat("more than ", common::kMaxArtifactsPerJob))));
  EXPECT_THAT(job.artifacts, IsEmpty());
}

TEST_F(AgentArtifactsTest, AnUploadFailureFailsTheAttemptWithAClearReason) {
  cas_.BreakNextWrites(1000, 0);  // every stream breaks before committing anything
  const FakeAgentService::FakeJob job =
      Run("j1", Spec("head -c 3000000 /dev/urandom > big.bin", {"big.bin"}));
  EXPECT_EQ(job.outcome, farm::v1::ATTEMPT_FAILED);
  EXPECT_THAT(job.reason, AllOf(StartsWith("artifacts: "), HasSubstr("big.bin")));
  EXPECT_THAT(job.artifacts, IsEmpty());
}

TEST_F(AgentArtifactsTest, ArtifactsTheCoordinatorCannotFindFailTheAttemptInsteadOfLosingIt) {
  fake_.FailNext("CompleteJob", 1, grpc::StatusCode::NOT_FOUND);
  const FakeAgentService::FakeJob job = Run("j1", Spec("printf a > a.txt", {"a.txt"}));
  EXPECT_EQ(job.completions, 1);
  EXPECT_EQ(job.outcome, farm::v1::ATTEMPT_FAILED);
  EXPECT_THAT(job.reason, AllOf(StartsWith("artifacts: "), HasSubstr("injected")));
  EXPECT_THAT(job.artifacts, IsEmpty());
}

TEST_F(AgentArtifactsTest, TheArtifactsOfOneJobAreTheInputsOfTheNext) {
  // What a pipeline does: the coordinator hands the artifacts of "build" to the job needing it.
  const FakeAgentService::FakeJob build =
      Run("build", Spec("mkdir -p out && printf '#!/bin/sh\\necho tool ran\\n' > out/tool && "
                        "chmod +x out/tool && printf data > out/data.txt",
                        {"out/**"}));
  ASSERT_EQ(build.outcome, farm::v1::ATTEMPT_SUCCEEDED) << build.reason;
  ASSERT_EQ(build.artifacts.size(), 2u);

  farm::v1::JobInput input;
  input.set_dir("build/amd64");
  input.set_job_id("build");
  for (const farm::v1::Artifact& artifact : build.artifacts) *input.add_artifacts() = artifact;
  fake_.AddJob("test",
               Spec("inputs/build/amd64/out/tool && cat inputs/build/amd64/out/data.txt", {}),
               {input});
  ASSERT_TRUE(fake_.WaitUntil([&](const FakeAgentService::State& s) {
    auto it = s.jobs.find("test");
    return it != s.jobs.end() && it->second.completions > 0;
  }));
  const FakeAgentService::FakeJob test = fake_.Snapshot().jobs["test"];
  EXPECT_EQ(test.outcome, farm::v1::ATTEMPT_SUCCEEDED) << test.reason;
  EXPECT_EQ(test.logs.at(0), "tool ran\ndata");
  EXPECT_EQ(agent_->blob_cache()->stats().misses, 2);
}

}  // namespace
}  // namespace farm::agent
