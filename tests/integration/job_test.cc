// A job's life on a real farm: steps in order, logs, failures, cancel, timeouts, environment and
// workspaces, as `farmctl` shows them.
#include <sys/types.h>

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/integration/farm_test_base.h"

namespace farm::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

using JobTest = FarmTest;

// The pid a step wrote to `path` ("123\n"), once the line is complete.
absl::StatusOr<pid_t> WaitForPidFile(const std::string& path) {
  pid_t pid = 0;
  FARM_RETURN_IF_ERROR(WaitFor(
      [&] {
        absl::StatusOr<std::string> text = ReadFile(path);
        if (!text.ok() || !absl::EndsWith(*text, "\n")) return false;
        return absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &pid);
      },
      absl::Seconds(20), path));
  return pid;
}

TEST_F(JobTest, TwoStepJobSucceedsAndLogsHoldBothStepsInOrder) {
  ASSERT_OK(StartAgent("a1"));
  ASSERT_OK_AND_ASSIGN(std::string id, farm_->SubmitJobFile(R"job(
name: two-steps
steps:
  - name: first
    run: |
      echo out-1
      echo err-1 >&2
      echo out-2
  - name: second
    run: echo out-3
)job"));
  ASSERT_OK_AND_ASSIGN(farm::v1::Job job, farm_->WaitForJobDone(id));

  EXPECT_EQ(job.id(), id);
  EXPECT_EQ(job.state(), farm::v1::SUCCEEDED) << job.ShortDebugString();
  ASSERT_EQ(job.attempts_size(), 1) << job.ShortDebugString();
  const farm::v1::Attempt& attempt = job.attempts(0);
  EXPECT_EQ(attempt.outcome(), farm::v1::ATTEMPT_SUCCEEDED);
  EXPECT_EQ(attempt.agent(), "a1");
  ASSERT_EQ(attempt.steps_size(), 2) << job.ShortDebugString();
  EXPECT_EQ(attempt.steps(0).name(), "first");
  EXPECT_EQ(attempt.steps(0).state(), farm::v1::STEP_SUCCEEDED);
  EXPECT_EQ(attempt.steps(0).exit_code(), 0);
  EXPECT_EQ(attempt.steps(0).log_bytes(), 18);  // "out-1\nerr-1\nout-2\n"
  EXPECT_EQ(attempt.steps(1).name(), "second");
  EXPECT_EQ(attempt.steps(1).state(), farm::v1::STEP_SUCCEEDED);
  EXPECT_EQ(attempt.steps(1).log_bytes(), 6);
  EXPECT_GT(job.finished_ms(), 0);
  EXPECT_GE(job.finished_ms(), job.submitted_ms());

  // stdout and stderr interleaved as the step wrote them, then the second step.
  ASSERT_OK_AND_ASSIGN(std::string logs, farm_->Logs(id));
  EXPECT_EQ(logs, "out-1\nerr-1\nout-2\nout-3\n");
  ASSERT_OK_AND_ASSIGN(std::string second, farm_->Logs(id, {"--step=second"}));
  EXPECT_EQ(second, "out-3\n");

  // The text view names the job's state.
  ASSERT_OK_AND_ASSIGN(CommandResult get, farm_->RunFarmctl({"get", id}));
  EXPECT_EQ(get.exit_code, 0) << get.DebugString();
  EXPECT_THAT(get.out, HasSubstr("SUCCEEDED"));
  EXPECT_THAT(get.out, HasSubstr("first"));
  EXPECT_THAT(get.out, HasSubstr("second"));
}

TEST_F(JobTest, FailingStepFailsJobWithItsExitCodeAndSkipsTheRest) {
  ASSERT_OK(StartAgent("a1"));
  ASSERT_OK_AND_ASSIGN(std::string id, farm_->SubmitJobFile(JobFile(R"job(
name: fails
env: {MARK: "@DIR@"}
steps:
  - name: ok
    run: touch "$MARK/ok.ran"
  - name: bad
    run: |
      echo before failing
      exit 3
  - name: never
    run: touch "$MARK/never.ran"
)job",
                                                                    {{"DIR", farm_->root()}})));
  ASSERT_OK_AND_ASSIGN(farm::v1::Job job, farm_->WaitForJobDone(id));

  EXPECT_EQ(job.state(), farm::v1::FAILED) << job.ShortDebugString();
  ASSERT_EQ(job.attempts_size(), 1) << job.ShortDebugString();
  const farm::v1::Attempt& attempt = job.attempts(0);
  EXPECT_EQ(attempt.outcome(), farm::v1::ATTEMPT_FAILED);
  ASSERT_EQ(attempt.steps_size(), 3) << job.ShortDebugString();
  EXPECT_EQ(attempt.steps(0).state(), farm::v1::STEP_SUCCEEDED);
  EXPECT_EQ(attempt.steps(1).state(), farm::v1::STEP_FAILED);
  EXPECT_EQ(attempt.steps(1).exit_code(), 3);
  EXPECT_EQ(attempt.steps(2).state(), farm::v1::STEP_SKIPPED);
  EXPECT_THAT(absl::StrCat(job.reason(), " | ", attempt.reason()), HasSubstr("bad"))
      << "the reason should name the failing step";

  EXPECT_TRUE(FileExists(farm_->Path("ok.ran")));
  EXPECT_FALSE(FileExists(farm_->Path("never.ran"))) << "a step after the failing one ran";
  ASSERT_OK_AND_ASSIGN(std::string logs, farm_->Logs(id));
  EXPECT_EQ(logs, "before failing\n");
}

TEST_F(JobTest, CancelKillsTheRunningStepsProcesses) {
  ASSERT_OK(StartAgent("a1"));
  ASSERT_OK_AND_ASSIGN(std::string id, farm_->SubmitJobFile(JobFile(R"job(
name: cancel-me
env: {MARK: "@DIR@"}
steps:
  - name: sleeper
    run: |
      echo $$ > "$MARK/shell.pid"
      sleep 300 &
      echo $! > "$MARK/sleep.pid"
      wait
  - name: after
    run: touch "$MARK/after.ran"
)job",
                                                                    {{"DIR", farm_->root()}})));
  ASSERT_OK_AND_ASSIGN(pid_t shell_pid, WaitForPidFile(farm_->Path("shell.pid")));
  ASSERT_OK_AND_ASSIGN(pid_t sleep_pid, WaitForPidFile(farm_->Path("sleep.pid")));
  ASSERT_TRUE(IsProcessAlive(sleep_pid));
  ASSERT_OK_AND_ASSIGN(farm::v1::Job running, farm_->GetJob(id));
  EXPECT_EQ(running.state(), farm::v1::RUNNING) << running.ShortDebugString();

  ASSERT_OK_AND_ASSIGN(CommandResult cancel, farm_->RunFarmctl({"cancel", id}));
  ASSERT_EQ(cancel.exit_code, 0) << cancel.DebugString();

  ASSERT_OK_AND_ASSIGN(farm::v1::Job job,
                       farm_->WaitForJobState(id, farm::v1::CANCELLED, absl::Seconds(5)));
  EXPECT_TRUE(job.cancel_requested());
  ASSERT_EQ(job.attempts_size(), 1) << job.ShortDebugString();
  EXPECT_EQ(job.attempts(0).outcome(), farm::v1::ATTEMPT_CANCELLED);
  ASSERT_GE(job.attempts(0).steps_size(), 1) << job.ShortDebugString();
  EXPECT_EQ(job.attempts(0).steps(0).state(), farm::v1::STEP_CANCELLED);

  EXPECT_OK(WaitFor([&] { return !IsProcessAlive(sleep_pid); }, absl::Seconds(3),
                    "the step's sleep to die"));
  EXPECT_OK(WaitFor([&] { return !IsProcessAlive(shell_pid); }, absl::Seconds(3),
                    "the step's shell to die"));
  EXPECT_FALSE(FileExists(farm_->Path("after.ran"))) << "a step after the cancelled one ran";

  // The agent is free again.
  ASSERT_OK_AND_ASSIGN(std::string next, farm_->SubmitJobFile("steps: [{run: 'true'}]\n"));
  ASSERT_OK_AND_ASSIGN(farm::v1::Job done, farm_->WaitForJobDone(next));
  EXPECT_EQ(done.state(), farm::v1::SUCCEEDED) << done.ShortDebugString();
}

TEST_F(JobTest, CancelOfAQueuedJobNeverRunsIt) {
  // No agent: the job stays queued.
  ASSERT_OK_AND_ASSIGN(std::string id, farm_->SubmitJobFile(JobFile(R"job(
name: never-runs
env: {MARK: "@DIR@"}
steps:
  - run: touch "$MARK/ran"
)job",
                                                                    {{"DIR", farm_->root()}})));
  ASSERT_OK_AND_ASSIGN(farm::v1::Job queued, farm_->GetJob(id));
  EXPECT_EQ(queued.state(), farm::v1::QUEUED);
  ASSERT_OK_AND_ASSIGN(CommandResult cancel, farm_->RunFarmctl({"cancel", id}));
  ASSERT_EQ(cancel.exit_code, 0) << cancel.DebugString();
  ASSERT_OK_AND_ASSIGN(farm::v1::Job job,
                       farm_->WaitForJobState(id, farm::v1::CANCELLED, absl::Seconds(5)));
  EXPECT_EQ(job.attempts_size(), 0) << job.ShortDebugString();

  // An agent that arrives afterwards does not run it.
  ASSERT_OK(StartAgent("late"));
  ASSERT_OK_AND_ASSIGN(std::string other, farm_->SubmitJobFile("steps: [{run: 'true'}]\n"));
  ASSERT_OK_AND_ASSIGN(farm::v1::Job done, farm_->WaitForJobDone(other));
  EXPECT_EQ(done.state(), farm::v1::SUCCEEDED);
  EXPECT_FALSE(FileExists(farm_->Path("ran")));
}

TEST_F(JobTest, StepTimeoutFailsTheJob) {
  ASSERT_OK(StartAgent("a1"));
  ASSERT_OK_AND_ASSIGN(std::string id, farm_->SubmitJobFile(R"job(
name: slow-step
steps:
  - name: slow
    run: |
      echo started
      sleep 120
    timeout: 1s
  - name: after
    run: echo after
)job"));
  // Well before the sleep would end on its own.
  ASSERT_OK_AND_ASSIGN(farm::v1::Job job, farm_->WaitForJobDone(id, absl::Seconds(20)));

  EXPECT_EQ(job.state(), farm::v1::FAILED) << job.ShortDebugString();
  ASSERT_EQ(job.attempts_size(), 1) << job.ShortDebugString();
  const farm::v1::Attempt& attempt = job.attempts(0);
  EXPECT_EQ(attempt.outcome(), farm::v1::ATTEMPT_FAILED);
  ASSERT_EQ(attempt.steps_size(), 2) << job.ShortDebugString();
  EXPECT_EQ(attempt.steps(0).state(), farm::v1::STEP_TIMED_OUT);
  EXPECT_GE(attempt.steps(0).duration_ms(), 1000);
  EXPECT_LT(attempt.steps(0).duration_ms(), 120'000);
  EXPECT_EQ(attempt.steps(1).state(), farm::v1::STEP_SKIPPED);
  EXPECT_THAT(absl::AsciiStrToLower(absl::StrCat(job.reason(), " | ", attempt.reason(), " | ",
                                                 attempt.steps(0).message())),
              HasSubstr("time"));
  ASSERT_OK_AND_ASSIGN(std::string logs, farm_->Logs(id));
  EXPECT_EQ(logs, "started\n");
}

TEST_F(JobTest, JobTimeoutFailsTheJob) {
  ASSERT_OK(StartAgent("a1"));
  ASSERT_OK_AND_ASSIGN(std::string id, farm_->SubmitJobFile(R"job(
name: slow-job
timeout: 1s
steps:
  - name: slow
    run: sleep 120
)job"));
  ASSERT_OK_AND_ASSIGN(farm::v1::Job job, farm_->WaitForJobDone(id, absl::Seconds(20)));
  EXPECT_EQ(job.state(), farm::v1::FAILED) << job.ShortDebugString();
  ASSERT_EQ(job.attempts_size(), 1) << job.ShortDebugString();
  ASSERT_EQ(job.attempts(0).steps_size(), 1) << job.ShortDebugString();
  EXPECT_EQ(job.attempts(0).steps(0).state(), farm::v1::STEP_TIMED_OUT);
}

TEST_F(JobTest, StepSeesFarmVariablesAndJobAndStepEnv) {
  ASSERT_OK(StartAgent("a1"));
  ASSERT_OK_AND_ASSIGN(std::string id, farm_->SubmitJobFile(R"job(
name: env
env: {JOB_VAR: from-job, BOTH: job}
steps:
  - name: show
    env: {STEP_VAR: from-step, BOTH: step}
    run: |
      echo "job_id=$FARM_JOB_ID"
      echo "attempt=$FARM_ATTEMPT"
      echo "step=$FARM_STEP"
      echo "workspace=$FARM_WORKSPACE"
      echo "pwd=$(pwd)"
      echo "vars=$JOB_VAR,$STEP_VAR,$BOTH"
  - name: other
    run: echo "step=$FARM_STEP vars=$JOB_VAR,${STEP_VAR:-unset},$BOTH"
)job"));
  ASSERT_OK_AND_ASSIGN(farm::v1::Job job, farm_->WaitForJobDone(id));
  ASSERT_EQ(job.state(), farm::v1::SUCCEEDED) << job.ShortDebugString();
  ASSERT_OK_AND_ASSIGN(std::string logs, farm_->Logs(id));

  std::map<std::string, std::string> seen;
  std::vector<std::string> lines = absl::StrSplit(logs, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 7u) << logs;
  for (int i = 0; i < 6; ++i) {
    std::pair<std::string, std::string> kv = absl::StrSplit(lines[i], absl::MaxSplits('=', 1));
    seen[kv.first] = kv.second;
  }
  EXPECT_EQ(seen["job_id"], id);
  EXPECT_EQ(seen["attempt"], "1");
  EXPECT_EQ(seen["step"], "show");
  EXPECT_THAT(seen["workspace"], StartsWith(farm_->agent_work_dir("a1") + "/"));
  EXPECT_EQ(seen["pwd"], seen["workspace"]) << "steps run in the workspace";
  EXPECT_EQ(seen["vars"], "from-job,from-step,step") << "step env goes on top of job env";
  EXPECT_EQ(lines[6], "step=other vars=from-job,unset,job") << "step env is per step";

  // The workspace is removed after a job that succeeded.
  EXPECT_OK(WaitFor([&] { return !FileExists(seen["workspace"]); }, absl::Seconds(5),
                    "the workspace to be removed"));
}

TEST_F(JobTest, FailedWorkspaceIsKeptWithKeepFailed) {
  ASSERT_OK(StartAgent("keeper", {}, 1, {"--keep_failed"}));
  ASSERT_OK_AND_ASSIGN(std::string id, farm_->SubmitJobFile(R"job(
steps:
  - run: |
      echo "$FARM_WORKSPACE"
      echo evidence > evidence.txt
      exit 1
)job"));
  ASSERT_OK_AND_ASSIGN(farm::v1::Job job, farm_->WaitForJobDone(id));
  ASSERT_EQ(job.state(), farm::v1::FAILED) << job.ShortDebugString();
  ASSERT_OK_AND_ASSIGN(std::string logs, farm_->Logs(id));
  const std::string workspace(absl::StripSuffix(logs, "\n"));
  ASSERT_THAT(workspace, StartsWith(farm_->agent_work_dir("keeper") + "/"));
  ASSERT_OK_AND_ASSIGN(std::string evidence, ReadFile(workspace + "/evidence.txt"));
  EXPECT_EQ(evidence, "evidence\n");
}

}  // namespace
}  // namespace farm::testing
