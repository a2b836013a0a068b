// `farmctl factory` on a real farm under a synthetic workload whose every figure the test knows:
// Poisson arrivals onto a pool of 2 slots, steps that sleep a known time, a known share of
// failing and flaky steps. Each figure of the report is checked against the same figure
// computed from the test's own record (the jobs' timestamps, read back with `farmctl get`),
// within 10%; the capacity advice against a simulation of the queue it models.
#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"
#include "tests/integration/farm_test_base.h"
#include "tests/testing/queue_sim.h"

namespace farm::testing {
namespace {

constexpr int kJobs = 40;
constexpr double kMeanGapSeconds = 0.25;

// The nearest-rank percentile, as the report computes it.
int64_t Rank(std::vector<int64_t> v, double q) {
  std::sort(v.begin(), v.end());
  const size_t i = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[std::clamp<size_t>(i, 1, v.size()) - 1];
}

// Within 10% (or 20 ms, for figures near zero).
void ExpectClose(const std::string& what, double got, double want) {
  EXPECT_LE(std::abs(got - want), std::max(0.1 * std::abs(want), 20.0))
      << what << ": the report says " << got << ", the test's record " << want;
}

// The p95 wait (seconds) of an M/M/c queue, simulated (200,000 customers).
double SimulatedP95(int servers, double lambda, double service, uint32_t seed) {
  return Quantile(SimulateWaits(servers, lambda, service, 200'000, seed), 0.95);
}

class FactoryTest : public FarmTest {};

TEST_F(FactoryTest, TheReportOfASyntheticWorkloadMatchesTheTestsOwnRecord) {
  ASSERT_OK(StartAgent("a1", {{"pool", "a"}}, 2));
  // Job i: work that sleeps 0.3 s, then a check: every 10th fails (3), every 10th is flaky (7:
  // one definition that fails and passes in turn, under a lock).
  const std::string lock = farm_->Path("flaky.lock");
  const std::string mark = farm_->Path("flaky.mark");
  std::mt19937_64 rng(42);
  std::exponential_distribution<double> gap(1 / kMeanGapSeconds);
  std::vector<std::string> ids;
  for (int i = 0; i < kJobs; ++i) {
    std::string check = "true";
    if (i % 10 == 3) check = "exit 1";
    if (i % 10 == 7) {
      check = absl::StrCat("flock ", lock, " sh -c 'if [ -e ", mark, " ]; then rm ", mark,
                           "; else touch ", mark, "; exit 1; fi'");
    }
    ASSERT_OK_AND_ASSIGN(std::string id, farm_->SubmitJobFile(JobFile(R"job(
name: synthetic
labels: {pool: a}
steps:
  - {name: work, run: sleep 0.3}
  - name: check
    run: "@CHECK@"
)job",
                                                                      {{"CHECK", check}})));
    ids.push_back(id);
    absl::SleepFor(absl::Seconds(gap(rng)));  // the workload's pace, not a wait for a condition
  }
  std::vector<farm::v1::Job> jobs;
  for (const std::string& id : ids) {
    ASSERT_OK_AND_ASSIGN(farm::v1::Job job, farm_->WaitForJobDone(id));
    jobs.push_back(job);
  }
  // The test's own figures, from the jobs' records.
  int64_t since = INT64_MAX, until = 0, lead_sum = 0, run_sum = 0;
  std::vector<int64_t> waits, runs, leads;
  int first_pass = 0, finished = 0;
  for (const farm::v1::Job& job : jobs) {
    since = std::min(since, job.submitted_ms());
    until = std::max(until, job.finished_ms());
    ASSERT_EQ(job.attempts_size(), 1) << job.id();
    const farm::v1::Attempt& at = job.attempts(0);
    waits.push_back(at.started_ms() - job.queued_ms());
    runs.push_back(at.ended_ms() - at.started_ms());
    leads.push_back(job.finished_ms() - job.submitted_ms());
    run_sum += runs.back();
    lead_sum += leads.back();
    first_pass += job.state() == farm::v1::SUCCEEDED;
    ++finished;
  }
  until += 1;  // the window is [since, until)
  const double window = static_cast<double>(until - since);
  auto rfc3339 = [](int64_t ms) {
    return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromUnixMillis(ms), absl::UTCTimeZone());
  };
  ASSERT_OK_AND_ASSIGN(CommandResult r, farm_->RunFarmctl({"factory", "--since=" + rfc3339(since),
                                                           "--until=" + rfc3339(until),
                                                           "--p95-wait=200ms", "--output=json"}));
  ASSERT_EQ(r.exit_code, 0) << r.DebugString();
  farm::v1::FactoryReport report;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &report).ok()) << r.out;
  const farm::v1::FlowFigures& f = report.farm();
  EXPECT_EQ(f.arrivals(), kJobs);
  EXPECT_EQ(f.completions(), kJobs);
  ExpectClose("arrivals per hour", f.arrivals_per_hour(), kJobs / (window / 3'600'000));
  ExpectClose("queue wait p50", f.queue_wait().p50_ms(), Rank(waits, 0.5));
  ExpectClose("queue wait p95", f.queue_wait().p95_ms(), Rank(waits, 0.95));
  ExpectClose("run p50", f.run().p50_ms(), Rank(runs, 0.5));
  ExpectClose("run p95", f.run().p95_ms(), Rank(runs, 0.95));
  ExpectClose("lead p50", f.lead().p50_ms(), Rank(leads, 0.5));
  ExpectClose("lead p95", f.lead().p95_ms(), Rank(leads, 0.95));
  ExpectClose("WIP avg (x1000)", 1000 * f.wip_avg(), 1000 * lead_sum / window);
  ExpectClose("flow efficiency (x1000)", 1000 * f.flow_efficiency(), 1000.0 * run_sum / lead_sum);
  ExpectClose("utilisation (x1000)", 1000 * f.utilisation(), 1000 * run_sum / (2 * window));
  // 4 jobs fail, 2 of the 4 flaky ones fail: 34 of 40 pass first time.
  EXPECT_EQ(first_pass, 34);
  EXPECT_NEAR(f.first_pass_yield(), first_pass / static_cast<double>(finished), 1e-9);
  ASSERT_EQ(report.flaky_size(), 1) << r.out;
  EXPECT_EQ(report.flaky(0).step(), "check");
  EXPECT_EQ(report.flaky(0).passed(), 2);
  EXPECT_EQ(report.flaky(0).failed(), 2);
  // Every job started and ended in the window: Little's law holds.
  EXPECT_TRUE(f.littles_holds()) << f.wip_avg() << " vs " << f.littles_wip();
  ASSERT_EQ(report.pools_size(), 1);
  EXPECT_EQ(report.bottleneck(), "pool pool=a");
  // The advice: its slots meet the 200 ms target in a simulated M/M/c queue, one fewer do not.
  ASSERT_EQ(report.advice_size(), 1) << r.out;
  const farm::v1::CapacityAdvice& advice = report.advice(0);
  ExpectClose("mean run", advice.mean_run_ms(), run_sum / kJobs);
  const double lambda = advice.arrivals_per_hour() / 3600;
  const double service = static_cast<double>(advice.mean_run_ms()) / 1000;
  const int needed = advice.slots_needed();
  ASSERT_GE(needed, 2) << advice.text();
  EXPECT_LE(SimulatedP95(needed, lambda, service, 1), 0.2) << advice.text();
  EXPECT_GT(SimulatedP95(needed - 1, lambda, service, 1), 0.2) << advice.text();
  // The text report says the same.
  ASSERT_OK_AND_ASSIGN(CommandResult text,
                       farm_->RunFarmctl({"factory", "--since=" + rfc3339(since),
                                          "--until=" + rfc3339(until), "--p95-wait=200ms"}));
  ASSERT_EQ(text.exit_code, 0) << text.DebugString();
  EXPECT_THAT(text.out, ::testing::HasSubstr("Bottleneck: pool pool=a: p95 wait"));
  EXPECT_THAT(text.out, ::testing::HasSubstr(advice.text()));
  EXPECT_THAT(text.out, ::testing::HasSubstr("Little's law: average WIP"));
}

TEST_F(FactoryTest, BadWindowsAreRefusedWithOneLine) {
  ASSERT_OK_AND_ASSIGN(CommandResult r, farm_->RunFarmctl({"factory", "--since=yesterday"}));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, ::testing::HasSubstr("--since takes a duration back from now"));
  ASSERT_OK_AND_ASSIGN(r, farm_->RunFarmctl({"factory", "--since=1h", "--until=2h"}));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, ::testing::HasSubstr("until_ms must be 0 (now) or later than since_ms"));
  ASSERT_OK_AND_ASSIGN(r, farm_->RunFarmctl({"factory", "--p95-wait=soon"}));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, ::testing::HasSubstr("--p95-wait takes a duration"));
}

}  // namespace
}  // namespace farm::testing
