// `farmctl factory` on a real farm under a synthetic workload whose every figure the test knows:
// Poisson arrivals onto a pool of 2 slots, steps that sleep a known time, a known share of
// failing and flaky steps. Each figure of the report is checked against the same figure
// computed from the test's own record (the jobs' timestamps, read back with `farmctl get`),
// within 10%; the capacity advice against a simulation of the queue it models.
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/struct.pb.h"
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

std::string Rfc3339(int64_t ms) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromUnixMillis(ms), absl::UTCTimeZone());
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
  ASSERT_OK_AND_ASSIGN(CommandResult r, farm_->RunFarmctl({"factory", "--since=" + Rfc3339(since),
                                                           "--until=" + Rfc3339(until),
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
                       farm_->RunFarmctl({"factory", "--since=" + Rfc3339(since),
                                          "--until=" + Rfc3339(until), "--p95-wait=200ms"}));
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

// Two windows of one pool: a burst on one slot where half the jobs fail, then the same work one
// job at a time with one failure. The targets (p95 wait 300ms, first-pass yield 95%): the wait
// is met in the second window and was not in the first; the yield is missed in both, better.
TEST_F(FactoryTest, TargetsShowTheirCurrentConditionAndTheirTrendAcrossTwoWindows) {
  ASSERT_OK(StartAgent("b1", {{"pool", "b"}}, 1));
  const std::string job = R"job(
name: kata
labels: {pool: b}
steps: [{name: work, run: "sleep 0.2; @EXIT@"}]
)job";
  // Six jobs, the first `failing` of them failing; all at once, or each after the one before.
  auto run_window = [&](bool burst, int failing, std::vector<farm::v1::Job>* jobs) {
    std::vector<std::string> ids;
    for (int i = 0; i < 6; ++i) {
      ASSERT_OK_AND_ASSIGN(std::string id, farm_->SubmitJobFile(JobFile(
                                               job, {{"EXIT", i < failing ? "exit 1" : "true"}})));
      ids.push_back(id);
      if (burst) continue;
      ASSERT_OK_AND_ASSIGN(farm::v1::Job done, farm_->WaitForJobDone(id));
      jobs->push_back(done);
    }
    for (size_t i = 0; burst && i < ids.size(); ++i) {
      ASSERT_OK_AND_ASSIGN(farm::v1::Job done, farm_->WaitForJobDone(ids[i]));
      jobs->push_back(done);
    }
  };
  std::vector<farm::v1::Job> first, second;
  const int64_t t0 = absl::ToUnixMillis(absl::Now());
  run_window(/*burst=*/true, 3, &first);
  ASSERT_FALSE(HasFatalFailure());
  const int64_t t1 = absl::ToUnixMillis(absl::Now()) + 1;
  run_window(/*burst=*/false, 1, &second);
  ASSERT_FALSE(HasFatalFailure());
  const int64_t t2 = absl::ToUnixMillis(absl::Now()) + 1;
  auto p95_wait = [](const std::vector<farm::v1::Job>& jobs) {
    std::vector<int64_t> waits;
    for (const farm::v1::Job& j : jobs) waits.push_back(j.attempts(0).started_ms() - j.queued_ms());
    return Rank(waits, 0.95);
  };
  ASSERT_GT(p95_wait(first), 300) << "the burst queued on one slot";
  ASSERT_LT(p95_wait(second), 300);

  ASSERT_OK_AND_ASSIGN(CommandResult r,
                       farm_->RunFarmctl({"factory", "target", "set", "--labels=pool=b",
                                          "--p95-wait=300ms", "--first-pass-yield=0.95"}));
  ASSERT_EQ(r.exit_code, 0) << r.DebugString();
  EXPECT_EQ(r.out, "set the target of labels pool=b\n");
  ASSERT_OK_AND_ASSIGN(r, farm_->RunFarmctl({"factory", "target", "list"}));
  EXPECT_THAT(r.out, ::testing::HasSubstr("labels pool=b: p95 wait 300ms first-pass yield 95%"));
  ASSERT_OK_AND_ASSIGN(r, farm_->RunFarmctl({"factory", "target", "set", "--labels=pool=b"}));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, ::testing::HasSubstr("a target needs at least one figure"));

  const std::vector<std::string> report = {"factory", "--since=" + Rfc3339(t1),
                                           "--until=" + Rfc3339(t2),
                                           "--compare=" + Rfc3339(t0) + "," + Rfc3339(t1)};
  std::vector<std::string> json = report;
  json.push_back("--output=json");
  ASSERT_OK_AND_ASSIGN(r, farm_->RunFarmctl(json));
  ASSERT_EQ(r.exit_code, 0) << r.DebugString();
  farm::v1::FactoryReport out;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &out).ok()) << r.out;
  ASSERT_EQ(out.targets_size(), 2) << r.out;
  const farm::v1::TargetCondition& wait = out.targets(0);
  EXPECT_EQ(wait.figure(), "p95 wait");
  EXPECT_TRUE(wait.met());
  EXPECT_EQ(wait.trend(), "better");
  ExpectClose("p95 wait now", wait.current(), p95_wait(second));
  ExpectClose("p95 wait before", wait.previous(), p95_wait(first));
  const farm::v1::TargetCondition& fpy = out.targets(1);
  EXPECT_EQ(fpy.figure(), "first-pass yield");
  EXPECT_FALSE(fpy.met());
  EXPECT_EQ(fpy.trend(), "better");
  EXPECT_NEAR(fpy.current(), 5.0 / 6, 1e-9);
  EXPECT_NEAR(fpy.previous(), 3.0 / 6, 1e-9);
  ASSERT_OK_AND_ASSIGN(r, farm_->RunFarmctl(report));
  ASSERT_EQ(r.exit_code, 0) << r.DebugString();
  EXPECT_THAT(r.out, ::testing::ContainsRegex("labels pool=b +p95 wait +300ms .* met +better"));
  EXPECT_THAT(r.out,
              ::testing::ContainsRegex("labels pool=b +first-pass yield +95% +83% +50% +MISSED"));
  ASSERT_OK_AND_ASSIGN(r, farm_->RunFarmctl({"factory", "target", "rm", "--labels=pool=b"}));
  EXPECT_EQ(r.exit_code, 0) << r.DebugString();
  ASSERT_OK_AND_ASSIGN(r, farm_->RunFarmctl({"factory", "target", "list"}));
  EXPECT_EQ(r.out, "no targets\n");
}

// Provenance on a TLS farm: a chain of three jobs, each given the one before's artifact.
class ProvenanceTest : public TlsFarmTest {};

google::protobuf::Struct PayloadOf(const std::string& envelope) {
  google::protobuf::Struct env, statement;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(envelope, &env).ok()) << envelope;
  std::string payload;
  EXPECT_TRUE(absl::Base64Unescape(env.fields().at("payload").string_value(), &payload));
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(payload, &statement).ok()) << payload;
  return statement;
}

TEST_F(ProvenanceTest, TheLastArtifactNamesEveryInputBackToTheFirstJobAndVerifies) {
  ASSERT_OK(StartAgent("a1"));
  ASSERT_OK_AND_ASSIGN(std::string id, farm_->SubmitJobFile(R"(
name: chain
jobs:
  a:
    steps: [{run: "mkdir -p out && echo one > out/a.txt"}]
    artifacts: [out/a.txt]
  b:
    needs: [a]
    steps: [{run: "mkdir -p out && (cat inputs/a/out/a.txt; echo two) > out/b.txt"}]
    artifacts: [out/b.txt]
  c:
    needs: [b]
    steps: [{run: "mkdir -p out && (cat inputs/b/out/b.txt; echo three) > out/c.txt"}]
    artifacts: [out/c.txt]
)"));
  ASSERT_OK_AND_ASSIGN(farm::v1::Pipeline done, farm_->WaitForPipelineDone(id));
  ASSERT_EQ(done.state(), farm::v1::SUCCEEDED) << done.ShortDebugString();
  std::map<std::string, farm::v1::Job> jobs;
  for (const farm::v1::PipelineJob& pj : done.jobs()) {
    ASSERT_OK_AND_ASSIGN(jobs[pj.name()], farm_->GetJob(pj.job_id()));
  }
  ASSERT_OK_AND_ASSIGN(CommandResult r, farm_->RunFarmctl({"provenance", jobs["c"].id()}));
  ASSERT_EQ(r.exit_code, 0) << r.DebugString();
  const std::string envelope = r.out;
  const google::protobuf::Struct statement = PayloadOf(envelope);
  EXPECT_EQ(statement.fields().at("_type").string_value(), "https://in-toto.io/Statement/v1");
  EXPECT_EQ(statement.fields().at("predicateType").string_value(),
            "https://slsa.dev/provenance/v1");
  const auto& subject = statement.fields().at("subject").list_value().values(0).struct_value();
  EXPECT_EQ(subject.fields().at("name").string_value(), "out/c.txt");
  EXPECT_EQ(subject.fields().at("digest").struct_value().fields().at("sha256").string_value(),
            jobs["c"].artifacts(0).hash());
  // Every input digest back to a: b's artifact (given to c) and a's (given to b).
  const auto& predicate = statement.fields().at("predicate").struct_value();
  const auto& deps = predicate.fields()
                         .at("buildDefinition")
                         .struct_value()
                         .fields()
                         .at("resolvedDependencies")
                         .list_value();
  std::map<std::string, std::string> made_by, sha;
  for (const auto& d : deps.values()) {
    const auto& f = d.struct_value().fields();
    const std::string name = f.at("name").string_value();
    made_by[name] = f.at("annotations").struct_value().fields().at("madeBy").string_value();
    sha[name] = f.at("digest").struct_value().fields().at("sha256").string_value();
  }
  EXPECT_EQ(made_by["inputs/b/out/b.txt"], jobs["b"].id());
  EXPECT_EQ(sha["inputs/b/out/b.txt"], jobs["b"].artifacts(0).hash());
  EXPECT_EQ(made_by["inputs/a/out/a.txt"], jobs["a"].id());
  EXPECT_EQ(sha["inputs/a/out/a.txt"], jobs["a"].artifacts(0).hash());
  EXPECT_EQ(deps.values_size(), 2);
  const auto& run = predicate.fields().at("runDetails").struct_value();
  EXPECT_EQ(run.fields().at("byproducts").list_value().values_size(), 1);  // c's one step

  const std::string file = farm_->Path("c.provenance.json");
  ASSERT_OK(WriteFile(file, envelope));
  ASSERT_OK_AND_ASSIGN(r, farm_->RunFarmctl({"provenance", "verify", file}));
  ASSERT_EQ(r.exit_code, 0) << r.DebugString();
  EXPECT_THAT(r.out, ::testing::HasSubstr("3 digests match the stored blobs"));

  // One byte of the statement changed: the signature fails.
  google::protobuf::Struct env;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(envelope, &env).ok());
  std::string payload;
  ASSERT_TRUE(absl::Base64Unescape(env.fields().at("payload").string_value(), &payload));
  payload[payload.find("out/c.txt")] = 'O';
  (*env.mutable_fields())["payload"].set_string_value(absl::Base64Escape(payload));
  std::string tampered;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(env, &tampered).ok());
  ASSERT_OK(WriteFile(farm_->Path("tampered.json"), tampered));
  ASSERT_OK_AND_ASSIGN(r,
                       farm_->RunFarmctl({"provenance", "verify", farm_->Path("tampered.json")}));
  EXPECT_EQ(r.exit_code, 1) << r.DebugString();
  EXPECT_THAT(r.err, ::testing::HasSubstr("the signature does not match the payload"));

  // One byte of a's blob changed in the store: the deepest input no longer verifies.
  const std::string hash = jobs["a"].artifacts(0).hash();
  const std::string blob =
      absl::StrCat(farm_->coordinator_data_dir(), "/cas/blobs/", hash.substr(0, 2), "/", hash);
  ASSERT_EQ(::chmod(blob.c_str(), 0644), 0) << blob;
  std::string bytes = ReadFileOrEmpty(blob);
  ASSERT_FALSE(bytes.empty());
  bytes[0] = bytes[0] == 'o' ? 'O' : 'o';
  ASSERT_OK(WriteFile(blob, bytes));
  ASSERT_OK_AND_ASSIGN(r, farm_->RunFarmctl({"provenance", "verify", file}));
  EXPECT_EQ(r.exit_code, 1) << r.DebugString();
  EXPECT_THAT(r.err, ::testing::HasSubstr("inputs/a/out/a.txt"));
}

}  // namespace
}  // namespace farm::testing
