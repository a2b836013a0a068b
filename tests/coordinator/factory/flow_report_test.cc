// The factory report's figures from a hand-made event history whose every figure is known.
#include "coordinator/factory/flow_report.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "coordinator/factory/factory_report.h"

namespace farm::coordinator::factory {
namespace {

using farm::v1::Event;
using ::testing::HasSubstr;

constexpr int64_t kMin = 60'000;
constexpr int64_t kHour = 60 * kMin;

// Events of a tiny farm, in time order. The window is [1h, 3h).
class FlowReportTest : public ::testing::Test {
 protected:
  Event JobEvent(farm::v1::EventKind kind, int64_t t, const std::string& job,
                 uint64_t labelset = 1) {
    Event e;
    e.set_kind(kind);
    e.set_time_ms(t);
    e.set_job_id(job);
    e.set_labelset(labelset);
    return e;
  }
  void Submit(int64_t t, const std::string& job, uint64_t labelset = 1) {
    Event e = JobEvent(farm::v1::JOB_SUBMITTED, t, job, labelset);
    e.set_job_name("build");
    Add(e);
    Add(JobEvent(farm::v1::JOB_QUEUED, t, job, labelset));
  }
  void Lease(int64_t t, const std::string& job, uint32_t attempt, uint64_t labelset = 1) {
    Event e = JobEvent(farm::v1::JOB_LEASED, t, job, labelset);
    e.set_attempt(attempt);
    e.set_agent("a1");
    Add(e);
  }
  void EndAttempt(int64_t t, const std::string& job, uint32_t attempt,
                  farm::v1::AttemptOutcome outcome, uint64_t labelset = 1) {
    Event e = JobEvent(farm::v1::ATTEMPT_ENDED, t, job, labelset);
    e.set_attempt(attempt);
    e.set_outcome(outcome);
    Add(e);
    if (outcome == farm::v1::ATTEMPT_LOST) Add(JobEvent(farm::v1::JOB_QUEUED, t, job, labelset));
  }
  void EndJob(int64_t t, const std::string& job, farm::v1::JobState state, uint32_t attempt,
              uint64_t labelset = 1) {
    Event e = JobEvent(farm::v1::JOB_ENDED, t, job, labelset);
    e.set_state(state);
    e.set_attempt(attempt);
    Add(e);
  }
  void Step(int64_t t, const std::string& job, const std::string& fingerprint, bool passed) {
    Event e = JobEvent(farm::v1::STEP_FINISHED, t, job);
    e.set_step("test");
    e.set_step_fingerprint(fingerprint);
    e.set_step_state(passed ? farm::v1::STEP_SUCCEEDED : farm::v1::STEP_FAILED);
    Add(e);
  }
  void Add(const Event& e) { events_.push_back(e); }

  farm::v1::FactoryReport Build(farm::v1::FactoryReportRequest req = {},
                                std::vector<farm::v1::FactoryTarget> targets = {},
                                std::vector<farm::v1::FlowFigures>* target_figures = nullptr) {
    FlowInputs in;
    in.targets = std::move(targets);
    req.set_since_ms(kHour);
    req.set_until_ms(3 * kHour);
    in.request = req;
    in.agents.push_back({"a1", {{"os", "linux"}}, 2, true});
    in.labels_of = [](uint64_t id) {
      return id == 1 ? Labels{{"os", "linux"}} : Labels{{"os", "mac"}};
    };
    in.pipeline_of = [](const std::string&) { return std::string("release"); };
    FlowReportBuilder builder(std::move(in));
    for (const Event& e : events_) {
      if (e.time_ms() >= ScanStart(kHour, 3 * kHour) && e.time_ms() < 3 * kHour) builder.Add(e);
    }
    farm::v1::FactoryReport report = builder.Finish();
    if (target_figures != nullptr) *target_figures = builder.target_figures();
    return report;
  }

  // A pipeline job that waits `blocked` for its needs, then `wait` queued, runs `run`.
  void PipelineJob(int64_t t, const std::string& job, const std::string& name, int64_t blocked,
                   int64_t wait, int64_t run, bool passed = true) {
    auto tag = [&](Event e) {
      e.set_pipeline_id("p1");
      e.set_pipeline_job(name);
      Add(e);
    };
    tag(JobEvent(farm::v1::JOB_SUBMITTED, t, job));
    tag(JobEvent(farm::v1::JOB_QUEUED, t + blocked, job));
    Event lease = JobEvent(farm::v1::JOB_LEASED, t + blocked + wait, job);
    lease.set_attempt(1);
    tag(lease);
    Event end = JobEvent(farm::v1::ATTEMPT_ENDED, t + blocked + wait + run, job);
    end.set_attempt(1);
    end.set_outcome(passed ? farm::v1::ATTEMPT_SUCCEEDED : farm::v1::ATTEMPT_FAILED);
    tag(end);
    Event done = JobEvent(farm::v1::JOB_ENDED, t + blocked + wait + run, job);
    done.set_attempt(1);
    done.set_state(passed ? farm::v1::SUCCEEDED : farm::v1::FAILED);
    tag(done);
  }
  void SortByTime() {
    std::stable_sort(events_.begin(), events_.end(),
                     [](const Event& a, const Event& b) { return a.time_ms() < b.time_ms(); });
  }

  std::vector<Event> events_;
};

TEST_F(FlowReportTest, EveryFigureOfAKnownHistory) {
  // j1: submitted before the window (0:50), waits 20m, runs 30m: lead 50m, ends 1:40.
  Submit(50 * kMin, "1");
  Lease(70 * kMin, "1", 1);
  EndAttempt(100 * kMin, "1", 1, farm::v1::ATTEMPT_SUCCEEDED);
  EndJob(100 * kMin, "1", farm::v1::SUCCEEDED, 1);
  // j2: 2:00, waits 10m, lost after 10m, waits 0, runs 20m, fails: lead 40m, ends 2:40.
  Submit(120 * kMin, "2");
  Lease(130 * kMin, "2", 1);
  EndAttempt(140 * kMin, "2", 1, farm::v1::ATTEMPT_LOST);
  Lease(140 * kMin, "2", 2);
  EndAttempt(160 * kMin, "2", 2, farm::v1::ATTEMPT_FAILED);
  EndJob(160 * kMin, "2", farm::v1::FAILED, 2);
  // j3: 2:30, still queued at the end (3:00).
  Submit(150 * kMin, "3");
  // A step that passed in j1 and failed in j2: flaky.
  Step(100 * kMin, "1", "f00d", true);
  Step(160 * kMin, "2", "f00d", false);
  // Reordered by time (the builder reads in order).
  std::stable_sort(events_.begin(), events_.end(),
                   [](const Event& a, const Event& b) { return a.time_ms() < b.time_ms(); });

  const farm::v1::FactoryReport r = Build();
  const farm::v1::FlowFigures& f = r.farm();
  EXPECT_EQ(f.arrivals(), 2);  // j2, j3 (j1 came before the window)
  EXPECT_EQ(f.completions(), 2);
  EXPECT_DOUBLE_EQ(f.arrivals_per_hour(), 1.0);
  EXPECT_EQ(f.wip_now(), 1);
  // Open in the window: j1 40m, j2 40m, j3 30m, over 120m.
  EXPECT_NEAR(f.wip_avg(), 110.0 / 120, 1e-9);
  EXPECT_EQ(f.queue_wait().count(), 3);  // 20m, 10m, 0
  EXPECT_EQ(f.queue_wait().p50_ms(), 10 * kMin);
  EXPECT_EQ(f.queue_wait().p95_ms(), 20 * kMin);
  EXPECT_EQ(f.run().count(), 3);  // 30m, 10m, 20m
  EXPECT_EQ(f.run().p50_ms(), 20 * kMin);
  EXPECT_EQ(f.run().mean_ms(), 20 * kMin);
  EXPECT_EQ(f.lead().count(), 2);  // 50m, 40m
  EXPECT_EQ(f.lead().mean_ms(), 45 * kMin);
  // Run 30 + (10 + 20) over lead 50 + 40.
  EXPECT_NEAR(f.flow_efficiency(), 60.0 / 90, 1e-9);
  // The one agent's 2 slots over 2h; busy 30 + 10 + 20 minutes.
  EXPECT_NEAR(f.utilisation(), 60.0 / 240, 1e-9);
  EXPECT_EQ(f.first_pass(), 1);
  EXPECT_DOUBLE_EQ(f.first_pass_yield(), 0.5);
  EXPECT_EQ(f.reruns_lost(), 1);
  EXPECT_EQ(f.reruns_exit(), 0);
  // Little: 2 jobs / 120m x 45m = 0.75 against 0.917: off by 18%.
  EXPECT_NEAR(f.littles_wip(), 0.75, 1e-9);
  EXPECT_FALSE(f.littles_holds());
  EXPECT_THAT(r.notes(), ::testing::Contains(HasSubstr("Little's law does not hold")));
  ASSERT_EQ(r.pools_size(), 1);
  EXPECT_EQ(r.pools(0).scope(), "pool os=linux");
  EXPECT_EQ(r.pools(0).slots(), 2);
  EXPECT_EQ(r.bottleneck(), "pool os=linux");
  ASSERT_EQ(r.flaky_size(), 1);
  EXPECT_EQ(r.flaky(0).fingerprint(), "f00d");
  EXPECT_EQ(r.flaky(0).passed(), 1);
  EXPECT_EQ(r.flaky(0).failed(), 1);
  EXPECT_EQ(r.flaky(0).job(), "build");
  EXPECT_TRUE(r.advice().empty());  // too few leases to advise
}

TEST_F(FlowReportTest, ARetryOfAJobThatEndedBeforeTheScanOpensNothing) {
  Submit(70 * kMin, "1");
  Event retried = JobEvent(farm::v1::JOB_RETRIED, 80 * kMin, "99");  // ended long before
  Add(retried);
  Event dropped = JobEvent(farm::v1::JOB_DROPPED, 90 * kMin, "98", 0);
  Add(dropped);
  const farm::v1::FactoryReport r = Build();
  EXPECT_EQ(r.farm().wip_now(), 1);  // job 1 only
  EXPECT_EQ(r.farm().retried(), 0);
  ASSERT_EQ(r.pools_size(), 1);
}

TEST(ValidateReportRequestTest, AWindowMustEndAfterItStartsAndNotLieInTheFuture) {
  const int64_t now = 1'800'000'000'000;
  farm::v1::FactoryReportRequest req;
  req.set_since_ms(now - kHour);
  EXPECT_TRUE(ValidateReportRequest(req, now).ok());
  req.set_since_ms(now + 10 * kMin);  // all of it to come
  req.set_until_ms(now + kHour);
  EXPECT_EQ(ValidateReportRequest(req, now).code(), absl::StatusCode::kInvalidArgument);
  req.set_since_ms(now);  // one second of it to come: empty
  req.set_until_ms(now + 1000);
  EXPECT_EQ(ValidateReportRequest(req, now).code(), absl::StatusCode::kInvalidArgument);
  req.set_since_ms(0);
  req.set_until_ms(0);
  EXPECT_EQ(ValidateReportRequest(req, now).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(FlowReportTest, FiltersKeepOnlyTheJobsOfALabelSet) {
  Submit(70 * kMin, "1", 1);
  Submit(80 * kMin, "2", 2);
  farm::v1::FactoryReportRequest req;
  (*req.mutable_labels())["os"] = "mac";
  const farm::v1::FactoryReport r = Build(req);
  EXPECT_EQ(r.farm().arrivals(), 1);
  ASSERT_EQ(r.pools_size(), 1);
  EXPECT_EQ(r.pools(0).scope(), "pool os=mac");
  EXPECT_EQ(r.pools(0).slots(), 0);  // the one agent is os=linux
}

TEST_F(FlowReportTest, AdviceForABusyPoolNamesTheAgentsThatBringTheWaitUnderTheTarget) {
  // 60 jobs an hour on 2 slots, each running 110 s (92% busy), each waiting 4 minutes.
  for (int i = 0; i < 120; ++i) {
    const int64_t t = kHour + i * kMin;
    const std::string job = std::to_string(i + 1);
    Submit(t, job);
    Lease(t + 4 * kMin, job, 1);
    EndAttempt(t + 4 * kMin + 110'000, job, 1, farm::v1::ATTEMPT_SUCCEEDED);
    EndJob(t + 4 * kMin + 110'000, job, farm::v1::SUCCEEDED, 1);
  }
  std::stable_sort(events_.begin(), events_.end(),
                   [](const Event& a, const Event& b) { return a.time_ms() < b.time_ms(); });
  const farm::v1::FactoryReport r = Build();
  ASSERT_EQ(r.advice_size(), 1);
  const farm::v1::CapacityAdvice& a = r.advice(0);
  // 116 leases in 2h, 110 s each: 1.77 slots busy. Erlang C gives a p95 wait of 23m with 2
  // slots, 2m53s with 3, 44s with 4, and under 5% of arrivals waiting at all with 5.
  EXPECT_EQ(a.slots(), 2);
  EXPECT_EQ(a.slots_needed(), 5);
  EXPECT_EQ(a.more_agents(), 2);  // of 2 slots, as the one agent has
  EXPECT_EQ(a.predicted_p95_wait_ms(), 0);
  EXPECT_THAT(a.text(), HasSubstr("pool os=linux: p95 wait 4m at"));
  EXPECT_THAT(a.text(), HasSubstr("bring the p95 wait under 30s"));
}

TEST_F(FlowReportTest, EachPipelineStageAndItsBottleneck) {
  // build (two matrix jobs): run 10m each, no wait; test: blocked 10m, waits 15m, runs 20m.
  PipelineJob(70 * kMin, "1", "build (amd64)", 0, 0, 10 * kMin);
  PipelineJob(70 * kMin, "2", "build (arm64)", 0, 0, 10 * kMin);
  PipelineJob(70 * kMin, "3", "test", 10 * kMin, 15 * kMin, 20 * kMin);
  SortByTime();
  const farm::v1::FactoryReport r = Build();
  ASSERT_EQ(r.stages_size(), 2);
  const farm::v1::StageFigures& test = r.stages(0);  // the bottleneck comes first
  EXPECT_EQ(test.pipeline(), "release");
  EXPECT_EQ(test.stage(), "test");
  EXPECT_TRUE(test.bottleneck());
  EXPECT_EQ(test.jobs(), 1);
  EXPECT_EQ(test.blocked().p50_ms(), 10 * kMin);
  EXPECT_EQ(test.queue_wait().p95_ms(), 15 * kMin);
  EXPECT_EQ(test.run().p95_ms(), 20 * kMin);
  const farm::v1::StageFigures& build = r.stages(1);
  EXPECT_EQ(build.stage(), "build");  // both expansions in one stage
  EXPECT_FALSE(build.bottleneck());
  EXPECT_EQ(build.jobs(), 2);
  EXPECT_EQ(build.run().count(), 2);
  EXPECT_EQ(build.blocked().p95_ms(), 0);
}

TEST_F(FlowReportTest, TargetScopesIgnoreTheRequestsFiltersAndMatchByLabelsAndPipeline) {
  PipelineJob(70 * kMin, "1", "build", 0, 5 * kMin, 10 * kMin, /*passed=*/false);
  PipelineJob(80 * kMin, "2", "build", 0, 1 * kMin, 10 * kMin);
  Submit(90 * kMin, "3", 2);  // os=mac, no pipeline
  SortByTime();
  farm::v1::FactoryTarget linux_target, pipeline_target, mac_target;
  (*linux_target.mutable_labels())["os"] = "linux";
  pipeline_target.set_pipeline("release");
  (*mac_target.mutable_labels())["os"] = "mac";
  farm::v1::FactoryReportRequest req;
  (*req.mutable_labels())["os"] = "mac";  // the report's own scope: the targets keep theirs
  std::vector<farm::v1::FlowFigures> figures;
  Build(req, {linux_target, pipeline_target, mac_target}, &figures);
  ASSERT_EQ(figures.size(), 3u);
  EXPECT_EQ(figures[0].scope(), "labels os=linux");
  EXPECT_EQ(figures[0].completions(), 2);
  EXPECT_EQ(figures[0].queue_wait().p95_ms(), 5 * kMin);
  EXPECT_DOUBLE_EQ(figures[0].first_pass_yield(), 0.5);
  EXPECT_EQ(figures[1].scope(), "pipeline release");
  EXPECT_EQ(figures[1].completions(), 2);
  EXPECT_EQ(figures[2].arrivals(), 1);
  EXPECT_EQ(figures[2].completions(), 0);
}

}  // namespace
}  // namespace farm::coordinator::factory
