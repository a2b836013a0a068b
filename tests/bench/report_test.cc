#include "tests/bench/report.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"

namespace farm::bench {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

Scenario Dispatch() {
  Scenario s;
  s.name = "dispatch";
  s.size_unit = "jobs";
  s.growth_metrics = {"p50_ms"};
  s.targets = {{"p50_ms", Target::kAtMost, 2}};
  return s;
}

SizeResult Passed(int64_t size, std::vector<double> p50s) {
  SizeResult r;
  r.size = size;
  for (double v : p50s) r.AddRun({{"p50_ms", v, "ms"}});
  return r;
}

// The table's line that starts with `prefix`, or "" when there is none.
std::string LineStarting(const std::string& table, const std::string& prefix) {
  for (absl::string_view line : absl::StrSplit(table, '\n')) {
    if (absl::StartsWith(line, prefix)) return std::string(line);
  }
  return "";
}

TEST(BenchJudgeTest, TheMedianOfPassedRunsMeetsOrMissesTheBound) {
  const Target at_most{"p50_ms", Target::kAtMost, 2};
  EXPECT_EQ(Judge(at_most, Passed(1000, {1.5, 3.0, 1.9})), Verdict::kMet);
  EXPECT_EQ(Judge(at_most, Passed(1000, {2.5, 1.0, 2.1})), Verdict::kMissed);
  const Target at_least{"p50_ms", Target::kAtLeast, 2};
  EXPECT_EQ(Judge(at_least, Passed(1000, {2.0})), Verdict::kMet);
  EXPECT_EQ(Judge(at_least, Passed(1000, {1.0})), Verdict::kMissed);
}

TEST(BenchJudgeTest, ASizeWithAFailedRunIsFailedWhateverThePassedRunsMeasured) {
  SizeResult r = Passed(1000, {1.0, 1.1});
  ASSERT_EQ(Judge({"p50_ms", Target::kAtMost, 2}, r), Verdict::kMet);
  r.AddFailure("run 3 of 3: DEADLINE_EXCEEDED: timed out");
  EXPECT_EQ(Judge({"p50_ms", Target::kAtMost, 2}, r), Verdict::kFailed);
  EXPECT_EQ(Judge({"p50_ms", Target::kAtLeast, 2}, r), Verdict::kFailed);
  EXPECT_EQ(Judge({"p99_ms", Target::kAtMost, 2}, r), Verdict::kFailed);
}

TEST(BenchJudgeTest, AMetricNoRunReportedIsNotMeasured) {
  EXPECT_EQ(Judge({"p99_ms", Target::kAtMost, 10}, Passed(1000, {1.0})), Verdict::kNotMeasured);
}

TEST(BenchGrowthTest, IsNotComputedFromAFailedSize) {
  const Scenario s = Dispatch();
  ScenarioResult result{&s, {Passed(200, {1.0}), Passed(1000, {2.0})}};
  ASSERT_EQ(Growth(result, "p50_ms"), 2.0);
  result.sizes[0].AddFailure("run 2 of 2: INTERNAL: boom");
  EXPECT_EQ(Growth(result, "p50_ms"), std::nullopt);
}

TEST(BenchTableTest, AFailedLargerSizeShowsFailedNeverMet) {
  const Scenario s = Dispatch();
  ScenarioResult result{&s, {Passed(200, {1.0, 1.2}), Passed(1000, {1.0, 1.1})}};
  result.sizes[1].AddFailure("run 3 of 3: DEADLINE_EXCEEDED: timed out");
  const std::string table = Table(RunInfo{{}, "abc", "now", 3, false}, {result});

  const std::string figure = LineStarting(table, "| dispatch | 1000 jobs | p50_ms (ms) |");
  EXPECT_THAT(figure, HasSubstr("≤ 2 **failed**")) << table;
  EXPECT_THAT(figure, Not(HasSubstr("met"))) << table;
  EXPECT_THAT(figure, HasSubstr("(of 2 passed runs)")) << table;
  EXPECT_THAT(LineStarting(table, "| dispatch | 1000 jobs | **failed** |"),
              HasSubstr("run 3 of 3: DEADLINE_EXCEEDED: timed out"))
      << table;
  EXPECT_THAT(LineStarting(table, "| dispatch | p50_ms |"), HasSubstr("| **failed** |")) << table;
  // The smaller size passed: its figures stand as they are.
  EXPECT_THAT(LineStarting(table, "| dispatch | 200 jobs | p50_ms (ms) | 1.1 |"),
              Not(HasSubstr("passed runs")))
      << table;
}

TEST(BenchTableTest, ATargetOfASizeWhoseEveryRunFailedStillShowsFailed) {
  const Scenario s = Dispatch();
  SizeResult none;
  none.size = 1000;
  none.AddFailure("run 1 of 3: UNAVAILABLE: no coordinator");
  ScenarioResult result{&s, {Passed(200, {1.0}), none}};
  const std::string table = Table(RunInfo{{}, "", "now", 3, false}, {result});
  EXPECT_THAT(LineStarting(table, "| dispatch | 1000 jobs | p50_ms |"), HasSubstr("≤ 2 **failed**"))
      << table;
}

TEST(BenchTableTest, APassedSizeShowsItsVerdict) {
  const Scenario s = Dispatch();
  ScenarioResult result{&s, {Passed(200, {3.0}), Passed(1000, {1.0, 1.5, 1.2})}};
  const std::string table = Table(RunInfo{{}, "", "now", 3, false}, {result});
  EXPECT_THAT(LineStarting(table, "| dispatch | 1000 jobs | p50_ms (ms) | 1.2 |"),
              HasSubstr("≤ 2 met"))
      << table;
  EXPECT_THAT(LineStarting(table, "| dispatch | 200 jobs | p50_ms (ms) | 3 |"),
              Not(HasSubstr("missed")))
      << "targets apply at the larger size\n"
      << table;
  EXPECT_THAT(LineStarting(table, "| dispatch | p50_ms |"), HasSubstr("| 0.4 |")) << table;
}

TEST(BenchJsonTest, AFailedSizeAndItsTargetsAreMarkedFailed) {
  const Scenario s = Dispatch();
  ScenarioResult result{&s, {Passed(200, {1.0}), Passed(1000, {1.0})}};
  result.sizes[1].AddFailure("run 2 of 3: INTERNAL: \"quoted\"");
  const std::string json = Json(RunInfo{{}, "abc", "now", 3, false}, {result});
  EXPECT_THAT(json, HasSubstr("{\"size\": 1000, \"failed\": true, \"runs_passed\": 1, "
                              "\"errors\": [\"run 2 of 3: INTERNAL: \\\"quoted\\\"\"]"))
      << json;
  EXPECT_THAT(json, HasSubstr("{\"size\": 200, \"failed\": false, \"runs_passed\": 1")) << json;
  EXPECT_THAT(json, HasSubstr("\"verdict\": \"failed\", \"met\": null")) << json;
  EXPECT_THAT(json, Not(HasSubstr("\"met\": true"))) << json;
  EXPECT_THAT(json, HasSubstr("\"growth\": {\"p50_ms\": null}")) << json;
}

TEST(BenchJsonTest, APassedSizeCarriesItsVerdict) {
  const Scenario s = Dispatch();
  ScenarioResult result{&s, {Passed(200, {1.0}), Passed(1000, {4.0})}};
  const std::string json = Json(RunInfo{{}, "abc", "now", 1, true}, {result});
  EXPECT_THAT(json, HasSubstr("\"verdict\": \"missed\", \"met\": false")) << json;
  EXPECT_THAT(json, HasSubstr("\"growth\": {\"p50_ms\": 4}")) << json;
}

}  // namespace
}  // namespace farm::bench
