#include "coordinator/cli/format.h"

#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <string>

#include "coordinator/cli/options.h"

namespace farm::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr int64_t kT0 = 1'700'000'000'000;  // 2023-11-14 22:13:20 UTC

TextContext Context(int64_t now_ms = kT0 + 60'000) { return {now_ms, absl::UTCTimeZone()}; }

farm::v1::Job FailedJob() {
  farm::v1::Job job;
  job.set_id("17");
  job.mutable_spec()->set_name("hello");
  job.mutable_spec()->set_priority(5);
  (*job.mutable_spec()->mutable_labels())["os"] = "linux";
  (*job.mutable_spec()->mutable_labels())["arch"] = "amd64";
  for (const char* name : {"greet", "build", "test"}) {
    farm::v1::StepSpec* step = job.mutable_spec()->add_steps();
    step->set_name(name);
    step->set_run("true");
  }
  job.set_state(farm::v1::FAILED);
  job.set_reason("step build exited with 2");
  job.set_submitted_ms(kT0);
  job.set_started_ms(kT0 + 1'000);
  job.set_finished_ms(kT0 + 4'500);
  farm::v1::Attempt* lost = job.add_attempts();
  lost->set_number(1);
  lost->set_agent("a1");
  lost->set_epoch(6);
  lost->set_started_ms(kT0 + 1'000);
  lost->set_ended_ms(kT0 + 2'000);
  lost->set_outcome(farm::v1::ATTEMPT_LOST);
  lost->set_reason("lease expired");
  farm::v1::Attempt* attempt = job.add_attempts();
  attempt->set_number(2);
  attempt->set_agent("a2");
  attempt->set_epoch(7);
  attempt->set_started_ms(kT0 + 2'000);
  attempt->set_ended_ms(kT0 + 4'500);
  attempt->set_outcome(farm::v1::ATTEMPT_FAILED);
  attempt->set_reason("step build exited with 2");
  farm::v1::StepResult* greet = attempt->add_steps();
  greet->set_name("greet");
  greet->set_state(farm::v1::STEP_SUCCEEDED);
  greet->set_duration_ms(12);
  farm::v1::StepResult* build = attempt->add_steps();
  build->set_name("build");
  build->set_state(farm::v1::STEP_FAILED);
  build->set_exit_code(2);
  build->set_duration_ms(1'234);
  farm::v1::StepResult* test = attempt->add_steps();
  test->set_name("test");
  test->set_state(farm::v1::STEP_SKIPPED);
  return job;
}

TEST(ToJsonTest, UsesProtoFieldNamesEnumNamesAndPrintsEveryField) {
  farm::v1::Job job;
  job.set_id("3");
  job.set_state(farm::v1::SUCCEEDED);
  const std::string json = ToJson(job);
  EXPECT_THAT(json, HasSubstr("\"state\": \"SUCCEEDED\""));
  EXPECT_THAT(json, HasSubstr("\"submitted_ms\": \"0\""));  // int64 is a string in proto JSON
  EXPECT_THAT(json, HasSubstr("\"cancel_requested\": false"));
  EXPECT_EQ(json.back(), '\n');
  // And it is a document that parses back to the same job.
  farm::v1::Job parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &parsed).ok());
  EXPECT_EQ(parsed.id(), "3");
  EXPECT_EQ(parsed.state(), farm::v1::SUCCEEDED);
}

TEST(ToJsonTest, CompactIsOneLine) {
  farm::v1::WatchLogsResponse message;
  message.add_chunks()->set_data("a\nb");
  const std::string json = ToJson(message, /*pretty=*/false);
  EXPECT_EQ(json.find('\n'), json.size() - 1);
}

TEST(ExitCodeTest, MapsOutcomes) {
  EXPECT_EQ(ExitCodeForState(farm::v1::SUCCEEDED), 0);
  EXPECT_EQ(ExitCodeForState(farm::v1::FAILED), 1);
  EXPECT_EQ(ExitCodeForState(farm::v1::CANCELLED), 2);
  EXPECT_EQ(ExitCodeForState(farm::v1::SKIPPED), 1);  // a job it needed did not succeed
  EXPECT_EQ(ExitCodeForState(farm::v1::WAITING), kExitError);
  EXPECT_EQ(ExitCodeForState(farm::v1::RUNNING), kExitError);
  EXPECT_EQ(ExitCodeForState(farm::v1::JOB_STATE_UNSPECIFIED), kExitError);
  EXPECT_NE(kExitError, kExitWaitTimedOut);
}

TEST(FormatJobTextTest, ShowsStateTimesAttemptsAndSteps) {
  const std::string text = FormatJobText(FailedJob(), Context());
  EXPECT_THAT(text, HasSubstr("id:        17\n"));
  EXPECT_THAT(text, HasSubstr("state:     FAILED\n"));
  EXPECT_THAT(text, HasSubstr("reason:    step build exited with 2\n"));
  EXPECT_THAT(text, HasSubstr("labels:    arch=amd64,os=linux\n"));
  EXPECT_THAT(text, HasSubstr("submitted: 2023-11-14 22:13:20 UTC\n"));
  EXPECT_THAT(text, HasSubstr("started:   2023-11-14 22:13:21 UTC (queued 1s)\n"));
  EXPECT_THAT(text, HasSubstr("finished:  2023-11-14 22:13:24 UTC (ran 3.5s)\n"));
  EXPECT_THAT(text, HasSubstr("  1        a1     6      LOST     1s        lease expired\n"));
  EXPECT_THAT(text,
              HasSubstr("  2        a2     7      FAILED   2.5s      step build exited with 2\n"));
  EXPECT_THAT(text, HasSubstr("steps (attempt 2):\n"));
  EXPECT_THAT(text, HasSubstr("  greet  SUCCEEDED  0     12ms\n"));
  EXPECT_THAT(text, HasSubstr("  build  FAILED     2     1.234s\n"));
  EXPECT_THAT(text, HasSubstr("  test   SKIPPED    -     -\n"));
}

TEST(FormatJobTextTest, ShowsASignalInsteadOfAnExitCode) {
  farm::v1::Job job = FailedJob();
  farm::v1::StepResult* build = job.mutable_attempts(1)->mutable_steps(1);
  build->set_state(farm::v1::STEP_TIMED_OUT);
  build->set_exit_code(0);
  build->set_signal(SIGKILL);
  build->set_message("timed out after 60s");
  EXPECT_THAT(FormatJobText(job, Context()),
              HasSubstr("  build  TIMED_OUT  SIGKILL  1.234s    timed out after 60s\n"));
}

TEST(FormatJobTextTest, AQueuedJobHasPendingStepsAndNoAttempts) {
  farm::v1::Job job = FailedJob();
  job.clear_attempts();
  job.set_state(farm::v1::QUEUED);
  job.clear_reason();
  job.set_started_ms(0);
  job.set_finished_ms(0);
  const std::string text = FormatJobText(job, Context());
  EXPECT_THAT(text, HasSubstr("state:     QUEUED\n"));
  EXPECT_THAT(text, Not(HasSubstr("attempts:")));
  EXPECT_THAT(text, Not(HasSubstr("started:")));
  EXPECT_THAT(text, HasSubstr("steps:\n"));
  EXPECT_THAT(text, HasSubstr("  greet  PENDING  -     -\n"));
}

TEST(FormatJobTextTest, ARunningStepShowsItsTimeSoFar) {
  farm::v1::Job job = FailedJob();
  job.set_state(farm::v1::RUNNING);
  job.set_cancel_requested(true);
  job.set_finished_ms(0);
  farm::v1::StepResult* build = job.mutable_attempts(1)->mutable_steps(1);
  build->set_state(farm::v1::STEP_RUNNING);
  build->set_started_ms(kT0 + 50'000);
  const std::string text = FormatJobText(job, Context(kT0 + 60'000));
  EXPECT_THAT(text, HasSubstr("state:     RUNNING (cancel requested)\n"));
  EXPECT_THAT(text, HasSubstr("  build  RUNNING    -     10s\n"));
}

TEST(FormatJobListTextTest, ATableOfJobs) {
  farm::v1::ListJobsResponse response;
  *response.add_jobs() = FailedJob();
  farm::v1::Job* queued = response.add_jobs();
  queued->set_id("18");
  queued->set_state(farm::v1::QUEUED);
  queued->set_submitted_ms(kT0 + 30'000);
  const std::string text = FormatJobListText(response, Context(kT0 + 2 * 3600'000));
  EXPECT_EQ(text,
            "ID  STATE   NAME   PRIORITY  AGE  DURATION\n"
            "17  FAILED  hello  5         2h   3.5s\n"
            "18  QUEUED  -      0         1h   -\n");
  EXPECT_EQ(FormatJobListText(farm::v1::ListJobsResponse(), Context()), "no jobs\n");
}

TEST(FormatJobListTextTest, JobsOfPipelinesGetAPipelineColumn) {
  farm::v1::ListJobsResponse response;
  farm::v1::Job* skipped = response.add_jobs();
  skipped->set_id("21");
  skipped->set_state(farm::v1::SKIPPED);
  skipped->mutable_spec()->set_name("deploy");
  skipped->set_pipeline_id("p3");
  skipped->set_submitted_ms(kT0);
  farm::v1::Job* waiting = response.add_jobs();
  waiting->set_id("20");
  waiting->set_state(farm::v1::WAITING);
  waiting->mutable_spec()->set_name("build (amd64)");
  waiting->set_pipeline_id("p3");
  waiting->set_submitted_ms(kT0);
  farm::v1::Job* alone = response.add_jobs();
  alone->set_id("19");
  alone->set_state(farm::v1::QUEUED);
  alone->mutable_spec()->set_name("hello");
  alone->set_submitted_ms(kT0);
  EXPECT_EQ(FormatJobListText(response, Context(kT0 + 60'000)),
            "ID  STATE    NAME           PIPELINE  PRIORITY  AGE  DURATION\n"
            "21  SKIPPED  deploy         p3        0         1m   -\n"
            "20  WAITING  build (amd64)  p3        0         1m   -\n"
            "19  QUEUED   hello          -         0         1m   -\n");
}

farm::v1::Pipeline ReleasePipeline() {
  farm::v1::Pipeline p;
  p.set_id("p3");
  p.set_name("release");
  p.set_state(farm::v1::FAILED);
  p.set_submitted_ms(kT0);
  p.set_finished_ms(kT0 + 12'345);
  farm::v1::PipelineJob* build = p.add_jobs();
  build->set_name("build (amd64)");
  build->set_job_id("11");
  build->set_state(farm::v1::SUCCEEDED);
  build->set_started_ms(kT0 + 1'000);
  build->set_finished_ms(kT0 + 5'200);
  build->set_attempts(1);
  farm::v1::PipelineJob* test = p.add_jobs();
  test->set_name("test");
  test->set_job_id("12");
  test->set_state(farm::v1::FAILED);
  test->set_started_ms(kT0 + 6'000);
  test->set_finished_ms(kT0 + 12'345);
  test->set_attempts(2);
  test->add_needs("build (amd64)");
  farm::v1::PipelineJob* deploy = p.add_jobs();
  deploy->set_name("deploy");
  deploy->set_job_id("13");
  deploy->set_state(farm::v1::SKIPPED);
  deploy->add_needs("build (amd64)");
  deploy->add_needs("test");
  return p;
}

TEST(FormatPipelineTextTest, TheFieldsThenATableOfJobs) {
  EXPECT_EQ(FormatPipelineText(ReleasePipeline(), Context()),
            "id:        p3\n"
            "name:      release\n"
            "state:     FAILED\n"
            "submitted: 2023-11-14 22:13:20 UTC\n"
            "finished:  2023-11-14 22:13:32 UTC (took 12.3s)\n"
            "jobs:      3/3 done\n"
            "\n"
            "NAME           ID  STATE      ATTEMPTS  DURATION  NEEDS\n"
            "build (amd64)  11  SUCCEEDED  1         4.2s      -\n"
            "test           12  FAILED     2         6.3s      build (amd64)\n"
            "deploy         13  SKIPPED    0         -         build (amd64), test\n");
}

TEST(FormatPipelineTextTest, ARunningPipeline) {
  farm::v1::Pipeline p = ReleasePipeline();
  p.set_state(farm::v1::RUNNING);
  p.set_cancel_requested(true);
  p.set_finished_ms(0);
  p.mutable_jobs(1)->set_state(farm::v1::RUNNING);
  p.mutable_jobs(1)->set_finished_ms(0);
  p.mutable_jobs(2)->set_state(farm::v1::WAITING);
  const std::string text = FormatPipelineText(p, Context(kT0 + 20'000));
  EXPECT_THAT(text, HasSubstr("state:     RUNNING (cancel requested)\n"));
  EXPECT_THAT(text, Not(HasSubstr("finished:")));
  EXPECT_THAT(text, HasSubstr("jobs:      1/3 done\n"));
  EXPECT_THAT(text, HasSubstr("test           12  RUNNING    2         14.0s     build (amd64)\n"));
}

TEST(FormatPipelineListTextTest, ATableOfPipelines) {
  farm::v1::ListPipelinesResponse response;
  *response.add_pipelines() = ReleasePipeline();
  farm::v1::Pipeline* queued = response.add_pipelines();
  queued->set_id("p2");
  queued->set_state(farm::v1::QUEUED);
  queued->set_submitted_ms(kT0 - 120'000);
  queued->add_jobs()->set_state(farm::v1::WAITING);
  EXPECT_EQ(FormatPipelineListText(response, Context(kT0 + 30'000)),
            "ID  NAME     STATE   JOBS  SUBMITTED\n"
            "p3  release  FAILED  3/3   30s ago\n"
            "p2  -        QUEUED  0/1   2m ago\n");
  EXPECT_EQ(FormatPipelineListText(farm::v1::ListPipelinesResponse(), Context()), "no pipelines\n");
}

TEST(FormatJobTextTest, AJobOfAPipelineSaysWhichAndWhatItNeeds) {
  farm::v1::Job job = FailedJob();
  job.set_pipeline_id("p3");
  job.set_pipeline_job("test");
  job.add_needs("11");
  job.add_needs("12");
  const std::string text = FormatJobText(job, Context());
  EXPECT_THAT(text, HasSubstr("pipeline:  p3 (as \"test\")\n"));
  EXPECT_THAT(text, HasSubstr("needs:     11, 12\n"));
}

TEST(FormatAgentsTextTest, ATableOfAgents) {
  farm::v1::ListAgentsResponse response;
  farm::v1::AgentInfo* b = response.add_agents();
  b->set_name("b");
  b->set_state("busy");
  b->set_slots(2);
  b->add_jobs("17");
  b->add_jobs("18");
  (*b->mutable_labels())["os"] = "linux";
  b->set_last_seen_ms(kT0 + 55'000);
  farm::v1::AgentInfo* a = response.add_agents();
  a->set_name("a");
  a->set_state("idle");
  a->set_slots(4);
  a->mutable_isolation()->set_kill("cgroup-v2");
  a->mutable_isolation()->set_run_as("farm-build");
  const std::string text = FormatAgentsText(response, Context(kT0 + 60'000));
  EXPECT_EQ(text,
            "NAME  STATE  SLOTS  LABELS    JOBS   SEEN    ISOLATION\n"
            "a     idle   0/4    -         -      -       cgroup-v2 user=farm-build\n"
            "b     busy   2/2    os=linux  17,18  5s ago  -\n");
  EXPECT_EQ(FormatAgentsText(farm::v1::ListAgentsResponse(), Context()), "no agents\n");
}

TEST(DescribeRpcErrorTest, NamesTheCauseOfAConnectFailureInOneLine) {
  const absl::Status refused = absl::UnavailableError(
      "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:7070: Failed to "
      "connect to remote host: Connection refused");
  EXPECT_EQ(DescribeRpcError(refused, "127.0.0.1:7070"),
            "cannot reach the coordinator at 127.0.0.1:7070 (connection refused)");
  EXPECT_EQ(DescribeRpcError(absl::UnavailableError("DNS resolution failed for x:1"), "x:1"),
            "cannot reach the coordinator at x:1 (cannot resolve the host name)");
  EXPECT_EQ(DescribeRpcError(absl::UnavailableError("draining\nbye"), "c:1"),
            "cannot reach the coordinator at c:1 (draining; bye)");
}

TEST(DescribeRpcErrorTest, NotFoundNamesTheJob) {
  EXPECT_EQ(DescribeRpcError(absl::NotFoundError("no such key"), "c:1", "42"), "job 42 not found");
  EXPECT_EQ(DescribeRpcError(absl::NotFoundError("no such key"), "c:1", "p7"),
            "pipeline p7 not found");
}

TEST(DescribeRpcErrorTest, OtherErrorsAreTheCoordinatorsMessage) {
  EXPECT_EQ(DescribeRpcError(absl::FailedPreconditionError("job 3 has ended"), "c:1", "3"),
            "job 3 has ended");
  EXPECT_EQ(DescribeRpcError(absl::DeadlineExceededError(""), "c:1"),
            "the coordinator at c:1 did not answer in time");
  EXPECT_EQ(DescribeRpcError(absl::InternalError(""), "c:1"), "the coordinator answered INTERNAL");
}

TEST(FormatAgeTest, Compact) {
  EXPECT_EQ(FormatAge(-5), "0s");
  EXPECT_EQ(FormatAge(59'999), "59s");
  EXPECT_EQ(FormatAge(60'000), "1m");
  EXPECT_EQ(FormatAge(3 * 3600'000 + 5), "3h");
  EXPECT_EQ(FormatAge(50 * 3600'000LL), "2d");
}

}  // namespace
}  // namespace farm::cli
