// Pipelines on the real binaries, through farmctl: artifact hand-off along a diamond, a matrix,
// skipping after a failure, an exit-code retry, a concurrency group under load, a cycle.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/integration/farm_test_base.h"

namespace farm::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

class PipelineTest : public FarmTest {
 protected:
  std::map<std::string, farm::v1::JobState> States(const farm::v1::Pipeline& p) {
    std::map<std::string, farm::v1::JobState> out;
    for (const auto& job : p.jobs()) out[job.name()] = job.state();
    return out;
  }
  std::string JobIdOf(const farm::v1::Pipeline& p, const std::string& name) {
    for (const auto& job : p.jobs()) {
      if (job.name() == name) return job.job_id();
    }
    ADD_FAILURE() << "no job " << name << " in " << p.ShortDebugString();
    return "";
  }
};

TEST_F(PipelineTest, DiamondHandsEachJobTheArtifactsOfTheJobsItNeeds) {
  ASSERT_OK(StartAgent("a1", {}, 2));
  ASSERT_OK_AND_ASSIGN(std::string id, farm_->SubmitJobFile(R"(
name: diamond
jobs:
  a:
    steps: [{run: "mkdir -p out && echo from-a > out/a.txt"}]
    artifacts: [out/a.txt]
  b:
    needs: [a]
    steps: [{run: "mkdir -p out && (cat inputs/a/out/a.txt; echo from-b) > out/b.txt"}]
    artifacts: [out/b.txt]
  c:
    needs: [a]
    steps: [{run: "mkdir -p out && echo from-c > out/c.txt"}]
    artifacts: [out/c.txt]
  d:
    needs: [b, c]
    steps: [{run: "cat inputs/b/out/b.txt inputs/c/out/c.txt; test ! -e inputs/a"}]
)"));
  EXPECT_EQ(id[0], 'p') << "a pipeline id";
  ASSERT_OK_AND_ASSIGN(farm::v1::Pipeline done, farm_->WaitForPipelineDone(id));
  EXPECT_EQ(done.state(), farm::v1::SUCCEEDED) << done.ShortDebugString();
  ASSERT_OK_AND_ASSIGN(std::string logs, farm_->Logs(JobIdOf(done, "d")));
  EXPECT_THAT(logs, HasSubstr("from-a\nfrom-b\nfrom-c\n"));
  // d started only after both b and c had finished.
  std::map<std::string, farm::v1::PipelineJob> jobs;
  for (const auto& job : done.jobs()) jobs[job.name()] = job;
  EXPECT_GE(jobs["d"].started_ms(), jobs["b"].finished_ms());
  EXPECT_GE(jobs["d"].started_ms(), jobs["c"].finished_ms());
  EXPECT_GE(jobs["b"].started_ms(), jobs["a"].finished_ms());
}

TEST_F(PipelineTest, AMatrixExpandsIntoOneJobPerCombination) {
  ASSERT_OK(StartAgent("a1", {}, 3));
  ASSERT_OK_AND_ASSIGN(std::string id, farm_->SubmitJobFile(R"(
name: matrix
jobs:
  build:
    matrix: {os: [linux, bsd], arch: [amd64, arm64, riscv64]}
    steps: [{run: "mkdir -p out && echo $os-$arch > out/bin"}]
    artifacts: [out/bin]
  collect:
    needs: [build]
    steps: [{run: "cat inputs/build/*/*/out/bin | sort"}]
)"));
  ASSERT_OK_AND_ASSIGN(farm::v1::Pipeline done, farm_->WaitForPipelineDone(id));
  EXPECT_EQ(done.state(), farm::v1::SUCCEEDED) << done.ShortDebugString();
  std::vector<std::string> names;
  for (const auto& job : done.jobs()) names.push_back(job.name());
  EXPECT_THAT(names, ElementsAre("build (linux, amd64)", "build (linux, arm64)",
                                 "build (linux, riscv64)", "build (bsd, amd64)",
                                 "build (bsd, arm64)", "build (bsd, riscv64)", "collect"));
  ASSERT_OK_AND_ASSIGN(std::string logs, farm_->Logs(JobIdOf(done, "collect")));
  EXPECT_THAT(logs, HasSubstr("bsd-amd64\nbsd-arm64\nbsd-riscv64\n"
                              "linux-amd64\nlinux-arm64\nlinux-riscv64\n"));
}

TEST_F(PipelineTest, AFailureSkipsTheJobsThatNeedItAndFailsThePipeline) {
  ASSERT_OK(StartAgent("a1", {}, 2));
  const std::string marker = farm_->Path("cleanup-ran");
  ASSERT_OK_AND_ASSIGN(std::string id, farm_->SubmitJobFile(JobFile(R"(
name: failing
jobs:
  test:
    steps:
      - run: exit 3
      - {name: not-after-failure, run: "echo must-not-run"}
      - {name: cleanup, run: "touch @MARKER@", when: always}
  deploy: {needs: [test], steps: [{run: "echo deploying"}]}
  notify: {needs: [deploy], steps: [{run: "echo notifying"}]}
  docs: {steps: [{run: "echo docs"}]}
)",
                                                                    {{"MARKER", marker}})));
  ASSERT_OK_AND_ASSIGN(farm::v1::Pipeline done, farm_->WaitForPipelineDone(id));
  EXPECT_EQ(done.state(), farm::v1::FAILED);
  EXPECT_THAT(
      States(done),
      ElementsAre(std::pair("deploy", farm::v1::SKIPPED), std::pair("docs", farm::v1::SUCCEEDED),
                  std::pair("notify", farm::v1::SKIPPED), std::pair("test", farm::v1::FAILED)));
  ASSERT_OK_AND_ASSIGN(farm::v1::Job test, farm_->GetJob(JobIdOf(done, "test")));
  ASSERT_EQ(test.attempts_size(), 1);
  ASSERT_EQ(test.attempts(0).steps_size(), 3);
  EXPECT_EQ(test.attempts(0).steps(1).state(), farm::v1::STEP_SKIPPED);
  EXPECT_EQ(test.attempts(0).steps(2).state(), farm::v1::STEP_SUCCEEDED);
  EXPECT_TRUE(std::ifstream(marker).good()) << "the `when: always` step did not run";
  ASSERT_OK_AND_ASSIGN(farm::v1::Job deploy, farm_->GetJob(JobIdOf(done, "deploy")));
  EXPECT_EQ(deploy.attempts_size(), 0) << "a skipped job never runs";
  EXPECT_THAT(deploy.reason(), HasSubstr("test"));

  // `farmctl wait` exits with the pipeline's outcome.
  ASSERT_OK_AND_ASSIGN(CommandResult wait, farm_->RunFarmctl({"wait", id}));
  EXPECT_EQ(wait.exit_code, 1) << wait.DebugString();
}

TEST_F(PipelineTest, AFlakyJobSucceedsOnItsSecondAttempt) {
  ASSERT_OK(StartAgent("a1"));
  const std::string tried = farm_->Path("tried");
  ASSERT_OK_AND_ASSIGN(std::string id, farm_->SubmitJobFile(JobFile(R"(
name: flaky
jobs:
  flaky:
    steps: [{run: "if [ -e @TRIED@ ]; then echo second; else touch @TRIED@; exit 75; fi"}]
    retry: {max_attempts: 3, on_exit_codes: [75]}
)",
                                                                    {{"TRIED", tried}})));
  ASSERT_OK_AND_ASSIGN(farm::v1::Pipeline done, farm_->WaitForPipelineDone(id));
  EXPECT_EQ(done.state(), farm::v1::SUCCEEDED);
  ASSERT_OK_AND_ASSIGN(farm::v1::Job job, farm_->GetJob(JobIdOf(done, "flaky")));
  ASSERT_EQ(job.attempts_size(), 2) << job.ShortDebugString();
  EXPECT_EQ(job.attempts(0).outcome(), farm::v1::ATTEMPT_FAILED);
  EXPECT_EQ(job.attempts(0).steps(0).exit_code(), 75);
  EXPECT_EQ(job.attempts(1).outcome(), farm::v1::ATTEMPT_SUCCEEDED);
}

// Twelve jobs of one group with concurrency 2 on six free slots: each step appends its start
// and end (nanoseconds) to a shared file, and the overlap is computed from those times.
// That the group uses both of its places is made certain, not left to timing: each step takes
// the next ticket (mkdir is atomic) and waits, 30 s at most, until the step of its pair (tickets
// 1-2, 3-4, ...) has taken its own, so the two of a pair overlap. Within the limit that never
// deadlocks: a step of an odd ticket waits while the other place is free or about to be.
TEST_F(PipelineTest, AConcurrencyGroupNeverRunsMoreThanItsLimit) {
  ASSERT_OK(StartAgent("a1", {}, 2));
  ASSERT_OK(StartAgent("a2", {}, 2));
  ASSERT_OK(StartAgent("a3", {}, 2));
  const std::string dir = farm_->Path("group");
  ASSERT_TRUE(std::filesystem::create_directories(dir));
  const std::string timeline = dir + "/timeline";
  ASSERT_OK_AND_ASSIGN(std::string id, farm_->SubmitJobFile(JobFile(R"(
name: publish
jobs:
  publish:
    matrix: {n: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]}
    concurrency_group: publish
    concurrency: 2
    steps:
      - run: |
          echo start $(date +%s%N) >> "@DIR@/timeline"
          t=1
          until mkdir "@DIR@/ticket.$t" 2>/dev/null; do
            t=$((t + 1))
            if [ $t -gt 12 ]; then echo "no ticket left"; exit 4; fi
          done
          if [ $((t % 2)) -eq 1 ]; then pair=$((t + 1)); else pair=$((t - 1)); fi
          tries=0
          until [ -d "@DIR@/ticket.$pair" ]; do
            tries=$((tries + 1))
            if [ $tries -gt 300 ]; then echo "ticket $t: no ticket $pair after 30 s"; exit 3; fi
            sleep 0.1
          done
          sleep 0.3
          echo end $(date +%s%N) >> "@DIR@/timeline"
  other:
    matrix: {n: [1, 2, 3, 4]}
    steps: [{run: "sleep 0.3"}]
)",
                                                                    {{"DIR", dir}})));
  ASSERT_OK_AND_ASSIGN(farm::v1::Pipeline done, farm_->WaitForPipelineDone(id, absl::Seconds(90)));
  EXPECT_EQ(done.state(), farm::v1::SUCCEEDED) << done.ShortDebugString();

  std::vector<std::pair<int64_t, int>> events;  // time, +1 start / -1 end
  std::ifstream in(timeline);
  std::string kind;
  int64_t ns = 0;
  while (in >> kind >> ns) events.emplace_back(ns, kind == "start" ? 1 : -1);
  ASSERT_EQ(events.size(), 24u);
  std::sort(events.begin(), events.end());  // an end before a start at the same instant
  int running = 0, max_running = 0;
  for (const auto& [t, delta] : events) max_running = std::max(max_running, running += delta);
  std::cout << "concurrency_group: jobs=12 limit=2 slots=6 max_running=" << max_running
            << std::endl;
  EXPECT_LE(max_running, 2);
  EXPECT_EQ(max_running, 2) << "the pairs' steps did not overlap: the timeline is wrong";
}

TEST_F(PipelineTest, ACycleIsRefusedWithItsPathBeforeAnythingIsSubmitted) {
  ASSERT_OK_AND_ASSIGN(std::string path, farm_->WriteJobFile(R"(name: cycle
jobs:
  a: {needs: [c], steps: [{run: "true"}]}
  b: {needs: [a], steps: [{run: "true"}]}
  c: {needs: [b], steps: [{run: "true"}]}
)"));
  ASSERT_OK_AND_ASSIGN(CommandResult result, farm_->RunFarmctl({"submit", path}));
  EXPECT_NE(result.exit_code, 0);
  EXPECT_THAT(result.err, HasSubstr("a → c → b → a")) << result.DebugString();
  EXPECT_THAT(result.err, HasSubstr(path + ":3:")) << result.DebugString();
  ASSERT_OK_AND_ASSIGN(CommandResult list, farm_->RunFarmctl({"list", "--pipelines"}));
  EXPECT_EQ(list.exit_code, 0) << list.DebugString();
  EXPECT_THAT(list.out, ::testing::Not(HasSubstr("cycle")));
}

TEST_F(PipelineTest, FollowShowsEachJobsProgressAsPlainLinesWhenNotATerminal) {
  ASSERT_OK(StartAgent("a1", {}, 2));
  ASSERT_OK_AND_ASSIGN(std::string path, farm_->WriteJobFile(R"(name: follow
jobs:
  build: {steps: [{run: "sleep 0.2"}]}
  test: {needs: [build], steps: [{run: "sleep 0.2"}]}
)"));
  ASSERT_OK_AND_ASSIGN(CommandResult result,
                       farm_->RunFarmctl({"submit", path, "--follow"}, absl::Seconds(60)));
  EXPECT_EQ(result.exit_code, 0) << result.DebugString();
  EXPECT_THAT(result.out, ::testing::Not(HasSubstr("\x1b["))) << "no terminal escapes in a pipe";
  EXPECT_THAT(result.out, HasSubstr("build"));
  EXPECT_THAT(result.out, HasSubstr("test"));
  EXPECT_THAT(result.out, HasSubstr("SUCCEEDED"));
  EXPECT_THAT(result.out, HasSubstr("2/2"));
}

TEST_F(PipelineTest, CancellingAPipelineCancelsItsJobs) {
  ASSERT_OK(StartAgent("a1"));
  ASSERT_OK_AND_ASSIGN(std::string id, farm_->SubmitJobFile(R"(
name: long
jobs:
  slow: {steps: [{run: "sleep 60"}]}
  after: {needs: [slow], steps: [{run: "true"}]}
)"));
  ASSERT_OK_AND_ASSIGN(farm::v1::Pipeline p,
                       farm_->GetPipeline(id));  // the job ids, to wait for "slow" to run
  ASSERT_OK(farm_->WaitForJobState(JobIdOf(p, "slow"), farm::v1::RUNNING).status());
  ASSERT_OK_AND_ASSIGN(CommandResult cancel, farm_->RunFarmctl({"cancel", id}));
  EXPECT_EQ(cancel.exit_code, 0) << cancel.DebugString();
  ASSERT_OK_AND_ASSIGN(farm::v1::Pipeline done, farm_->WaitForPipelineDone(id));
  EXPECT_EQ(done.state(), farm::v1::CANCELLED);
  EXPECT_THAT(States(done), ElementsAre(std::pair("after", farm::v1::CANCELLED),
                                        std::pair("slow", farm::v1::CANCELLED)));
}

// The quickstart's example (deploy/examples/release.yaml), as the quickstart runs it.
TEST_F(PipelineTest, TheQuickstartExampleSucceedsAndPackagesBothBuilds) {
  ASSERT_OK(StartAgent("a1", {}, 2));
  ASSERT_OK_AND_ASSIGN(
      CommandResult submit,
      farm_->RunFarmctl(
          {"submit", std::string(FARM_SOURCE_DIR) + "/deploy/examples/release.yaml", "--follow"},
          absl::Seconds(60)));
  ASSERT_EQ(submit.exit_code, 0) << submit.DebugString();
  const std::string id(absl::StripAsciiWhitespace(submit.out.substr(0, submit.out.find('\n'))));
  ASSERT_OK_AND_ASSIGN(farm::v1::Pipeline done, farm_->GetPipeline(id));
  EXPECT_EQ(done.state(), farm::v1::SUCCEEDED);
  ASSERT_OK_AND_ASSIGN(std::string test_logs, farm_->Logs(JobIdOf(done, "test")));
  EXPECT_THAT(test_logs, HasSubstr("app 1.2 for amd64\napp 1.2 for arm64\n"));
  EXPECT_THAT(test_logs, HasSubstr("cleaning up"));
  ASSERT_OK_AND_ASSIGN(farm::v1::Job package, farm_->GetJob(JobIdOf(done, "package")));
  ASSERT_EQ(package.artifacts_size(), 1) << package.ShortDebugString();
  EXPECT_EQ(package.artifacts(0).path(), "dist/release-1.2.tar.gz");
}

}  // namespace
}  // namespace farm::testing
