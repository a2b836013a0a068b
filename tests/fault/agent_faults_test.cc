// Agent faults on the real binaries (MiniFarm): an agent killed with kill -9 in the middle of a
// step, an agent frozen (SIGSTOP) past its lease TTL while another agent completes its job, and
// a coordinator frozen past the TTL under a running agent. Each test prints one Jepsen-style
// summary line and fails on a lost job, a second result, or a step process that outlived its
// agent or its lease.
//
// The agents are signalled as processes (Subprocess::Signal), never with MiniFarm::KillAgent:
// that one also kills every descendant, which would hide exactly what is tested here.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/channel.h"
#include "common/status_macros.h"
#include "farm/v1/farm.grpc.pb.h"
#include "farm/v1/farm.pb.h"
#include "tests/testing/mini_farm.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"

namespace farm::testing {
namespace {

// The issue's bounds.
constexpr absl::Duration kOrphansGoneWithin = absl::Seconds(2);
constexpr absl::Duration kCompletedAfterTtlWithin = absl::Seconds(5);

// A job file from a template: every "@KEY@" is replaced by vars[KEY].
std::string JobFile(const std::string& text, const std::map<std::string, std::string>& vars) {
  std::vector<std::pair<std::string, std::string>> replacements;
  for (const auto& [key, value] : vars) replacements.emplace_back("@" + key + "@", value);
  return absl::StrReplaceAll(text, replacements);
}

// The pid a step wrote to `path` (written to a temporary name, then renamed), or 0.
pid_t PidFromFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  int pid = 0;
  if (!text.ok() || !absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &pid)) return 0;
  return pid;
}

// The log of the agent's current process.
std::string AgentLog(MiniFarm& farm, const std::string& name) {
  Subprocess* agent = farm.agent(name);
  if (agent == nullptr) return "";
  absl::StatusOr<std::string> text = ReadFile(agent->options().stderr_path);
  return text.ok() ? *text : "";
}

// SIGCONTs a process when it goes out of scope, so that a failing assertion never leaves a
// frozen process for the teardown to wait on.
class ThawOnExit {
 public:
  explicit ThawOnExit(Subprocess* process) : process_(process) {}
  ~ThawOnExit() {
    if (process_ != nullptr && process_->IsRunning()) (void)process_->Signal(SIGCONT);
  }

 private:
  Subprocess* process_;
};

int64_t MsSince(absl::Time start) { return absl::ToInt64Milliseconds(absl::Now() - start); }

int CountAttempts(const farm::v1::Job& job, farm::v1::AttemptOutcome outcome) {
  return static_cast<int>(
      std::count_if(job.attempts().begin(), job.attempts().end(),
                    [&](const farm::v1::Attempt& a) { return a.outcome() == outcome; }));
}

// The farm both tests use: a coordinator with a short lease TTL and two one-slot agents.
class AgentFaultTest : public ::testing::Test {
 protected:
  void StartFarm(absl::Duration ttl) {
    ttl_ = ttl;
    ASSERT_OK_AND_ASSIGN(farm_, MiniFarm::Create({.tls = true}));
    // Spare agent-loss retries: on a loaded machine a healthy agent may lose a lease now and
    // then too; that is a rerun, not a failure, and must not end a job `agent_lost`.
    ASSERT_OK(farm_->StartCoordinator(
        {absl::StrCat("--lease_ttl=", absl::FormatDuration(ttl)), "--agent_loss_retries=10"}));
    for (const char* name : {"a1", "a2"}) {
      AgentOptions options;
      options.name = name;
      ASSERT_OK(farm_->StartAgent(options));
    }
    ASSERT_OK(farm_->WaitForAgents({"a1", "a2"}));
    std::error_code ec;
    std::filesystem::create_directories(farm_->Path("pids"), ec);
    ASSERT_FALSE(ec) << ec.message();
  }

  // Submits a job whose first attempt writes the shell's pid to pids/ID-1.shell and then runs
  // `sleep 1000` in the foreground (the shell's child, as in `sh -c 'sleep 1000; echo done'`);
  // later attempts finish at once. Waits until that sleep runs; returns the job id and the first
  // attempt's processes: the shell, then its sleep.
  // With `rerun_gate`, later attempts wait (at most 60 s) for that file before they finish.
  void SubmitSleeper(const std::string& name, std::string* id, std::vector<pid_t>* processes,
                     const std::string& rerun_gate = "") {
    ASSERT_OK_AND_ASSIGN(
        *id, farm_->SubmitJobFile(
                 JobFile(R"job(
name: @NAME@
kill_grace: 1s
steps:
  - name: work
    run: |
      if [ "$FARM_ATTEMPT" = 1 ]; then
        echo $$ > @PIDS@/$FARM_JOB_ID-1.tmp
        mv @PIDS@/$FARM_JOB_ID-1.tmp @PIDS@/$FARM_JOB_ID-1.shell
        sleep 1000
      elif [ -n "@GATE@" ]; then
        i=0
        while [ ! -e "@GATE@" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done
      fi
      echo "done on attempt $FARM_ATTEMPT"
)job",
                         {{"NAME", name}, {"PIDS", farm_->Path("pids")}, {"GATE", rerun_gate}})));
    const std::string pid_file = farm_->Path(absl::StrCat("pids/", *id, "-1.shell"));
    pid_t shell = 0;
    ASSERT_OK(WaitFor([&] { return (shell = PidFromFile(pid_file)) != 0; }, absl::Seconds(20),
                      "the first attempt's step to start"));
    // Not just any descendant: the `mv` before the sleep may still be on its way out.
    std::vector<pid_t> sleeps;
    ASSERT_OK(WaitFor(
        [&] {
          sleeps.clear();
          for (pid_t pid : Descendants(shell)) {
            absl::StatusOr<std::string> comm = ReadFile(absl::StrCat("/proc/", pid, "/comm"));
            if (comm.ok() && absl::StripAsciiWhitespace(*comm) == "sleep") sleeps.push_back(pid);
          }
          return !sleeps.empty();
        },
        absl::Seconds(10), "the step's sleep"));
    *processes = {shell};
    processes->insert(processes->end(), sleeps.begin(), sleeps.end());
  }

  static int Alive(const std::vector<pid_t>& processes) {
    return static_cast<int>(std::count_if(processes.begin(), processes.end(), IsProcessAlive));
  }
  static void KillLeftovers(const std::vector<pid_t>& processes) {
    for (pid_t pid : processes) {
      if (IsProcessAlive(pid)) ::kill(pid, SIGKILL);  // do not leak them into the next run
    }
  }

  // The agent running the job's current attempt, from `farmctl get`.
  std::string CurrentAgent(const std::string& id) {
    absl::StatusOr<farm::v1::Job> job = farm_->GetJob(id);
    if (!job.ok() || job->attempts().empty()) return "";
    return job->attempts(job->attempts_size() - 1).agent();
  }

  absl::Duration ttl_;
  std::unique_ptr<MiniFarm> farm_;
};

// ---------------------------------------------------------------------------------------------
// (2) kill -9 an agent mid-step: the job completes on the other agent within TTL + 5 s, and the
// killed agent's step processes (the shell and its `sleep`) are gone within 2 s of the kill.

TEST_F(AgentFaultTest, AgentKilledMidStep) {
  constexpr int kRuns = 5;
  StartFarm(absl::Seconds(3));
  int completed_elsewhere = 0;
  int orphans = 0;
  int64_t max_orphans_gone_ms = 0;
  int64_t max_completed_ms = 0;
  int runs = 0;
  for (int run = 0; run < kRuns; ++run) {
    if (HasFailure()) break;  // a failed run says it all; more would only repeat it
    ++runs;
    // One run; a failed assertion ends the run, and the summary still gets printed.
    [&] {
      SCOPED_TRACE(absl::StrCat("run ", run));
      std::string id;
      std::vector<pid_t> step_processes;
      ASSERT_NO_FATAL_FAILURE(SubmitSleeper(absl::StrCat("kill-", run), &id, &step_processes));
      const std::string victim = CurrentAgent(id);
      ASSERT_TRUE(victim == "a1" || victim == "a2")
          << "job " << id << " runs on '" << victim << "'";
      const std::string other = victim == "a1" ? "a2" : "a1";

      // kill -9 the agent process alone: its step processes are left to the supervisor. Nothing
      // the agent started may be left after it: not the step's shell and sleep, nor the
      // supervisor once its work is done.
      Subprocess* agent = farm_->agent(victim);
      for (pid_t pid : Descendants(agent->pid())) {
        if (std::find(step_processes.begin(), step_processes.end(), pid) == step_processes.end()) {
          step_processes.push_back(pid);
        }
      }
      ASSERT_OK(agent->Signal(SIGKILL));
      const absl::Time killed = absl::Now();
      ASSERT_OK_AND_ASSIGN(int code, agent->Wait(absl::Seconds(10)));
      EXPECT_EQ(code, 128 + SIGKILL);

      const absl::Status gone = WaitFor([&] { return Alive(step_processes) == 0; },
                                        kOrphansGoneWithin, "the step's processes to die");
      EXPECT_TRUE(gone.ok()) << "the killed agent's step processes outlived it: " << gone;
      max_orphans_gone_ms = std::max(max_orphans_gone_ms, MsSince(killed));
      orphans += Alive(step_processes);
      KillLeftovers(step_processes);

      // The lease expires at most a TTL after the kill; then the other agent runs the job.
      ASSERT_OK_AND_ASSIGN(farm::v1::Job job,
                           farm_->WaitForJob(
                               id, [](const farm::v1::Job& j) { return IsTerminal(j.state()); },
                               ttl_ + kCompletedAfterTtlWithin - (absl::Now() - killed)));
      max_completed_ms = std::max(max_completed_ms, MsSince(killed));
      EXPECT_EQ(job.state(), farm::v1::SUCCEEDED) << job.ShortDebugString();
      ASSERT_GE(job.attempts_size(), 2) << job.ShortDebugString();
      EXPECT_EQ(job.attempts(0).agent(), victim);
      EXPECT_EQ(job.attempts(0).outcome(), farm::v1::ATTEMPT_LOST) << job.ShortDebugString();
      const farm::v1::Attempt& last = job.attempts(job.attempts_size() - 1);
      EXPECT_EQ(CountAttempts(job, farm::v1::ATTEMPT_SUCCEEDED), 1) << job.ShortDebugString();
      if (job.state() == farm::v1::SUCCEEDED && last.agent() == other &&
          last.outcome() == farm::v1::ATTEMPT_SUCCEEDED) {
        ++completed_elsewhere;
      }

      // The killed agent comes back under its name for the next run.
      AgentOptions options;
      options.name = victim;
      ASSERT_OK(farm_->StartAgent(options));
      ASSERT_OK(farm_->WaitForAgents({"a1", "a2"}));
    }();
  }
  const std::string summary =
      absl::StrCat("agent_kill: runs=", runs, " completed_elsewhere=", completed_elsewhere,
                   " orphans=", orphans, " max_orphans_gone_ms=", max_orphans_gone_ms,
                   " max_completed_after_kill_ms=", max_completed_ms, " (lease TTL ",
                   absl::FormatDuration(ttl_), ")");
  std::printf("%s\n", summary.c_str());
  RecordProperty("summary", summary);
  EXPECT_EQ(completed_elsewhere, kRuns);
  EXPECT_EQ(orphans, 0);
}

// ---------------------------------------------------------------------------------------------
// (3) SIGSTOP an agent past its TTL while it runs a job, let the other agent complete the job,
// SIGCONT: nothing the stopped agent does afterwards is accepted, the job has exactly one
// result, and the stopped agent stops its own step (it fences itself). 20 times.

// What a late completion of the stale attempt gets: the call the frozen agent would make if it
// did not fence itself first.
absl::Status LateCompletion(MiniFarm& mini, const farm::v1::Attempt& stale,
                            const std::string& job_id) {
  // As the frozen agent itself (its own certificate).
  FARM_ASSIGN_OR_RETURN(common::ClientSecurity security, mini.AgentSecurity(stale.agent()));
  FARM_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel,
                        common::MakeChannel(mini.coordinator_address(), security));
  auto stub = farm::v1::AgentService::NewStub(channel);
  farm::v1::CompleteJobRequest request;
  request.mutable_lease()->set_job_id(job_id);
  request.mutable_lease()->set_attempt(stale.number());
  request.mutable_lease()->set_epoch(stale.epoch());
  request.set_outcome(farm::v1::ATTEMPT_FAILED);
  request.set_reason("late result of a frozen agent");
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  farm::v1::CompleteJobResponse ack;
  const grpc::Status status = stub->CompleteJob(&context, request, &ack);
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

TEST_F(AgentFaultTest, AgentStoppedPastItsTtl) {
  constexpr int kRuns = 20;
  StartFarm(absl::Seconds(1));
  int one_result = 0;
  int late_refused = 0;   // a late completion of the stale attempt got FAILED_PRECONDITION
  int stale_refused = 0;  // ... also while the rerun held the lease
  int agent_refused = 0;  // the thawed agent itself made a call and was refused
  int self_fenced = 0;    // it noticed the lease had lapsed before anyone told it
  int told_invalid = 0;   // a heartbeat answer told it the lease was gone
  int steps_stopped = 0;  // its step's processes were gone within 2 s of the thaw
  int runs = 0;
  for (int run = 0; run < kRuns; ++run) {
    if (HasFailure()) break;  // a failed run says it all; more would only repeat it
    ++runs;
    // One run; a failed assertion ends the run, and the summary still gets printed.
    [&] {
      SCOPED_TRACE(absl::StrCat("run ", run));
      std::string id;
      std::vector<pid_t> step_processes;
      const std::string gate = farm_->Path(absl::StrCat("rerun-gate-", run));
      ASSERT_NO_FATAL_FAILURE(
          SubmitSleeper(absl::StrCat("stop-", run), &id, &step_processes, gate));
      const std::string victim = CurrentAgent(id);
      ASSERT_TRUE(victim == "a1" || victim == "a2")
          << "job " << id << " runs on '" << victim << "'";
      const std::string other = victim == "a1" ? "a2" : "a1";

      Subprocess* agent = farm_->agent(victim);
      ThawOnExit thaw(agent);
      ASSERT_OK(agent->Signal(SIGSTOP));
      // Past the TTL the job runs again on the other agent. While that attempt holds the lease,
      // a call with the frozen attempt's lease is refused: only the epoch tells them apart.
      ASSERT_OK_AND_ASSIGN(farm::v1::Job rerun, farm_->WaitForJob(
                                                    id,
                                                    [](const farm::v1::Job& j) {
                                                      return j.state() == farm::v1::RUNNING &&
                                                             j.attempts_size() >= 2;
                                                    },
                                                    ttl_ + kCompletedAfterTtlWithin));
      const absl::Status stale = LateCompletion(*farm_, rerun.attempts(0), id);
      EXPECT_EQ(stale.code(), absl::StatusCode::kFailedPrecondition)
          << "a stale lease was taken for the current one: " << stale;
      if (stale.code() == absl::StatusCode::kFailedPrecondition) ++stale_refused;
      ASSERT_OK(WriteFile(gate, ""));
      // Frozen until the job is done elsewhere.
      ASSERT_OK_AND_ASSIGN(farm::v1::Job done, farm_->WaitForJobState(id, farm::v1::SUCCEEDED,
                                                                      kCompletedAfterTtlWithin));
      ASSERT_OK(agent->Signal(SIGCONT));
      const absl::Time thawed = absl::Now();

      // The thawed agent gives the attempt up, and its step with it.
      const std::string prefix = absl::StrCat("[job=", id, " attempt=1 agent=", victim, "]");
      std::string log;
      EXPECT_OK(WaitFor(
          [&] {
            log = AgentLog(*farm_, victim);
            return absl::StrContains(log, absl::StrCat(prefix, " attempt ended: ATTEMPT_LOST"));
          },
          absl::Seconds(10), "the thawed agent to give the attempt up"));
      const bool stopped = WaitFor([&] { return Alive(step_processes) == 0; },
                                   kOrphansGoneWithin - (absl::Now() - thawed), "the step to stop")
                               .ok();
      steps_stopped += stopped ? 1 : 0;
      EXPECT_TRUE(stopped) << "the thawed agent's step runs on";
      const std::string abandoning = absl::StrCat(prefix, " abandoning the attempt: ");
      const size_t at = log.find(abandoning);
      EXPECT_NE(at, std::string::npos) << "no reason given for giving up";
      std::string reason;
      if (at != std::string::npos) {
        const size_t from = at + abandoning.size();
        reason = log.substr(from, log.find('\n', from) - from);
      }
      if (absl::StrContains(reason, "no heartbeat acknowledged")) ++self_fenced;
      if (absl::StrContains(reason, "lease is no longer valid")) ++told_invalid;
      if (absl::StrContains(reason, "refused, the lease is stale")) ++agent_refused;

      // A late completion of the stale attempt is refused and changes nothing.
      ASSERT_GE(done.attempts_size(), 2) << done.ShortDebugString();
      const absl::Status late = LateCompletion(*farm_, done.attempts(0), id);
      EXPECT_EQ(late.code(), absl::StatusCode::kFailedPrecondition) << late;
      if (late.code() == absl::StatusCode::kFailedPrecondition) ++late_refused;

      // Exactly one result: attempt 1 (the frozen agent) LOST, one SUCCEEDED attempt on the other
      // agent, and the job as it was when it first ended.
      ASSERT_OK_AND_ASSIGN(farm::v1::Job job, farm_->GetJob(id));
      EXPECT_EQ(job.state(), farm::v1::SUCCEEDED) << job.ShortDebugString();
      EXPECT_EQ(job.attempts(0).agent(), victim);
      EXPECT_EQ(job.attempts(0).outcome(), farm::v1::ATTEMPT_LOST) << job.ShortDebugString();
      EXPECT_EQ(CountAttempts(job, farm::v1::ATTEMPT_SUCCEEDED), 1) << job.ShortDebugString();
      const farm::v1::Attempt& last = job.attempts(job.attempts_size() - 1);
      EXPECT_EQ(last.agent(), other);
      EXPECT_EQ(job.SerializeAsString(), done.SerializeAsString())
          << "the job changed after the frozen agent thawed:\nbefore: " << done.ShortDebugString()
          << "\nafter: " << job.ShortDebugString();
      if (job.state() == farm::v1::SUCCEEDED && job.attempts(0).agent() == victim &&
          job.attempts(0).outcome() == farm::v1::ATTEMPT_LOST &&
          CountAttempts(job, farm::v1::ATTEMPT_SUCCEEDED) == 1 && last.agent() == other &&
          job.SerializeAsString() == done.SerializeAsString()) {
        ++one_result;
      }
      KillLeftovers(step_processes);
    }();
  }
  const std::string summary = absl::StrCat(
      "agent_stop: runs=", runs, " one_result=", one_result, " late_refused=", late_refused,
      " stale_refused_during_rerun=", stale_refused, " steps_stopped=", steps_stopped,
      " (gave up by: self_fenced=", self_fenced, " told_invalid=", told_invalid,
      " refused=", agent_refused, "; lease TTL ", absl::FormatDuration(ttl_), ")");
  std::printf("%s\n", summary.c_str());
  RecordProperty("summary", summary);
  EXPECT_EQ(one_result, kRuns);
  EXPECT_EQ(late_refused, kRuns);
  EXPECT_EQ(stale_refused, kRuns);
  EXPECT_EQ(steps_stopped, kRuns);
}

// ---------------------------------------------------------------------------------------------
// Self-fencing with nobody to tell the agent: the coordinator freezes (SIGSTOP) under an agent
// that runs a step. A TTL after the last heartbeat it renewed, the coordinator's view is that the
// lease is gone, so the agent kills its step then, while the coordinator is still frozen. Once
// the coordinator thaws, the job is requeued and completes.

TEST_F(AgentFaultTest, CoordinatorFrozenPastTheTtl) {
  constexpr int kRuns = 3;
  StartFarm(absl::Seconds(2));
  int fenced_while_frozen = 0;
  int completed = 0;
  int runs = 0;
  for (int run = 0; run < kRuns; ++run) {
    if (HasFailure()) break;  // a failed run says it all; more would only repeat it
    ++runs;
    // One run; a failed assertion ends the run, and the summary still gets printed.
    [&] {
      SCOPED_TRACE(absl::StrCat("run ", run));
      std::string id;
      std::vector<pid_t> step_processes;
      ASSERT_NO_FATAL_FAILURE(SubmitSleeper(absl::StrCat("freeze-", run), &id, &step_processes));
      const std::string runner = CurrentAgent(id);

      Subprocess* coordinator = farm_->coordinator();
      {
        ThawOnExit thaw(coordinator);
        ASSERT_OK(coordinator->Signal(SIGSTOP));
        const absl::Status fenced =
            WaitFor([&] { return Alive(step_processes) == 0; }, ttl_ + kOrphansGoneWithin,
                    "the agent to kill its step");
        EXPECT_TRUE(fenced.ok()) << "the agent ran its step on past its lease: " << fenced;
        if (fenced.ok()) ++fenced_while_frozen;
        EXPECT_TRUE(absl::StrContains(AgentLog(*farm_, runner),
                                      absl::StrCat("[job=", id, " attempt=1 agent=", runner,
                                                   "] abandoning the attempt: no heartbeat")));
      }  // thawed

      ASSERT_OK_AND_ASSIGN(farm::v1::Job job,
                           farm_->WaitForJobDone(id, ttl_ + kCompletedAfterTtlWithin));
      EXPECT_EQ(job.state(), farm::v1::SUCCEEDED) << job.ShortDebugString();
      EXPECT_EQ(job.attempts(0).outcome(), farm::v1::ATTEMPT_LOST) << job.ShortDebugString();
      EXPECT_EQ(CountAttempts(job, farm::v1::ATTEMPT_SUCCEEDED), 1) << job.ShortDebugString();
      if (job.state() == farm::v1::SUCCEEDED) ++completed;
      KillLeftovers(step_processes);
    }();
  }
  const std::string summary =
      absl::StrCat("coordinator_freeze: runs=", runs, " fenced_while_frozen=", fenced_while_frozen,
                   " completed=", completed, " (lease TTL ", absl::FormatDuration(ttl_), ")");
  std::printf("%s\n", summary.c_str());
  RecordProperty("summary", summary);
  EXPECT_EQ(fenced_while_frozen, kRuns);
  EXPECT_EQ(completed, kRuns);
}

}  // namespace
}  // namespace farm::testing
