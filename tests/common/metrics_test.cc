#include "common/metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <thread>
#include <vector>

namespace farm::common::metrics {
namespace {

using ::testing::HasSubstr;

TEST(MetricsTest, ExposesCountersAndGaugesInTheTextFormat) {
  Registry registry;
  Counter& jobs = registry.AddCounter("farm_jobs_submitted_total", "Jobs submitted.");
  Family<Gauge>& depth =
      registry.AddGaugeFamily("farm_queue_depth", "Queued jobs per label set.", {"labels"});
  jobs.Add(3);
  depth.With({"os=linux"}).Set(7);
  depth.With({"arch=arm64,os=linux"}).Set(0);
  EXPECT_EQ(registry.Expose(),
            "# HELP farm_jobs_submitted_total Jobs submitted.\n"
            "# TYPE farm_jobs_submitted_total counter\n"
            "farm_jobs_submitted_total 3\n"
            "# HELP farm_queue_depth Queued jobs per label set.\n"
            "# TYPE farm_queue_depth gauge\n"
            "farm_queue_depth{labels=\"arch=arm64,os=linux\"} 0\n"
            "farm_queue_depth{labels=\"os=linux\"} 7\n");
}

TEST(MetricsTest, HistogramBucketsAreCumulativeAndInclusive) {
  Registry registry;
  Histogram& h = registry.AddHistogram("farm_wait_seconds", "Waits.", {0.1, 1});
  h.Observe(0.1);  // on the bound: counted in le="0.1"
  h.Observe(0.5);
  h.Observe(2);
  EXPECT_EQ(registry.Expose(),
            "# HELP farm_wait_seconds Waits.\n"
            "# TYPE farm_wait_seconds histogram\n"
            "farm_wait_seconds_bucket{le=\"0.1\"} 1\n"
            "farm_wait_seconds_bucket{le=\"1\"} 2\n"
            "farm_wait_seconds_bucket{le=\"+Inf\"} 3\n"
            "farm_wait_seconds_sum 2.6\n"
            "farm_wait_seconds_count 3\n");
}

TEST(MetricsTest, LabelledHistogramsKeepTheirLabelsBeforeLe) {
  Registry registry;
  Family<Histogram>& f =
      registry.AddHistogramFamily("farm_run_seconds", "Run time.", {"labels"}, {1});
  f.With({"os=linux"}).Observe(0.5);
  EXPECT_THAT(registry.Expose(),
              HasSubstr("farm_run_seconds_bucket{labels=\"os=linux\",le=\"1\"} 1\n"
                        "farm_run_seconds_bucket{labels=\"os=linux\",le=\"+Inf\"} 1\n"
                        "farm_run_seconds_sum{labels=\"os=linux\"} 0.5\n"
                        "farm_run_seconds_count{labels=\"os=linux\"} 1\n"));
}

TEST(MetricsTest, EscapesLabelValuesAndHelp) {
  EXPECT_EQ(EscapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  Registry registry;
  registry.AddGaugeFamily("farm_x", "Line one\nback\\slash \"quoted\"", {"k"})
      .With({"v\"1"})
      .Set(1);
  EXPECT_EQ(registry.Expose(),
            "# HELP farm_x Line one\\nback\\\\slash \"quoted\"\n"
            "# TYPE farm_x gauge\n"
            "farm_x{k=\"v\\\"1\"} 1\n");
}

TEST(MetricsTest, FormatsValuesSoTheyReadBackExactly) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(12345678901234), "12345678901234");
  EXPECT_EQ(FormatValue(0.001), "0.001");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatValue(std::nan("")), "NaN");
}

TEST(MetricsTest, CollectorsWriteWhatTheyReadAtScrapeTime) {
  Registry registry;
  int64_t agents = 2;
  registry.AddCollector([&agents](Exposition& out) {
    out.Begin("farm_agents", "Agents by state.", Type::kGauge);
    out.Sample("", {{"state", "idle"}}, static_cast<double>(agents));
  });
  EXPECT_THAT(registry.Expose(), HasSubstr("farm_agents{state=\"idle\"} 2\n"));
  agents = 5;
  EXPECT_THAT(registry.Expose(), HasSubstr("farm_agents{state=\"idle\"} 5\n"));
}

TEST(MetricsTest, CountsFromManyThreadsAddUp) {
  Registry registry;
  Counter& c = registry.AddCounter("farm_c_total", "c");
  Histogram& h = registry.AddHistogram("farm_h", "h", {0.5});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        c.Add();
        h.Observe(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.Value(), 40000u);
  const Histogram::Snapshot s = h.Read();
  EXPECT_EQ(s.count, 40000u);
  EXPECT_EQ(s.cumulative[0], 0u);
  EXPECT_DOUBLE_EQ(s.sum, 40000);
}

TEST(MetricsDeathTest, ANameRegisteredTwiceIsABug) {
  Registry registry;
  registry.AddCounter("farm_c_total", "c");
  EXPECT_DEATH(registry.AddGauge("farm_c_total", "again"), "registered twice");
}

TEST(MetricsDeathTest, LabelValuesMustMatchTheNames) {
  Registry registry;
  Family<Counter>& f = registry.AddCounterFamily("farm_c_total", "c", {"a", "b"});
  EXPECT_DEATH(f.With({"only-one"}), "do not match");
}

TEST(MetricsDeathTest, BoundsMustIncrease) {
  EXPECT_DEATH(Histogram({1, 1}), "strictly increasing");
}

}  // namespace
}  // namespace farm::common::metrics
