// Coordinator crashes under load. Three agents (two slots each) run 2,000 short jobs while the
// coordinator is killed with SIGKILL ten times at random moments (submissions still arriving,
// leases being granted, results being reported) and restarted each time on the same data
// directory and address. The checker (checker.h) submits through the farm.v1 stubs, retrying
// with the same request id, and at the end judges every job: nothing acknowledged may be lost,
// no job may have two accepted results, no job may appear that nobody submitted, none may fail.
//
// Bigger runs are an environment variable away: FARM_FAULT_JOBS (default 2000),
// FARM_FAULT_CRASHES (default 10), FARM_FAULT_SEED (default: random, printed).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "tests/fault/checker.h"
#include "tests/testing/mini_farm.h"
#include "tests/testing/status_matchers.h"

namespace farm::fault {
namespace {

using farm::testing::AgentOptions;
using farm::testing::MiniFarm;

int EnvInt(const char* name, int fallback) {
  const char* text = std::getenv(name);
  int value = 0;
  if (text == nullptr || !absl::SimpleAtoi(text, &value) || value <= 0) return fallback;
  return value;
}

TEST(CoordinatorCrashTest, TenKill9sUnderLoadLoseAndDuplicateNothing) {
  const int kJobs = EnvInt("FARM_FAULT_JOBS", 2000);
  const int kCrashes = EnvInt("FARM_FAULT_CRASHES", 10);
  uint32_t seed = 0;
  const char* seed_text = std::getenv("FARM_FAULT_SEED");
  if (seed_text == nullptr || !absl::SimpleAtoi(seed_text, &seed)) seed = std::random_device()();
  std::cout << "FARM_FAULT_SEED=" << seed << " jobs=" << kJobs << " crashes=" << kCrashes
            << std::endl;
  std::mt19937 rng(seed);
  const absl::Time started = absl::Now();

  ASSERT_OK_AND_ASSIGN(std::unique_ptr<MiniFarm> farm, MiniFarm::Create({.tls = true}));
  ASSERT_OK(farm->StartCoordinator());
  const std::vector<std::string> agents = {"crash-a1", "crash-a2", "crash-a3"};
  for (const std::string& name : agents) {
    AgentOptions options;
    options.name = name;
    options.slots = 2;
    ASSERT_OK(farm->StartAgent(options));
  }
  ASSERT_OK(farm->WaitForAgents(agents));

  const std::string effects = farm->Path("effects.log");
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<Checker> checker,
      Checker::Create(farm->coordinator_address(), {.security = farm->admin_security()}));

  // Submitters: they retry through every crash on their own (same request id).
  constexpr int kSubmitters = 4;
  std::atomic<int> next_job{0};
  std::atomic<int> submit_failures{0};
  std::atomic<bool> stop{false};  // set when the test leaves early
  std::vector<std::thread> submitters;
  for (int t = 0; t < kSubmitters; ++t) {
    submitters.emplace_back([&] {
      for (int n = next_job++; n < kJobs && !stop; n = next_job++) {
        farm::v1::JobSpec spec;
        spec.set_name(absl::StrCat("crash-", n));
        *spec.add_steps() = EffectStep(effects);
        if (!checker->Submit(spec).ok()) ++submit_failures;
      }
    });
  }
  struct JoinOnExit {
    std::atomic<bool>* stop;
    std::vector<std::thread>* threads;
    ~JoinOnExit() {
      *stop = true;
      for (std::thread& t : *threads) {
        if (t.joinable()) t.join();
      }
    }
  } join_on_exit{&stop, &submitters};

  // Kill at random moments: after a random amount of progress (so that every crash lands while
  // jobs run), plus a random delay of up to 200 ms.
  std::uniform_int_distribution<int> progress(kJobs / (2 * (kCrashes + 1)),
                                              (13 * kJobs) / (10 * (kCrashes + 1)));
  std::uniform_int_distribution<int> delay_ms(0, 200);
  std::vector<std::string> timeline;
  for (int crash = 1; crash <= kCrashes; ++crash) {
    const int64_t target =
        std::min<int64_t>(CountEffects(effects) + progress(rng), (kJobs * 95) / 100);
    ASSERT_OK(farm::testing::WaitFor(
        [&] { return CountEffects(effects) >= target; }, absl::Seconds(90),
        absl::StrCat(target, " executed jobs before crash ", crash), absl::Milliseconds(20)));
    absl::SleepFor(absl::Milliseconds(delay_ms(rng)));  // picks the crash moment
    const int64_t done_at_kill = CountEffects(effects);
    const int submitted_at_kill = std::min(next_job.load(), kJobs);
    ASSERT_OK(farm->KillCoordinator());
    const absl::Time killed = absl::Now();
    ASSERT_OK(farm->RestartCoordinator());
    timeline.push_back(absl::StrCat(
        "crash ", crash, " at ",
        absl::FormatDuration(absl::Trunc(killed - started, absl::Milliseconds(1))), ": ",
        done_at_kill, " executed, ", submitted_at_kill, " submits started; serving again after ",
        absl::FormatDuration(absl::Trunc(absl::Now() - killed, absl::Milliseconds(1)))));
  }
  for (std::thread& t : submitters) t.join();
  const absl::Time last_crash = absl::Now();

  ASSERT_OK_AND_ASSIGN(CheckReport report, checker->WaitAndCheck(absl::Seconds(120), effects));
  std::cout << absl::StrJoin(timeline, "\n") << "\n"
            << "check done (all jobs ended, or the deadline) "
            << absl::FormatDuration(absl::Trunc(absl::Now() - last_crash, absl::Milliseconds(1)))
            << " after the last crash; total "
            << absl::FormatDuration(absl::Trunc(absl::Now() - started, absl::Seconds(1))) << "\n"
            << report.Line() << std::endl;
  ::testing::Test::RecordProperty("checker", report.Line());
  // Why jobs ran again (at-least-once is allowed; the reasons show whether it was needed).
  absl::StatusOr<std::vector<farm::v1::Job>> jobs = checker->ReadAllJobs(absl::Seconds(30));
  if (jobs.ok()) {
    std::map<std::string, int> reasons;
    for (const farm::v1::Job& job : *jobs) {
      for (const farm::v1::Attempt& attempt : job.attempts()) {
        if (attempt.outcome() == farm::v1::ATTEMPT_LOST) ++reasons[attempt.reason()];
      }
    }
    for (const auto& [reason, count] : reasons) {
      std::cout << "lost attempts: " << count << " x \"" << reason << "\"\n";
    }
  }
  std::cout << "step executions: " << CountEffects(effects) << std::endl;

  EXPECT_EQ(submit_failures.load(), 0);
  EXPECT_EQ(report.submitted, kJobs);
  EXPECT_EQ(report.acked, kJobs);
  EXPECT_TRUE(report.ok()) << report.Line() << "\n" << absl::StrJoin(report.problems, "\n");
  // Every job ran at least once (the checker also insists that each success left its effect).
  EXPECT_GE(CountEffects(effects), kJobs);
  for (const std::string& name : agents) {
    EXPECT_TRUE(farm->agent(name)->IsRunning()) << name << " exited during the crashes";
  }
}

}  // namespace
}  // namespace farm::fault
