// The pipeline progress view of `farmctl submit --follow`: the terminal frame and the plain log,
// line by line.
#include "coordinator/cli/pipeline_progress.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "coordinator/cli/format.h"

namespace farm::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int64_t kProgressT0 = 1'700'000'000'000;  // 2023-11-14 22:13:20 UTC

farm::v1::PipelineJob* AddJob(farm::v1::Pipeline& p, const std::string& name, const std::string& id,
                              farm::v1::JobState state, int64_t started = 0, int64_t finished = 0,
                              uint32_t attempts = 0) {
  farm::v1::PipelineJob* job = p.add_jobs();
  job->set_name(name);
  job->set_job_id(id);
  job->set_state(state);
  job->set_started_ms(started);
  job->set_finished_ms(finished);
  job->set_attempts(attempts);
  return job;
}

// release: two builds (one done, one on its second attempt) and a test waiting for them.
farm::v1::Pipeline Release() {
  farm::v1::Pipeline p;
  p.set_id("p3");
  p.set_name("release");
  p.set_state(farm::v1::RUNNING);
  p.set_submitted_ms(kProgressT0);
  AddJob(p, "build (amd64)", "11", farm::v1::SUCCEEDED, kProgressT0 + 500, kProgressT0 + 4'700, 1);
  AddJob(p, "build (arm64)", "12", farm::v1::RUNNING, kProgressT0 + 600, 0, 2);
  AddJob(p, "test", "13", farm::v1::WAITING)->add_needs("build (amd64)");
  return p;
}

TEST(RenderPipelineFrameTest, OneLinePerJobAndABar) {
  EXPECT_THAT(RenderPipelineFrame(Release(), kProgressT0 + 6'300),
              ElementsAre("  build (amd64)  SUCCEEDED  4.2s",
                          "  build (arm64)  RUNNING    5.7s   attempt 2",
                          "  test           WAITING", "[######--------------] 1/3  RUNNING  6.3s"));
}

TEST(RenderPipelineFrameTest, AnEndedPipelineShowsAFullBarAndItsTotalTime) {
  farm::v1::Pipeline p = Release();
  p.set_state(farm::v1::FAILED);
  p.set_finished_ms(kProgressT0 + 9'000);
  p.mutable_jobs(1)->set_state(farm::v1::FAILED);
  p.mutable_jobs(1)->set_finished_ms(kProgressT0 + 8'000);
  p.mutable_jobs(2)->set_state(farm::v1::SKIPPED);
  EXPECT_THAT(RenderPipelineFrame(p, kProgressT0 + 60'000),
              ElementsAre("  build (amd64)  SUCCEEDED  4.2s",
                          "  build (arm64)  FAILED     7.4s   2 attempts",
                          "  test           SKIPPED", "[####################] 3/3  FAILED  9.0s"));
}

TEST(RenderPipelineFrameTest, LinesAreCutToTheTerminalsWidth) {
  const std::vector<std::string> lines = RenderPipelineFrame(Release(), kProgressT0 + 6'300, 20);
  ASSERT_EQ(lines.size(), 4u);
  for (const std::string& line : lines) EXPECT_LE(line.size(), 19u) << line;
  EXPECT_EQ(lines[0], "  build (amd64)  SU");
}

TEST(RenderPipelineFrameTest, WhenJobsDoNotFitTheMostInterestingAreShown) {
  farm::v1::Pipeline p;
  p.set_id("p4");
  p.set_state(farm::v1::RUNNING);
  for (int i = 0; i < 6; ++i) {
    AddJob(p, absl::StrCat("ok", i), absl::StrCat(i), farm::v1::SUCCEEDED, kProgressT0,
           kProgressT0 + 1'000);
  }
  AddJob(p, "wait", "6", farm::v1::WAITING);
  AddJob(p, "run", "7", farm::v1::RUNNING, kProgressT0);
  AddJob(p, "bad", "8", farm::v1::FAILED, kProgressT0, kProgressT0 + 2'000);
  // A terminal of 5 rows: 4 lines, of which 2 for jobs.
  EXPECT_THAT(RenderPipelineFrame(p, kProgressT0 + 3'000, 0, 5),
              ElementsAre("  run  RUNNING    3.0s", "  bad  FAILED     2.0s",
                          "  ... and 7 more: 1 waiting, 6 succeeded",
                          "[###############-----] 7/9  RUNNING"));
}

TEST(PipelineProgressTest, OnATerminalEachFrameRedrawsThePreviousOne) {
  PipelineProgress progress({/*terminal=*/true, absl::UTCTimeZone()});
  farm::v1::Pipeline p = Release();
  const std::string first = progress.Update(p, kProgressT0 + 6'300);
  EXPECT_EQ(first,
            "\x1b[2K  build (amd64)  SUCCEEDED  4.2s\n"
            "\x1b[2K  build (arm64)  RUNNING    5.7s   attempt 2\n"
            "\x1b[2K  test           WAITING\n"
            "\x1b[2K[######--------------] 1/3  RUNNING  6.3s\n");
  p.mutable_jobs(1)->set_state(farm::v1::SUCCEEDED);
  p.mutable_jobs(1)->set_finished_ms(kProgressT0 + 7'000);
  p.mutable_jobs(2)->set_state(farm::v1::RUNNING);
  p.mutable_jobs(2)->set_started_ms(kProgressT0 + 7'100);
  p.mutable_jobs(2)->set_attempts(1);
  EXPECT_EQ(progress.Update(p, kProgressT0 + 8'000),
            "\r\x1b[4A"
            "\x1b[2K  build (amd64)  SUCCEEDED  4.2s\n"
            "\x1b[2K  build (arm64)  SUCCEEDED  6.4s   2 attempts\n"
            "\x1b[2K  test           RUNNING    0.9s\n"
            "\x1b[2K[#############-------] 2/3  RUNNING  8.0s\n");
}

TEST(PipelineProgressTest, AShorterFrameClearsWhatIsLeftBelowIt) {
  PipelineProgress progress({/*terminal=*/true, absl::UTCTimeZone()});
  farm::v1::Pipeline p = Release();
  progress.Update(p, kProgressT0 + 6'300);
  const std::string shorter = progress.Update(p, kProgressT0 + 6'300, 0, 4);  // now 3 lines
  EXPECT_THAT(shorter, ::testing::StartsWith("\r\x1b[4A"));
  EXPECT_THAT(shorter, ::testing::EndsWith("\x1b[J"));
}

TEST(PipelineProgressTest, ElsewhereOneLinePerChangeAndNoEscapes) {
  PipelineProgress progress({/*terminal=*/false, absl::UTCTimeZone()});
  farm::v1::Pipeline p = Release();
  EXPECT_EQ(progress.Update(p, kProgressT0 + 6'300),
            "22:13:26 build (amd64)  SUCCEEDED  4.2s\n"
            "22:13:26 build (arm64)  RUNNING           attempt 2\n"
            "22:13:26 test           WAITING\n");
  EXPECT_EQ(progress.Update(p, kProgressT0 + 6'550), "") << "nothing changed";

  p.mutable_jobs(2)->set_state(farm::v1::RUNNING);
  p.mutable_jobs(2)->set_started_ms(kProgressT0 + 7'000);
  p.mutable_jobs(2)->set_attempts(1);
  EXPECT_EQ(progress.Update(p, kProgressT0 + 7'100), "22:13:27 test           RUNNING\n");

  // A retry that went by between two polls still shows, by its attempt number.
  p.mutable_jobs(1)->set_attempts(3);
  EXPECT_EQ(progress.Update(p, kProgressT0 + 7'400),
            "22:13:27 build (arm64)  RUNNING           attempt 3\n");

  p.mutable_jobs(1)->set_state(farm::v1::FAILED);
  p.mutable_jobs(1)->set_finished_ms(kProgressT0 + 8'000);
  p.mutable_jobs(2)->set_state(farm::v1::CANCELLED);
  p.mutable_jobs(2)->set_finished_ms(kProgressT0 + 8'100);
  const std::string last = progress.Update(p, kProgressT0 + 8'200);
  EXPECT_EQ(last,
            "22:13:28 build (arm64)  FAILED     7.4s   3 attempts\n"
            "22:13:28 test           CANCELLED  1.1s\n");
  EXPECT_THAT(last, Not(HasSubstr("\x1b")));
}

TEST(FormatPipelineSummaryTest, StateDoneOverTotalAndTime) {
  farm::v1::Pipeline p = Release();
  EXPECT_EQ(FormatPipelineSummary(p, kProgressT0 + 6'300),
            "pipeline p3 release: RUNNING 1/3 jobs done after 6.3s");
  for (farm::v1::PipelineJob& job : *p.mutable_jobs()) {
    job.set_state(farm::v1::SUCCEEDED);
  }
  p.set_state(farm::v1::SUCCEEDED);
  p.set_finished_ms(kProgressT0 + 12'345);
  EXPECT_EQ(FormatPipelineSummary(p, kProgressT0 + 60'000),
            "pipeline p3 release: SUCCEEDED 3/3 jobs in 12.3s");
}

TEST(FormatPipelineSummaryTest, NamesTheJobsThatDidNotSucceed) {
  farm::v1::Pipeline p;
  p.set_id("p5");
  p.set_name("failing");
  p.set_state(farm::v1::FAILED);
  p.set_submitted_ms(kProgressT0);
  p.set_finished_ms(kProgressT0 + 3'100);
  AddJob(p, "test", "1", farm::v1::FAILED);
  AddJob(p, "docs", "2", farm::v1::SUCCEEDED);
  AddJob(p, "deploy", "3", farm::v1::SKIPPED);
  AddJob(p, "notify", "4", farm::v1::SKIPPED);
  EXPECT_EQ(FormatPipelineSummary(p, kProgressT0 + 60'000),
            "pipeline p5 failing: FAILED 4/4 jobs in 3.1s (failed: test; skipped: deploy, notify)");
  for (int i = 0; i < 7; ++i) AddJob(p, absl::StrCat("x", i), "", farm::v1::SKIPPED);
  EXPECT_THAT(FormatPipelineSummary(p, kProgressT0),
              HasSubstr("skipped: deploy, notify, x0, x1, x2 and 4 more)"));
}

TEST(FormatElapsedTest, Compact) {
  EXPECT_EQ(FormatElapsed(-3), "0.0s");
  EXPECT_EQ(FormatElapsed(400), "0.4s");
  EXPECT_EQ(FormatElapsed(12'345), "12.3s");
  EXPECT_EQ(FormatElapsed(59'999), "59.9s");
  EXPECT_EQ(FormatElapsed(245'000), "4m05s");
  EXPECT_EQ(FormatElapsed(3'720'000), "1h02m");
}

}  // namespace
}  // namespace farm::cli
