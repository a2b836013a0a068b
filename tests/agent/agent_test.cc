// The Agent object against an in-process fake AgentService: lease → run → logs → complete,
// cancel, stale leases, timeouts, re-registration and drain.
#include "agent/agent.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/clock.h"
#include "tests/agent/fake_agent_service.h"
#include "tests/agent/test_util.h"
#include "tests/testing/status_matchers.h"

namespace farm::agent {
namespace {

namespace fs = std::filesystem;
using ::farm::agent::testing::FakeAgentService;
using ::farm::agent::testing::ProcessGone;
using ::farm::agent::testing::TempDir;
using ::farm::agent::testing::WaitFor;
using ::testing::AnyOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::StartsWith;
using State = FakeAgentService::State;

farm::v1::StepSpec* AddStep(farm::v1::JobSpec* spec, const std::string& name,
                            const std::string& run) {
  farm::v1::StepSpec* step = spec->add_steps();
  step->set_name(name);
  step->set_run(run);
  return step;
}

// A step that runs until it is stopped, printing "pid=<its process id>" first.
constexpr char kPrintPidAndSleep[] = "echo pid=$$; exec sleep 1000";

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    address_ = fake_.Start();
    ASSERT_FALSE(address_.empty());
    fake_.SetTimings(/*lease_ttl_ms=*/30'000, /*heartbeat_interval_ms=*/200);
    options_.coordinator = address_;
    options_.security.insecure = true;  // the test coordinator speaks plaintext
    options_.name = "test-agent";
    options_.labels["pool"] = "test";
    options_.slots = 1;
    options_.work_dir = dir_.path() + "/work";
    options_.lease_wait_ms = 500;
    options_.drain_timeout_ms = 60'000;
    options_.version = "test";
  }

  void StartAgent(common::Clock* clock = common::RealClock()) {
    agent_ = std::make_unique<Agent>(options_, nullptr, clock);
    ASSERT_OK(agent_->Init());
    ASSERT_OK(agent_->Start());
  }

  bool WaitCompleted(const std::string& job) {
    return fake_.WaitUntil([&](const State& s) {
      auto it = s.jobs.find(job);
      return it != s.jobs.end() && it->second.completions > 0;
    });
  }
  // Queues "job-1" with one step and waits until the agent completes it.
  bool RunOneStep(const std::string& step, const std::string& script) {
    farm::v1::JobSpec spec;
    AddStep(&spec, step, script);
    fake_.AddJob("job-1", spec);
    return WaitCompleted("job-1");
  }
  bool WaitForLog(const std::string& job, uint32_t step, const std::string& text) {
    return fake_.WaitUntil([&](const State& s) {
      auto it = s.jobs.find(job);
      if (it == s.jobs.end()) return false;
      auto log = it->second.logs.find(step);
      return log != it->second.logs.end() && log->second.find(text) != std::string::npos;
    });
  }
  // Queues `spec` as `job` and waits until step `step` (kPrintPidAndSleep) has printed its
  // process id; returns it, or 0 when it did not in time.
  pid_t AddJobAndWaitForPid(const std::string& job, const farm::v1::JobSpec& spec,
                            uint32_t step = 0) {
    fake_.AddJob(job, spec);
    return WaitForLog(job, step, "pid=") ? PidFromLog(job, step) : 0;
  }
  FakeAgentService::FakeJob Job(const std::string& id) { return fake_.Snapshot().jobs[id]; }
  // "pid=123" in a step's output → 123.
  pid_t PidFromLog(const std::string& job, uint32_t step) {
    const std::string log = Job(job).logs[step];
    const size_t at = log.find("pid=");
    int pid = 0;
    if (at == std::string::npos) return 0;
    const size_t end = log.find('\n', at);
    if (!absl::SimpleAtoi(log.substr(at + 4, end - at - 4), &pid)) return 0;
    return pid;
  }
  bool WorkDirEmpty() { return fs::is_empty(options_.work_dir); }

  // Two failures with `code` on each of `methods` (each report and the log upload by
  // default): the job still completes, with its whole output, once.
  void ExpectRetriesOn(grpc::StatusCode code,
                       const std::vector<std::string>& methods = {"StepStarted", "StepFinished",
                                                                  "UploadLogs", "CompleteJob"}) {
    for (const std::string& method : methods) fake_.FailNext(method, 2, code);
    StartAgent();
    farm::v1::JobSpec spec;
    // The step runs until its start was reported (a step that ends sooner is never reported
    // started, and this test wants that call to fail and be retried too).
    const std::string go = dir_.path() + "/go";
    AddStep(&spec, "build", "echo one; while [ ! -e " + go + " ]; do sleep 0.01; done; echo two");
    fake_.AddJob("job-1", spec);
    ASSERT_TRUE(fake_.WaitUntil([](const FakeAgentService::State& s) {
      auto it = s.jobs.find("job-1");
      return it != s.jobs.end() && !it->second.reported_started.empty();
    }));
    std::ofstream(go) << "go";
    ASSERT_TRUE(WaitCompleted("job-1"));
    const FakeAgentService::FakeJob job = Job("job-1");
    EXPECT_EQ(job.outcome, farm::v1::ATTEMPT_SUCCEEDED);
    EXPECT_EQ(job.completions, 1);
    EXPECT_EQ(job.logs.at(0), "one\ntwo\n");
    EXPECT_EQ(job.finished.at(0).state(), farm::v1::STEP_SUCCEEDED);
    EXPECT_EQ(fake_.Snapshot().failed_calls, 2 * static_cast<int>(methods.size()));
  }

  TempDir dir_;
  FakeAgentService fake_;
  std::string address_;
  AgentOptions options_;
  common::FakeClock clock_;  // for the tests that pass it to StartAgent(); outlives agent_
  std::unique_ptr<Agent> agent_;
};

TEST_F(AgentTest, RegistersWithLabelsSlotsAndSession) {
  StartAgent();
  ASSERT_TRUE(fake_.WaitUntil([](const State& s) { return !s.registrations.empty(); }));
  const farm::v1::RegisterRequest reg = fake_.Snapshot().registrations[0];
  EXPECT_EQ(reg.name(), "test-agent");
  EXPECT_EQ(reg.slots(), 1u);
  EXPECT_THAT(reg.labels(), Contains(Pair("pool", "test")));
  EXPECT_THAT(reg.labels(), Contains(Pair("os", "linux")));
  EXPECT_TRUE(reg.labels().contains("arch"));
  EXPECT_EQ(reg.session_id().size(), 32u);
  EXPECT_EQ(reg.session_id(), agent_->session_id());
  EXPECT_EQ(reg.version(), "test");
  // How it isolates steps, for `farmctl agents`: what it really uses here.
  EXPECT_EQ(reg.isolation().kill(), agent_->isolation()->kill_mechanism());
  EXPECT_THAT(reg.isolation().kill(), AnyOf("cgroup-v2", "process-group"));
  EXPECT_EQ(reg.isolation().run_as(), agent_->isolation()->user().name);
  EXPECT_EQ(reg.isolation().sandbox(), "");
}

TEST_F(AgentTest, RunsAJobAndReportsStepsLogsAndOutcome) {
  StartAgent();
  farm::v1::JobSpec spec;
  spec.set_name("hello");
  (*spec.mutable_env())["GREETING"] = "hello";
  AddStep(&spec, "greet",
          "echo \"$GREETING from $FARM_JOB_ID attempt $FARM_ATTEMPT step $FARM_STEP\"; "
          "echo to-stderr >&2");
  farm::v1::StepSpec* build =
      AddStep(&spec, "build",
              "mkdir -p out; echo data > out/result.txt; echo \"$GREETING\"; "
              "echo \"ws=$FARM_WORKSPACE\"; pwd");
  (*build->mutable_env())["GREETING"] = "bye";
  fake_.AddJob("job-1", spec);

  ASSERT_TRUE(WaitCompleted("job-1"));
  const FakeAgentService::FakeJob job = Job("job-1");
  EXPECT_EQ(job.outcome, farm::v1::ATTEMPT_SUCCEEDED);
  EXPECT_EQ(job.reason, "");
  EXPECT_THAT(job.started_steps, ElementsAre(0u, 1u));
  EXPECT_EQ(job.logs.at(0), "hello from job-1 attempt 1 step greet\nto-stderr\n");
  const std::string& log1 = job.logs.at(1);
  EXPECT_THAT(log1, StartsWith("bye\nws=" + options_.work_dir + "/job-1-1-"));
  ASSERT_EQ(job.finished.size(), 2u);
  const farm::v1::StepResult& greet = job.finished.at(0);
  EXPECT_EQ(greet.name(), "greet");
  EXPECT_EQ(greet.state(), farm::v1::STEP_SUCCEEDED);
  EXPECT_EQ(greet.exit_code(), 0);
  EXPECT_EQ(greet.log_bytes(), static_cast<int64_t>(job.logs.at(0).size()));
  EXPECT_GT(greet.started_ms(), 0);
  EXPECT_EQ(job.finished.at(1).log_bytes(), static_cast<int64_t>(log1.size()));
  // The workspace is removed after a successful attempt.
  EXPECT_TRUE(WaitFor([&] { return WorkDirEmpty(); }));
}

TEST_F(AgentTest, TheLastStepsResultGoesWithTheCompletionWhenTheCoordinatorTakesIt) {
  fake_.SetFeatures({"complete_job.last_step"});
  StartAgent();
  farm::v1::JobSpec spec;
  spec.set_name("two");
  AddStep(&spec, "first", "true");
  AddStep(&spec, "last", "exit 4");
  fake_.AddJob("job-1", spec);
  farm::v1::JobSpec with_artifacts = spec;
  with_artifacts.add_artifacts("*.txt");
  fake_.AddJob("job-2", with_artifacts);

  ASSERT_TRUE(WaitCompleted("job-1"));
  ASSERT_TRUE(WaitCompleted("job-2"));
  const FakeAgentService::FakeJob job = Job("job-1");
  EXPECT_EQ(job.outcome, farm::v1::ATTEMPT_FAILED);
  EXPECT_THAT(job.reason, HasSubstr("exited with code 4"));
  ASSERT_EQ(job.finished.size(), 2u);
  EXPECT_EQ(job.finished.at(1).state(), farm::v1::STEP_FAILED);
  EXPECT_EQ(job.finished.at(1).exit_code(), 4);
  EXPECT_EQ(job.finished_with_completion, std::set<uint32_t>{1});
  // Artifacts are collected between the last step and the completion: StepFinished as usual.
  EXPECT_TRUE(Job("job-2").finished_with_completion.empty());
  EXPECT_EQ(Job("job-2").finished.size(), 2u);
}

TEST_F(AgentTest, AnOlderCoordinatorGetsEveryStepWithStepFinished) {
  StartAgent();  // the fake lists no features
  farm::v1::JobSpec spec;
  spec.set_name("one");
  AddStep(&spec, "only", "true");
  fake_.AddJob("job-1", spec);
  fake_.AddJob("job-2", spec);
  ASSERT_TRUE(WaitCompleted("job-1"));
  ASSERT_TRUE(WaitCompleted("job-2"));
  EXPECT_EQ(Job("job-1").finished.size(), 1u);
  EXPECT_TRUE(Job("job-1").finished_with_completion.empty());
  // Nor does it hand out the next job with a completion: the slot asks with Lease.
  EXPECT_FALSE(Job("job-2").leased_with_completion);
}

TEST_F(AgentTest, TheNextJobComesWithTheCompletionWhenTheCoordinatorOffersIt) {
  fake_.SetFeatures({"complete_job.next_lease"});
  farm::v1::JobSpec spec;
  spec.set_name("one");
  AddStep(&spec, "only", "echo \"$FARM_JOB_ID\"");
  for (const char* id : {"job-1", "job-2", "job-3"}) fake_.AddJob(id, spec);
  StartAgent();  // one slot
  for (const char* id : {"job-1", "job-2", "job-3"}) ASSERT_TRUE(WaitCompleted(id)) << id;
  // The first came from Lease; each next one with the completion of the one before, and ran.
  EXPECT_FALSE(Job("job-1").leased_with_completion);
  for (const char* id : {"job-2", "job-3"}) {
    const FakeAgentService::FakeJob job = Job(id);
    EXPECT_TRUE(job.leased_with_completion) << id;
    EXPECT_EQ(job.outcome, farm::v1::ATTEMPT_SUCCEEDED) << id;
    EXPECT_EQ(job.logs.at(0), std::string(id) + "\n");
  }
}

TEST_F(AgentTest, FailingStepFailsTheJobAndSkipsTheRest) {
  options_.keep_failed = true;
  StartAgent();
  farm::v1::JobSpec spec;
  AddStep(&spec, "prepare", "echo prepared");
  AddStep(&spec, "build", "echo building; exit 2");
  AddStep(&spec, "never", "touch never-ran");
  fake_.AddJob("job-1", spec);

  ASSERT_TRUE(WaitCompleted("job-1"));
  const FakeAgentService::FakeJob job = Job("job-1");
  EXPECT_EQ(job.outcome, farm::v1::ATTEMPT_FAILED);
  EXPECT_EQ(job.reason, "step build exited with code 2");
  EXPECT_THAT(job.started_steps, ElementsAre(0u, 1u));
  EXPECT_FALSE(job.finished.contains(2));
  EXPECT_EQ(job.finished.at(1).state(), farm::v1::STEP_FAILED);
  EXPECT_EQ(job.finished.at(1).exit_code(), 2);
  EXPECT_EQ(job.logs.at(1), "building\n");
  // --keep_failed: the workspace stays, without the skipped step's file.
  ASSERT_TRUE(WaitFor([&] { return agent_->running_jobs() == 0; }));
  std::vector<fs::path> kept;
  for (const auto& entry : fs::directory_iterator(options_.work_dir)) kept.push_back(entry.path());
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_FALSE(fs::exists(kept[0] / "never-ran"));
}

farm::v1::StepSpec* AddStepWhen(farm::v1::JobSpec* spec, const std::string& name,
                                const std::string& run, farm::v1::StepWhen when) {
  farm::v1::StepSpec* step = AddStep(spec, name, run);
  step->set_when(when);
  return step;
}

TEST_F(AgentTest, OnFailureAndAlwaysStepsRunAfterAFailureButTheJobStillFails) {
  StartAgent();
  farm::v1::JobSpec spec;
  AddStep(&spec, "prepare", "echo prepared");
  AddStep(&spec, "build", "echo building; exit 2");
  AddStep(&spec, "test", "echo testing");  // on_success (the default): skipped
  AddStepWhen(&spec, "report", "echo reporting", farm::v1::WHEN_ON_FAILURE);
  AddStepWhen(&spec, "cleanup", "echo cleaning", farm::v1::WHEN_ALWAYS);
  AddStepWhen(&spec, "deploy", "echo deploying", farm::v1::WHEN_ON_SUCCESS);
  fake_.AddJob("job-1", spec);

  ASSERT_TRUE(WaitCompleted("job-1"));
  const FakeAgentService::FakeJob job = Job("job-1");
  EXPECT_EQ(job.outcome, farm::v1::ATTEMPT_FAILED);
  EXPECT_EQ(job.reason, "step build exited with code 2");
  EXPECT_THAT(job.started_steps, ElementsAre(0u, 1u, 3u, 4u));
  EXPECT_EQ(job.finished.at(1).state(), farm::v1::STEP_FAILED);
  EXPECT_FALSE(job.finished.contains(2));
  EXPECT_EQ(job.finished.at(3).state(), farm::v1::STEP_SUCCEEDED);
  EXPECT_EQ(job.logs.at(3), "reporting\n");
  EXPECT_EQ(job.finished.at(4).state(), farm::v1::STEP_SUCCEEDED);
  EXPECT_EQ(job.logs.at(4), "cleaning\n");
  EXPECT_FALSE(job.finished.contains(5));
}

TEST_F(AgentTest, OnFailureStepsAreSkippedWhenAllSucceedAndAlwaysStepsRun) {
  StartAgent();
  farm::v1::JobSpec spec;
  AddStep(&spec, "build", "echo building");
  AddStepWhen(&spec, "report", "echo reporting", farm::v1::WHEN_ON_FAILURE);
  AddStepWhen(&spec, "cleanup", "echo cleaning", farm::v1::WHEN_ALWAYS);
  AddStep(&spec, "deploy", "echo deploying");
  fake_.AddJob("job-1", spec);

  ASSERT_TRUE(WaitCompleted("job-1"));
  const FakeAgentService::FakeJob job = Job("job-1");
  EXPECT_EQ(job.outcome, farm::v1::ATTEMPT_SUCCEEDED) << job.reason;
  EXPECT_THAT(job.started_steps, ElementsAre(0u, 2u, 3u));
  EXPECT_FALSE(job.finished.contains(1));
  EXPECT_EQ(job.logs.at(2), "cleaning\n");
  EXPECT_EQ(job.logs.at(3), "deploying\n");
}

TEST_F(AgentTest, AFailingCleanupStepKeepsTheFirstFailureAsTheReason) {
  StartAgent();
  farm::v1::JobSpec spec;
  spec.set_kill_grace_ms(100);
  AddStep(&spec, "test", "sleep 1000")->set_timeout_ms(200);  // its own timeout, not the job's
  AddStepWhen(&spec, "collect", "exit 7", farm::v1::WHEN_ON_FAILURE);
  AddStepWhen(&spec, "cleanup", "echo cleaning", farm::v1::WHEN_ALWAYS);
  fake_.AddJob("job-1", spec);

  ASSERT_TRUE(WaitCompleted("job-1"));
  const FakeAgentService::FakeJob job = Job("job-1");
  EXPECT_EQ(job.outcome, farm::v1::ATTEMPT_FAILED);
  EXPECT_EQ(job.reason, "step test timed out after 200ms");
  EXPECT_THAT(job.started_steps, ElementsAre(0u, 1u, 2u));
  EXPECT_EQ(job.finished.at(0).state(), farm::v1::STEP_TIMED_OUT);
  EXPECT_EQ(job.finished.at(1).state(), farm::v1::STEP_FAILED);
  EXPECT_EQ(job.finished.at(1).exit_code(), 7);
  EXPECT_EQ(job.finished.at(2).state(), farm::v1::STEP_SUCCEEDED);
}

TEST_F(AgentTest, NothingRunsAfterACancelNotEvenAlwaysSteps) {
  StartAgent();
  const std::string marker = dir_.path() + "/cleanup-ran";
  farm::v1::JobSpec spec;
  spec.set_kill_grace_ms(60'000);
  AddStep(&spec, "sleep", kPrintPidAndSleep);
  AddStepWhen(&spec, "report", absl::StrCat("touch ", marker), farm::v1::WHEN_ON_FAILURE);
  AddStepWhen(&spec, "cleanup", absl::StrCat("touch ", marker), farm::v1::WHEN_ALWAYS);
  ASSERT_GT(AddJobAndWaitForPid("job-1", spec), 0);

  fake_.CancelJob("job-1");
  ASSERT_TRUE(WaitCompleted("job-1"));
  const FakeAgentService::FakeJob job = Job("job-1");
  EXPECT_EQ(job.outcome, farm::v1::ATTEMPT_CANCELLED);
  EXPECT_EQ(job.reason, "cancelled");
  EXPECT_THAT(job.started_steps, ElementsAre(0u));
  EXPECT_EQ(job.finished.at(0).state(), farm::v1::STEP_CANCELLED);
  EXPECT_FALSE(fs::exists(marker));
}

TEST_F(AgentTest, NothingRunsAfterACancelOfACleanupStep) {
  // A failure, then the user cancels while the cleanup runs: the attempt is cancelled (never
  // retried), and the next cleanup step does not run.
  StartAgent();
  const std::string marker = dir_.path() + "/second-cleanup-ran";
  farm::v1::JobSpec spec;
  spec.set_kill_grace_ms(60'000);
  AddStep(&spec, "build", "exit 1");
  AddStepWhen(&spec, "cleanup", kPrintPidAndSleep, farm::v1::WHEN_ALWAYS);
  AddStepWhen(&spec, "more-cleanup", absl::StrCat("touch ", marker), farm::v1::WHEN_ALWAYS);
  ASSERT_GT(AddJobAndWaitForPid("job-1", spec, 1), 0);

  fake_.CancelJob("job-1");
  ASSERT_TRUE(WaitCompleted("job-1"));
  const FakeAgentService::FakeJob job = Job("job-1");
  EXPECT_EQ(job.outcome, farm::v1::ATTEMPT_CANCELLED);
  EXPECT_THAT(job.started_steps, ElementsAre(0u, 1u));
  EXPECT_FALSE(fs::exists(marker));
}

TEST_F(AgentTest, NothingRunsAfterTheJobTimeoutNotEvenAlwaysSteps) {
  StartAgent();
  const std::string marker = dir_.path() + "/cleanup-ran";
  farm::v1::JobSpec spec;
  spec.set_timeout_ms(300);
  spec.set_kill_grace_ms(100);
  AddStep(&spec, "slow", "sleep 1000");
  AddStepWhen(&spec, "report", absl::StrCat("touch ", marker), farm::v1::WHEN_ON_FAILURE);
  AddStepWhen(&spec, "cleanup", absl::StrCat("touch ", marker), farm::v1::WHEN_ALWAYS);
  fake_.AddJob("job-1", spec);

  ASSERT_TRUE(WaitCompleted("job-1"));
  const FakeAgentService::FakeJob job = Job("job-1");
  EXPECT_EQ(job.outcome, farm::v1::ATTEMPT_FAILED);
  EXPECT_EQ(job.reason, "job timed out after 300ms");
  EXPECT_THAT(job.started_steps, ElementsAre(0u));
  EXPECT_EQ(job.finished.at(0).state(), farm::v1::STEP_TIMED_OUT);
  EXPECT_FALSE(fs::exists(marker));
}

TEST_F(AgentTest, NothingRunsAfterTheLeaseIsLost) {
  StartAgent();
  const std::string marker = dir_.path() + "/cleanup-ran";
  farm::v1::JobSpec spec;
  spec.set_kill_grace_ms(60'000);
  AddStep(&spec, "sleep", kPrintPidAndSleep);
  AddStepWhen(&spec, "cleanup", absl::StrCat("touch ", marker), farm::v1::WHEN_ALWAYS);
  const pid_t pid = AddJobAndWaitForPid("job-1", spec);
  ASSERT_GT(pid, 0);
  // The step runs on: its start is reported (after a short delay) before the lease goes.
  ASSERT_TRUE(fake_.WaitUntil([](const State& s) {
    return s.jobs.at("job-1").reported_started == std::vector<uint32_t>{0};
  }));

  fake_.InvalidateLease("job-1");
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(pid); }));
  EXPECT_TRUE(WaitFor([&] { return agent_->running_jobs() == 0; }));
  const FakeAgentService::FakeJob job = Job("job-1");
  EXPECT_EQ(job.completions, 0);
  EXPECT_THAT(job.started_steps, ElementsAre(0u));
  EXPECT_FALSE(fs::exists(marker));
}

TEST_F(AgentTest, StepKilledBySignalIsReported) {
  StartAgent();
  ASSERT_TRUE(RunOneStep("test", "kill -9 $$"));
  const FakeAgentService::FakeJob job = Job("job-1");
  EXPECT_EQ(job.outcome, farm::v1::ATTEMPT_FAILED);
  EXPECT_EQ(job.reason, "step test killed by signal 9");
  EXPECT_EQ(job.finished.at(0).signal(), 9);
}

TEST_F(AgentTest, UserCancelReachesTheRunningStep) {
  // A long heartbeat interval: the cancel can only arrive this fast because the agent
  // re-issues its parked heartbeat with the new lease as soon as the job starts.
  fake_.SetTimings(30'000, 60'000);
  StartAgent();
  farm::v1::JobSpec spec;
  spec.set_kill_grace_ms(60'000);
  AddStep(&spec, "sleep", kPrintPidAndSleep);
  const pid_t pid = AddJobAndWaitForPid("job-1", spec);
  ASSERT_GT(pid, 0);

  fake_.CancelJob("job-1");
  ASSERT_TRUE(WaitCompleted("job-1"));
  const FakeAgentService::FakeJob job = Job("job-1");
  EXPECT_EQ(job.outcome, farm::v1::ATTEMPT_CANCELLED);
  EXPECT_EQ(job.reason, "cancelled");
  EXPECT_EQ(job.finished.at(0).state(), farm::v1::STEP_CANCELLED);
  EXPECT_EQ(job.finished.at(0).signal(), SIGTERM);
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(pid); }));
}

TEST_F(AgentTest, StaleLeaseAbandonsTheAttemptWithoutReporting) {
  StartAgent();
  farm::v1::JobSpec spec;
  spec.set_kill_grace_ms(60'000);
  AddStep(&spec, "sleep", kPrintPidAndSleep);
  AddStep(&spec, "after", "true");
  const pid_t pid = AddJobAndWaitForPid("job-1", spec);
  ASSERT_GT(pid, 0);

  fake_.InvalidateLease("job-1");
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(pid); }));
  EXPECT_TRUE(WaitFor([&] { return agent_->running_jobs() == 0; }));
  const FakeAgentService::FakeJob job = Job("job-1");
  EXPECT_EQ(job.completions, 0);
  EXPECT_TRUE(job.finished.empty());
  EXPECT_TRUE(WorkDirEmpty());
}

TEST_F(AgentTest, NoHeartbeatForALeaseTtlAbandonsTheAttempt) {
  // The coordinator stays unreachable for heartbeats: after a lease TTL it has given the lease
  // up, so the agent stops the step instead of running on for nothing.
  fake_.SetTimings(/*lease_ttl_ms=*/500, /*heartbeat_interval_ms=*/100);
  fake_.FailNext("Heartbeat", 1'000'000, grpc::StatusCode::UNAVAILABLE);
  StartAgent();
  const std::string pid_file = dir_.path() + "/pid";
  farm::v1::JobSpec spec;
  spec.set_kill_grace_ms(60'000);
  AddStep(&spec, "sleep", absl::StrCat("echo $$ > ", pid_file, "; exec sleep 1000"));
  fake_.AddJob("job-1", spec);
  ASSERT_TRUE(WaitFor([&] { return !testing::ReadFile(pid_file).empty(); }));
  int pid = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(testing::ReadFile(pid_file)), &pid));
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(pid); }));
  EXPECT_TRUE(WaitFor([&] { return agent_->running_jobs() == 0; }));
  EXPECT_EQ(Job("job-1").completions, 0);
}

TEST_F(AgentTest, AHungCoordinatorIsFencedOneLeaseTtlAfterTheLastRenewal) {
  // The coordinator stops answering heartbeats (hung, or cut off one way): no call fails until
  // its deadline (the park plus several seconds), but the lease is gone a TTL after the last
  // heartbeat that renewed it was sent. The agent kills the step then, while the unanswered
  // heartbeat is still outstanding, not once the call finally times out.
  fake_.SetTimings(/*lease_ttl_ms=*/600, /*heartbeat_interval_ms=*/200);
  StartAgent();
  const std::string pid_file = dir_.path() + "/pid";
  farm::v1::JobSpec spec;
  spec.set_kill_grace_ms(60'000);
  AddStep(&spec, "sleep", absl::StrCat("echo $$ > ", pid_file, "; exec sleep 1000"));
  fake_.AddJob("job-1", spec);
  ASSERT_TRUE(WaitFor([&] { return !testing::ReadFile(pid_file).empty(); }));
  int pid = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(testing::ReadFile(pid_file)), &pid));

  fake_.HangHeartbeats(true);
  ASSERT_TRUE(fake_.WaitUntil([](const State& s) { return s.hung_heartbeats > 0; }));
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(pid); }));
  EXPECT_EQ(fake_.Snapshot().hung_heartbeats_ended, 0)
      << "the step was only stopped once the hung heartbeat call had failed";
  EXPECT_TRUE(WaitFor([&] { return agent_->running_jobs() == 0; }));
  EXPECT_EQ(Job("job-1").completions, 0);
}

// Self-fencing on the injected clock: time passes only when the test moves the FakeClock, and
// the lease is fenced exactly when it has gone a TTL without renewal, not a millisecond before.
TEST_F(AgentTest, SelfFencingFollowsTheInjectedClock) {
  constexpr int64_t kTtlMs = 60'000;
  fake_.SetTimings(kTtlMs, /*heartbeat_interval_ms=*/200);
  // No heartbeat renews anything: the coordinator cannot be reached for them.
  fake_.FailNext("Heartbeat", 1'000'000, grpc::StatusCode::UNAVAILABLE);
  StartAgent(&clock_);
  farm::v1::JobSpec spec;
  spec.set_kill_grace_ms(60'000);
  AddStep(&spec, "sleep", kPrintPidAndSleep);
  const pid_t pid = AddJobAndWaitForPid("job-1", spec);
  ASSERT_GT(pid, 0);

  clock_.AdvanceMs(kTtlMs - 1);
  EXPECT_EQ(agent_->fenced_attempts(), 0);
  EXPECT_FALSE(ProcessGone(pid));
  clock_.AdvanceMs(1);
  EXPECT_EQ(agent_->fenced_attempts(), 1);
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(pid); }));
  EXPECT_TRUE(WaitFor([&] { return agent_->running_jobs() == 0; }));
  const FakeAgentService::FakeJob job = Job("job-1");
  EXPECT_EQ(job.completions, 0);
  EXPECT_TRUE(job.finished.empty());
}

// A heartbeat that comes back valid renews the lease as of the moment it was sent, on the
// injected clock: after one sent past the first jump, a second jump of almost a TTL fences
// nothing, and the attempt is still the agent's to cancel and report.
TEST_F(AgentTest, AnsweredHeartbeatsRenewTheLeaseOnTheInjectedClock) {
  constexpr int64_t kTtlMs = 60'000;
  fake_.SetTimings(kTtlMs, /*heartbeat_interval_ms=*/100);
  StartAgent(&clock_);
  farm::v1::JobSpec spec;
  AddStep(&spec, "sleep", kPrintPidAndSleep);
  ASSERT_GT(AddJobAndWaitForPid("job-1", spec), 0);

  clock_.AdvanceMs(kTtlMs - 1);
  // The second heartbeat the coordinator receives from now on was sent after the jump, and the
  // agent handled its answer before sending the third.
  const size_t seen = fake_.Snapshot().heartbeats.size();
  ASSERT_TRUE(fake_.WaitUntil([&](const State& s) { return s.heartbeats.size() >= seen + 3; }));
  clock_.AdvanceMs(kTtlMs - 1);
  EXPECT_EQ(agent_->fenced_attempts(), 0);

  fake_.CancelJob("job-1");
  ASSERT_TRUE(WaitCompleted("job-1"));
  EXPECT_EQ(Job("job-1").outcome, farm::v1::ATTEMPT_CANCELLED);
  EXPECT_EQ(agent_->fenced_attempts(), 0);
}

TEST_F(AgentTest, ADeadStepSupervisorStopsTheAgentAndItsSteps) {
  // Someone kills the supervisor: the agent cannot promise that its steps die with it any more,
  // so it cancels what runs, takes no more work and says why.
  StartAgent();
  farm::v1::JobSpec spec;
  spec.set_kill_grace_ms(60'000);
  AddStep(&spec, "sleep", kPrintPidAndSleep);
  const pid_t pid = AddJobAndWaitForPid("job-1", spec);
  ASSERT_GT(pid, 0);
  EXPECT_OK(agent_->error());

  ASSERT_GT(agent_->supervisor_pid(), 0);
  ASSERT_EQ(::kill(agent_->supervisor_pid(), SIGKILL), 0);
  ASSERT_TRUE(WaitCompleted("job-1"));
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(pid); }));
  const FakeAgentService::FakeJob job = Job("job-1");
  EXPECT_EQ(job.outcome, farm::v1::ATTEMPT_CANCELLED);
  EXPECT_THAT(job.reason, HasSubstr("supervisor"));
  EXPECT_THAT(agent_->error(), ::farm::testing::StatusIsWithMessage(absl::StatusCode::kInternal,
                                                                    HasSubstr("supervisor")));
  agent_->WaitUntilDrained();  // it drains by itself
  agent_->Shutdown();
}

TEST_F(AgentTest, StepTimeoutFailsTheJob) {
  StartAgent();
  farm::v1::JobSpec spec;
  spec.set_kill_grace_ms(100);
  AddStep(&spec, "slow", "sleep 1000")->set_timeout_ms(200);
  fake_.AddJob("job-1", spec);
  ASSERT_TRUE(WaitCompleted("job-1"));
  const FakeAgentService::FakeJob job = Job("job-1");
  EXPECT_EQ(job.outcome, farm::v1::ATTEMPT_FAILED);
  EXPECT_EQ(job.reason, "step slow timed out after 200ms");
  EXPECT_EQ(job.finished.at(0).state(), farm::v1::STEP_TIMED_OUT);
}

TEST_F(AgentTest, JobTimeoutCoversAllSteps) {
  StartAgent();
  farm::v1::JobSpec spec;
  spec.set_timeout_ms(400);
  spec.set_kill_grace_ms(100);
  AddStep(&spec, "first", "sleep 0.1");
  AddStep(&spec, "second", "sleep 1000")->set_timeout_ms(60'000);
  fake_.AddJob("job-1", spec);
  ASSERT_TRUE(WaitCompleted("job-1"));
  const FakeAgentService::FakeJob job = Job("job-1");
  EXPECT_EQ(job.outcome, farm::v1::ATTEMPT_FAILED);
  EXPECT_EQ(job.reason, "job timed out after 400ms");
  EXPECT_EQ(job.finished.at(0).state(), farm::v1::STEP_SUCCEEDED);
  EXPECT_EQ(job.finished.at(1).state(), farm::v1::STEP_TIMED_OUT);
}

TEST_F(AgentTest, RetriesReportsAndLogsOnUnavailable) {
  ExpectRetriesOn(grpc::StatusCode::UNAVAILABLE);
}

// The coordinator's disk is full: it answers RESOURCE_EXHAUSTED until space is back, and the
// attempt must survive that, not be abandoned.
TEST_F(AgentTest, RetriesReportsAndLogsWhileTheCoordinatorsDiskIsFull) {
  ExpectRetriesOn(grpc::StatusCode::RESOURCE_EXHAUSTED);
}

// A coordinator killed mid-call ends the call CANCELLED on this side. The reports are retried
// (a completion's answer may carry the next lease), not given up.
TEST_F(AgentTest, RetriesReportsCancelledByTheCoordinatorGoingAway) {
  ExpectRetriesOn(grpc::StatusCode::CANCELLED, {"StepStarted", "StepFinished", "CompleteJob"});
}

TEST_F(AgentTest, RegistersAgainWhenTheCoordinatorForgetsIt) {
  StartAgent();
  ASSERT_TRUE(fake_.WaitUntil([](const State& s) { return s.registrations.size() == 1; }));
  fake_.ForgetAgents();
  ASSERT_TRUE(fake_.WaitUntil([](const State& s) { return s.registrations.size() >= 2; }));
  EXPECT_EQ(fake_.Snapshot().registrations[1].session_id(), agent_->session_id());
  ASSERT_TRUE(RunOneStep("after-restart", "echo ok"));
  EXPECT_EQ(Job("job-1").outcome, farm::v1::ATTEMPT_SUCCEEDED);
}

TEST_F(AgentTest, RegistrationIsRetriedUntilItWorks) {
  fake_.FailNext("Register", 3, grpc::StatusCode::UNAVAILABLE);
  StartAgent();
  ASSERT_TRUE(fake_.WaitUntil([](const State& s) { return s.registrations.size() == 1; }));
  EXPECT_EQ(fake_.Snapshot().failed_calls, 3);
}

// A coordinator that refuses the agent's identity (a revoked token, a name that is not its own)
// will refuse it again: the agent stops, saying why, instead of registering for ever.
TEST_F(AgentTest, ARefusedRegistrationStopsTheAgentWithAClearError) {
  fake_.FailNext("Register", 1, grpc::StatusCode::PERMISSION_DENIED);
  StartAgent();
  ASSERT_TRUE(WaitFor([&] { return !agent_->error().ok(); }));
  EXPECT_THAT(agent_->error(), ::farm::testing::StatusIsWithMessage(
                                   absl::StatusCode::kPermissionDenied,
                                   HasSubstr("the coordinator refused this agent's identity")));
  agent_->WaitUntilDrained();  // it drains by itself
  agent_->Shutdown();
  EXPECT_EQ(fake_.Snapshot().failed_calls, 1);
  EXPECT_TRUE(fake_.Snapshot().registrations.empty());
}

TEST_F(AgentTest, AnIdentityRevokedWhileRegisteredStopsTheAgent) {
  StartAgent();
  ASSERT_TRUE(fake_.WaitUntil([](const State& s) { return s.registrations.size() == 1; }));
  fake_.FailNext("Heartbeat", 1, grpc::StatusCode::UNAUTHENTICATED);
  fake_.FailNext("Lease", 1, grpc::StatusCode::UNAUTHENTICATED);
  ASSERT_TRUE(WaitFor([&] { return !agent_->error().ok(); }));
  EXPECT_THAT(agent_->error(), ::farm::testing::StatusIsWithMessage(
                                   absl::StatusCode::kUnauthenticated, HasSubstr("re-enroll")));
  agent_->WaitUntilDrained();
  agent_->Shutdown();
  EXPECT_EQ(fake_.Snapshot().registrations.size(), 1u);
}

TEST_F(AgentTest, SlotsRunJobsConcurrently) {
  options_.slots = 2;
  StartAgent();
  // Each job waits for the other's file: with one slot they could never both finish.
  const std::string meet = dir_.path() + "/meet";
  fs::create_directories(meet);
  for (const std::string self : {"a", "b"}) {
    const std::string other = self == "a" ? "b" : "a";
    farm::v1::JobSpec spec;
    AddStep(&spec, "meet",
            absl::StrCat("touch ", meet, "/", self, "; while [ ! -f ", meet, "/", other,
                         " ]; do sleep 0.01; done"))
        ->set_timeout_ms(20'000);
    fake_.AddJob("job-" + self, spec);
  }
  ASSERT_TRUE(WaitCompleted("job-a"));
  ASSERT_TRUE(WaitCompleted("job-b"));
  EXPECT_EQ(Job("job-a").outcome, farm::v1::ATTEMPT_SUCCEEDED);
  EXPECT_EQ(Job("job-b").outcome, farm::v1::ATTEMPT_SUCCEEDED);
}

TEST_F(AgentTest, DrainStopsLeasingAndLetsRunningJobsFinish) {
  StartAgent();
  const std::string gate = dir_.path() + "/gate";
  farm::v1::JobSpec spec;
  AddStep(&spec, "wait",
          absl::StrCat("echo started; while [ ! -f ", gate, " ]; do sleep 0.01; done; echo done"));
  fake_.AddJob("job-1", spec);
  ASSERT_TRUE(WaitForLog("job-1", 0, "started"));

  agent_->Drain();
  ASSERT_TRUE(fake_.WaitUntil(
      [](const State& s) { return !s.heartbeats.empty() && s.heartbeats.back().draining(); }));
  farm::v1::JobSpec next;
  AddStep(&next, "x", "true");
  fake_.AddJob("job-2", next);
  std::ofstream(gate) << "open";
  agent_->WaitUntilDrained();

  const FakeAgentService::FakeJob job = Job("job-1");
  EXPECT_EQ(job.outcome, farm::v1::ATTEMPT_SUCCEEDED);
  EXPECT_EQ(job.logs.at(0), "started\ndone\n");
  EXPECT_FALSE(Job("job-2").leased);
  agent_->Shutdown();
}

TEST_F(AgentTest, DrainTimeoutCancelsRunningJobs) {
  options_.drain_timeout_ms = 200;
  StartAgent();
  farm::v1::JobSpec spec;
  spec.set_kill_grace_ms(60'000);
  AddStep(&spec, "forever", "echo started; exec sleep 1000");
  fake_.AddJob("job-1", spec);
  ASSERT_TRUE(WaitForLog("job-1", 0, "started"));
  agent_->Drain();
  agent_->WaitUntilDrained();
  const FakeAgentService::FakeJob job = Job("job-1");
  EXPECT_EQ(job.outcome, farm::v1::ATTEMPT_CANCELLED);
  EXPECT_THAT(job.reason, HasSubstr("drain timeout"));
  agent_->Shutdown();
}

TEST_F(AgentTest, ShutdownWithoutACoordinatorReturns) {
  options_.coordinator = "127.0.0.1:1";  // nothing listens there
  options_.security.insecure = true;
  StartAgent();
  agent_->Shutdown();
  EXPECT_EQ(agent_->registrations(), 0);
}

TEST_F(AgentTest, InitRejectsBadOptions) {
  options_.slots = 0;
  Agent agent(options_);
  EXPECT_THAT(agent.Init(), ::farm::testing::StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                                                 HasSubstr("--slots")));
}

TEST_F(AgentTest, AShortStepIsNotReportedStartedItsResultSaysWhenItStarted) {
  StartAgent();
  ASSERT_TRUE(RunOneStep("quick", "true"));
  const FakeAgentService::FakeJob job = Job("job-1");
  EXPECT_EQ(job.outcome, farm::v1::ATTEMPT_SUCCEEDED);
  // One call and one durable write fewer: the completion tells when it started.
  EXPECT_TRUE(job.reported_started.empty());
  EXPECT_THAT(job.started_steps, ElementsAre(0u));
  EXPECT_GT(job.finished.at(0).started_ms(), 0);
}

TEST_F(AgentTest, ALongerStepIsReportedStartedWhileItRuns) {
  StartAgent();
  farm::v1::JobSpec spec;
  const std::string go = dir_.path() + "/go";
  AddStep(&spec, "slow", "while [ ! -e " + go + " ]; do sleep 0.01; done");
  fake_.AddJob("job-1", spec);
  // Reported while the step still runs: it cannot end before the file exists.
  ASSERT_TRUE(fake_.WaitUntil([](const State& s) {
    auto it = s.jobs.find("job-1");
    return it != s.jobs.end() && it->second.reported_started == std::vector<uint32_t>{0};
  }));
  EXPECT_EQ(Job("job-1").completions, 0);
  std::ofstream(go) << "go";
  ASSERT_TRUE(WaitCompleted("job-1"));
  EXPECT_EQ(Job("job-1").outcome, farm::v1::ATTEMPT_SUCCEEDED);
}

}  // namespace
}  // namespace farm::agent
