// farmctl end to end: every command through RunCommand/RunFarmctl, over real gRPC, against the
// in-process FakeFarm.
#include "coordinator/cli/commands.h"

#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/clock.h"
#include "coordinator/cli/options.h"
#include "tests/coordinator/cli/fake_farm.h"
#include "tests/coordinator/cli/usage_error.h"

namespace farm::cli {
namespace {

using ::farm::testing::FakeFarm;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;
using ::testing::StartsWith;

constexpr char kHelloYaml[] = R"(name: hello
labels: {os: linux}
priority: 5
env: {GREETING: hello}
steps:
  - name: greet
    run: echo "$GREETING"
  - name: build
    run: make
    timeout: 60s
)";

template <typename T>
T ParseJson(const std::string& json) {
  T message;
  const auto status = google::protobuf::util::JsonStringToMessage(json, &message);
  EXPECT_TRUE(status.ok()) << status.ToString() << "\n" << json;
  return message;
}

// Runs farmctl with `args` against `coordinator` (as if from $FARM_COORDINATOR), with short
// retry delays and a submit retry budget of `submit_retry_ms`; `on_retry` sees each refused try
// that farmctl retries.
Result RunAgainst(const std::string& coordinator, const std::vector<std::string>& args,
                  const std::string& stdin_text = "", int64_t submit_retry_ms = 1'000,
                  std::function<void(const absl::Status&)> on_retry = {}) {
  static common::FakeClock clock;
  std::ostringstream out;
  std::ostringstream err;
  std::istringstream in(stdin_text);
  CliIo io{out, err, in, clock, absl::UTCTimeZone()};
  absl::StatusOr<CliOptions> options = ParseArgs(args, coordinator);
  if (options.ok()) options->security.insecure = true;  // the fake coordinator speaks plaintext
  if (!options.ok()) return {kExitUsage, "", std::string(options.status().message())};
  options->retry_initial_backoff_ms = 5;
  options->retry_max_backoff_ms = 20;
  options->submit_retry_ms = submit_retry_ms;
  options->pipeline_poll_ms = 5;
  options->on_retry = std::move(on_retry);
  const int code = RunCommand(*options, io);
  return {code, out.str(), err.str()};
}

class FarmctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = ::testing::TempDir() + "/farmctl_test.XXXXXX";
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override { std::system(("rm -rf '" + dir_ + "'").c_str()); }

  Result Run(const std::vector<std::string>& args, const std::string& stdin_text = "") {
    return RunAgainst(farm_.address(), args, stdin_text);
  }

  std::string WriteFile(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }

  // A job as the coordinator would report it after running; returns its id.
  std::string AddEndedJob(farm::v1::JobState state, const std::string& reason = "") {
    farm::v1::Job job;
    job.set_state(state);
    job.set_reason(reason);
    job.mutable_spec()->set_name("built");
    for (const char* name : {"greet", "build"}) {
      farm::v1::StepSpec* step = job.mutable_spec()->add_steps();
      step->set_name(name);
      step->set_run("true");
    }
    return farm_.AddJob(job);
  }

  std::string AddRunningJob() {
    farm::v1::Job job;
    job.set_state(farm::v1::RUNNING);
    job.mutable_spec()->add_steps()->set_name("only");
    return farm_.AddJob(job);
  }

  FakeFarm farm_;
  std::string dir_;
};

// --- submit ------------------------------------------------------------------------------------

TEST_F(FarmctlTest, SubmitPrintsTheJobIdAndSendsTheParsedJob) {
  const Result r = Run({"submit", WriteFile("hello.yaml", kHelloYaml)});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "1\n");
  EXPECT_EQ(r.err, "");
  const auto requests = farm_.submit_requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_THAT(requests[0].request_id(), MatchesRegex("[0-9a-f]{32}"));
  const farm::v1::JobSpec& spec = requests[0].spec();
  EXPECT_EQ(spec.name(), "hello");
  EXPECT_EQ(spec.priority(), 5);
  ASSERT_EQ(spec.steps_size(), 2);
  EXPECT_EQ(spec.steps(1).name(), "build");
  EXPECT_EQ(spec.steps(1).timeout_ms(), 60'000);
}

TEST_F(FarmctlTest, SubmitJsonPrintsTheResponse) {
  const Result r = Run({"submit", WriteFile("hello.yaml", kHelloYaml), "--output=json"});
  EXPECT_EQ(r.code, 0) << r.err;
  const auto response = ParseJson<farm::v1::SubmitJobResponse>(r.out);
  EXPECT_EQ(response.job_id(), "1");
  EXPECT_THAT(r.out, HasSubstr("\"existing\": false"));
}

TEST_F(FarmctlTest, SubmitReadsStdin) {
  const Result r = Run({"submit", "-"}, "steps: [{run: make}]\n");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "1\n");
  const Result bad = Run({"submit", "-"}, "steps: [{rnu: make}]\n");
  EXPECT_EQ(bad.code, kExitError);
  EXPECT_THAT(bad.err, StartsWith("<stdin>:1:10: unknown key \"rnu\""));
}

TEST_F(FarmctlTest, EachSubmitIsANewRequest) {
  const std::string path = WriteFile("hello.yaml", kHelloYaml);
  EXPECT_EQ(Run({"submit", path}).out, "1\n");
  EXPECT_EQ(Run({"submit", path}).out, "2\n");
  const auto requests = farm_.submit_requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_NE(requests[0].request_id(), requests[1].request_id());
}

TEST_F(FarmctlTest, SubmitRetriesUnavailableWithTheSameRequestId) {
  farm_.FailNextSubmits(2, grpc::StatusCode::UNAVAILABLE);
  std::vector<absl::Status> retried;
  const Result r = RunAgainst(farm_.address(), {"submit", WriteFile("hello.yaml", kHelloYaml)}, "",
                              1'000, [&](const absl::Status& s) { retried.push_back(s); });
  EXPECT_EQ(r.code, 0) << r.err;
  ASSERT_EQ(retried.size(), 2u) << "each refusal is retried once";
  for (const absl::Status& s : retried) {
    EXPECT_EQ(s, absl::UnavailableError("injected failure"));
  }
  EXPECT_EQ(r.out, "1\n");
  const auto requests = farm_.submit_requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[1].request_id(), requests[0].request_id());
  EXPECT_EQ(requests[2].request_id(), requests[0].request_id());
  EXPECT_FALSE(farm_.GetJob("2").has_value()) << "a retry made a second job";
}

TEST_F(FarmctlTest, SubmitGivesUpWhenItsRetryBudgetRunsOut) {
  farm_.FailNextSubmits(1'000'000, grpc::StatusCode::UNAVAILABLE);
  const Result r = RunAgainst(farm_.address(), {"submit", WriteFile("hello.yaml", kHelloYaml)}, "",
                              /*submit_retry_ms=*/300);
  EXPECT_EQ(r.code, kExitError);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, absl::StrCat("farmctl: cannot reach the coordinator at ", farm_.address(),
                                " (injected failure); gave up after retrying for 300ms\n"));
  const auto requests = farm_.submit_requests();
  ASSERT_GT(requests.size(), 1u) << "it did not retry";
  for (const auto& request : requests) {
    EXPECT_EQ(request.request_id(), requests[0].request_id());
  }
  EXPECT_FALSE(farm_.GetJob("1").has_value());
}

TEST_F(FarmctlTest, SubmitRetriesATimeoutWithTheSameRequestId) {
  farm_.FailNextSubmits(1, grpc::StatusCode::DEADLINE_EXCEEDED);
  const Result r = Run({"submit", WriteFile("hello.yaml", kHelloYaml)});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "1\n");
  const auto requests = farm_.submit_requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1].request_id(), requests[0].request_id());
}

TEST_F(FarmctlTest, SubmitDoesNotRetryARefusal) {
  farm_.FailNextSubmits(1, grpc::StatusCode::INVALID_ARGUMENT);
  const Result r = Run({"submit", WriteFile("hello.yaml", kHelloYaml)});
  EXPECT_EQ(r.code, kExitError);
  EXPECT_EQ(r.err, "farmctl: the coordinator refused the job: injected failure\n");
  EXPECT_EQ(farm_.submit_requests().size(), 1u);
}

TEST_F(FarmctlTest, ABadJobFileIsReportedWithItsPositionAndNothingIsSubmitted) {
  const std::string path =
      WriteFile("bad.yaml", "name: x\nsteps:\n  - run: make\n    tmeout: 5s\n");
  const Result r = Run({"submit", path});
  EXPECT_EQ(r.code, kExitError);
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, StartsWith(path + ":4:5: unknown key \"tmeout\" in steps[0]; did you mean "
                                       "\"timeout\"?"));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1);
  EXPECT_TRUE(farm_.submit_requests().empty());

  const Result missing = Run({"submit", dir_ + "/nope.yaml"});
  EXPECT_EQ(missing.code, kExitError);
  EXPECT_EQ(missing.err, dir_ + "/nope.yaml: cannot open: No such file or directory\n");
}

// Scripts a two-step run of every submitted job that ends in `state`.
void RunSubmittedJobs(FakeFarm& farm, farm::v1::JobState state, const std::string& reason = "") {
  farm.OnSubmit([state, reason](FakeFarm& f, const std::string& id) {
    f.SetState(id, farm::v1::RUNNING);
    f.AppendLog(id, 1, 0, "greet", "hello\n");
    f.AppendLog(id, 1, 1, "build", "building\n");
    f.AppendLog(id, 1, 1, "build", std::string("bin\0ary\n", 8));
    f.SetState(id, state, reason);
  });
}

TEST_F(FarmctlTest, SubmitFollowStreamsTheOutputAndExitsWithTheOutcome) {
  RunSubmittedJobs(farm_, farm::v1::SUCCEEDED);
  const Result r = Run({"submit", WriteFile("hello.yaml", kHelloYaml), "--follow"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, std::string("1\nhello\nbuilding\nbin\0ary\n", 25));
  EXPECT_EQ(r.err, "==> step greet\n==> step build\n==> job 1 SUCCEEDED\n");
}

TEST_F(FarmctlTest, SubmitWaitExitCodes) {
  const std::string path = WriteFile("hello.yaml", kHelloYaml);
  RunSubmittedJobs(farm_, farm::v1::FAILED, "step build exited with 2");
  Result r = Run({"submit", path, "--wait"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_EQ(r.out, "1\n");
  EXPECT_EQ(r.err, "==> job 1 FAILED: step build exited with 2\n");

  RunSubmittedJobs(farm_, farm::v1::CANCELLED, "cancelled by user");
  r = Run({"submit", path, "--wait"});
  EXPECT_EQ(r.code, 2) << r.err;

  RunSubmittedJobs(farm_, farm::v1::SUCCEEDED);
  r = Run({"submit", path, "--wait"});
  EXPECT_EQ(r.code, 0) << r.err;
}

TEST_F(FarmctlTest, SubmitFollowJsonKeepsStdoutOneDocument) {
  RunSubmittedJobs(farm_, farm::v1::FAILED, "step build exited with 2");
  const Result r =
      Run({"submit", WriteFile("hello.yaml", kHelloYaml), "--follow", "--output=json"});
  EXPECT_EQ(r.code, 1) << r.err;
  const auto job = ParseJson<farm::v1::Job>(r.out);
  EXPECT_EQ(job.id(), "1");
  EXPECT_EQ(job.state(), farm::v1::FAILED);
  EXPECT_THAT(r.out, HasSubstr("\"state\": \"FAILED\""));
  EXPECT_THAT(r.err, HasSubstr("hello\n"));
}

// --- get, list, cancel, agents -------------------------------------------------------------------

TEST_F(FarmctlTest, GetShowsTheJob) {
  const std::string id = AddEndedJob(farm::v1::FAILED, "step build exited with 2");
  const Result r = Run({"get", id});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("state:     FAILED\n"));
  EXPECT_THAT(r.out, HasSubstr("reason:    step build exited with 2\n"));
  EXPECT_THAT(r.out, HasSubstr("  build  PENDING"));
}

TEST_F(FarmctlTest, GetJsonIsTheJob) {
  const std::string id = AddEndedJob(farm::v1::SUCCEEDED);
  const Result r = Run({"get", id, "--output=json"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(ParseJson<farm::v1::Job>(r.out),
                                                                 *farm_.GetJob(id)));
  EXPECT_THAT(r.out, HasSubstr("\"state\": \"SUCCEEDED\""));
}

TEST_F(FarmctlTest, AnUnknownJobIsNotFoundInOneLine) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"get", "99"}, {"logs", "99"}, {"wait", "99"}, {"cancel", "99"}}) {
    const Result r = Run(args);
    EXPECT_EQ(r.code, kExitError) << args[0];
    EXPECT_EQ(r.err, "farmctl: job 99 not found\n") << args[0];
    EXPECT_EQ(r.out, "") << args[0];
  }
}

TEST_F(FarmctlTest, ListFiltersAndPrintsATable) {
  AddEndedJob(farm::v1::SUCCEEDED);
  const std::string running = AddRunningJob();
  const Result r = Run({"list", "--state=running", "--limit=5"});
  EXPECT_EQ(r.code, 0) << r.err;
  const auto requests = farm_.list_requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].state(), farm::v1::RUNNING);
  EXPECT_EQ(requests[0].limit(), 5);
  const std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u) << r.out;
  EXPECT_THAT(lines[0], MatchesRegex("ID +STATE +NAME +PRIORITY +AGE +DURATION"));
  EXPECT_THAT(lines[1], StartsWith(running + "   RUNNING"));
}

TEST_F(FarmctlTest, ListJson) {
  AddEndedJob(farm::v1::SUCCEEDED);
  AddRunningJob();
  const Result r = Run({"list", "--output=json"});
  EXPECT_EQ(r.code, 0) << r.err;
  const auto response = ParseJson<farm::v1::ListJobsResponse>(r.out);
  ASSERT_EQ(response.jobs_size(), 2);
  EXPECT_EQ(response.jobs(0).id(), "2");  // newest first
}

TEST_F(FarmctlTest, CancelAQueuedAndARunningJob) {
  farm::v1::Job queued;
  queued.set_state(farm::v1::QUEUED);
  const std::string queued_id = farm_.AddJob(queued);
  Result r = Run({"cancel", queued_id});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, absl::StrCat("job ", queued_id, " CANCELLED\n"));

  const std::string running_id = AddRunningJob();
  r = Run({"cancel", running_id, "--output=json"});
  EXPECT_EQ(r.code, 0) << r.err;
  const auto job = ParseJson<farm::v1::Job>(r.out);
  EXPECT_TRUE(job.cancel_requested());
  EXPECT_EQ(job.state(), farm::v1::RUNNING);

  r = Run({"cancel", running_id});
  EXPECT_EQ(r.out, absl::StrCat("job ", running_id, ": cancel requested (it was RUNNING)\n"));
}

TEST_F(FarmctlTest, Agents) {
  farm::v1::ListAgentsResponse agents;
  farm::v1::AgentInfo* agent = agents.add_agents();
  agent->set_name("builder-1");
  agent->set_state("busy");
  agent->set_slots(2);
  agent->add_jobs("7");
  (*agent->mutable_labels())["os"] = "linux";
  farm_.SetAgents(agents);
  Result r = Run({"agents"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("builder-1  busy   1/2    os=linux  7"));
  EXPECT_THAT(r.out, HasSubstr("ISOLATION"));
  EXPECT_THAT(r.out, HasSubstr("  -\n"));  // an agent that did not say how it isolates steps
  agent->mutable_isolation()->set_kill("cgroup-v2");
  agent->mutable_isolation()->set_run_as("nobody");
  agent->mutable_isolation()->set_sandbox("bwrap");
  farm_.SetAgents(agents);
  r = Run({"agents"});
  EXPECT_THAT(r.out, HasSubstr("cgroup-v2 user=nobody bwrap\n"));
  r = Run({"agents", "--output=json"});
  EXPECT_EQ(ParseJson<farm::v1::ListAgentsResponse>(r.out).agents(0).name(), "builder-1");
}

// --- logs and wait ------------------------------------------------------------------------------

TEST_F(FarmctlTest, LogsPrintsTheStoredOutputWithStepHeadersOnStderr) {
  const std::string id = AddEndedJob(farm::v1::SUCCEEDED);
  farm_.AppendLog(id, 1, 0, "greet", "hello\n");
  farm_.AppendLog(id, 1, 1, "build", "one\n");
  farm_.AppendLog(id, 1, 1, "build", "two\n");
  Result r = Run({"logs", id});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "hello\none\ntwo\n");
  EXPECT_EQ(r.err, "==> step greet\n==> step build\n");

  r = Run({"logs", id, "--step=build"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "one\ntwo\n");
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(farm_.watch_requests().back().step(), "build");

  r = Run({"logs", id, "--step=nope"});
  EXPECT_EQ(r.code, kExitError);
  EXPECT_EQ(r.err, absl::StrCat("farmctl: job ", id,
                                " has no step named \"nope\" (its steps: greet, build)\n"));
}

TEST_F(FarmctlTest, LogsJsonIsOneDocument) {
  const std::string id = AddEndedJob(farm::v1::SUCCEEDED);
  farm_.AppendLog(id, 1, 0, "greet", "hello\n");
  farm_.AppendLog(id, 1, 1, "build", "built\n");
  const Result r = Run({"logs", id, "--output=json"});
  EXPECT_EQ(r.code, 0) << r.err;
  const auto response = ParseJson<farm::v1::WatchLogsResponse>(r.out);
  ASSERT_EQ(response.chunks_size(), 2);
  EXPECT_EQ(response.chunks(1).data(), "built\n");
  EXPECT_EQ(response.final_state(), farm::v1::SUCCEEDED);
}

TEST_F(FarmctlTest, LogsFollowReconnectsWithoutRepeatingOutput) {
  const std::string id = AddEndedJob(farm::v1::FAILED);
  farm_.AppendLog(id, 1, 0, "greet", "a\n");
  farm_.AppendLog(id, 1, 0, "greet", "b\n");
  farm_.AppendLog(id, 1, 1, "build", "c\n");
  farm_.BreakNextWatches(2, 2);  // two streams die after two chunks each
  const Result r = Run({"logs", id, "--follow"});
  EXPECT_EQ(r.code, 1) << r.err;  // the job FAILED
  EXPECT_EQ(r.out, "a\nb\nc\n");
  EXPECT_THAT(r.err, HasSubstr("connection reset); reconnecting\n"));
  EXPECT_EQ(farm_.watch_requests().size(), 3u);
}

TEST_F(FarmctlTest, LogsFollowStreamsOutputAsItArrives) {
  const std::string id = AddRunningJob();
  farm_.AppendLog(id, 1, 0, "only", "first\n");
  Result r;
  std::thread follower([&] { r = Run({"logs", id, "--follow"}); });
  const bool watching = farm_.AwaitOpenWatches(1, absl::Seconds(30));
  farm_.AppendLog(id, 1, 0, "only", "second\n");
  farm_.SetState(id, farm::v1::SUCCEEDED);
  follower.join();
  ASSERT_TRUE(watching);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "first\nsecond\n");
  EXPECT_EQ(r.err, "");  // one step: no headers
}

TEST_F(FarmctlTest, LogsFollowJsonIsOneMessagePerLine) {
  const std::string id = AddEndedJob(farm::v1::SUCCEEDED);
  farm_.AppendLog(id, 1, 0, "greet", "hello\n");
  const Result r = Run({"logs", id, "--follow", "--output=json"});
  EXPECT_EQ(r.code, 0) << r.err;
  const std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u) << r.out;
  EXPECT_EQ(ParseJson<farm::v1::WatchLogsResponse>(lines[0]).chunks(0).data(), "hello\n");
  EXPECT_EQ(ParseJson<farm::v1::WatchLogsResponse>(lines[1]).final_state(), farm::v1::SUCCEEDED);
}

TEST_F(FarmctlTest, WaitBlocksUntilTheJobEnds) {
  const std::string id = AddRunningJob();
  Result r;
  std::thread waiter([&] { r = Run({"wait", id}); });
  const bool watching = farm_.AwaitOpenWatches(1, absl::Seconds(30));
  farm_.SetState(id, farm::v1::FAILED, "step only exited with 3");
  waiter.join();
  ASSERT_TRUE(watching);
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_EQ(r.out, absl::StrCat("job ", id, " FAILED: step only exited with 3\n"));
}

TEST_F(FarmctlTest, WaitOnAnEndedJobAnswersAtOnce) {
  const std::string id = AddEndedJob(farm::v1::CANCELLED, "cancelled by user");
  const Result r = Run({"wait", id, "--output=json"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(ParseJson<farm::v1::Job>(r.out).state(), farm::v1::CANCELLED);
  EXPECT_TRUE(farm_.watch_requests().empty());
}

TEST_F(FarmctlTest, WaitTimeoutExitsThree) {
  const std::string id = AddRunningJob();
  Result r = Run({"wait", id, "--timeout=100ms"});
  EXPECT_EQ(r.code, kExitWaitTimedOut) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, absl::StrCat("farmctl: job ", id, " is still RUNNING after 100ms\n"));

  r = Run({"wait", id, "--timeout=0", "--output=json"});
  EXPECT_EQ(r.code, kExitWaitTimedOut) << r.err;
  EXPECT_EQ(ParseJson<farm::v1::Job>(r.out).state(), farm::v1::RUNNING);
}

// --- pipelines ---------------------------------------------------------------------------------

constexpr char kReleaseYaml[] = R"(name: release
jobs:
  build:
    matrix: {arch: [amd64, arm64]}
    steps: [{run: make}]
  test:
    needs: [build]
    steps: [{run: ./test.sh}]
)";

constexpr char kCycleYaml[] = R"(name: cycle
jobs:
  a: {needs: [c], steps: [{run: "true"}]}
  b: {needs: [a], steps: [{run: "true"}]}
  c: {needs: [b], steps: [{run: "true"}]}
)";

// The non-empty lines of `text`.
std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

TEST_F(FarmctlTest, SubmitOfAPipelineFilePrintsItsIdAndSendsThePipeline) {
  const Result r = Run({"submit", WriteFile("release.yaml", kReleaseYaml)});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "p1\n");
  EXPECT_EQ(r.err, "");
  EXPECT_TRUE(farm_.submit_requests().empty()) << "a pipeline went out as a job";
  const auto requests = farm_.submit_pipeline_requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_THAT(requests[0].request_id(), MatchesRegex("[0-9a-f]{32}"));
  const farm::v1::PipelineSpec& spec = requests[0].spec();
  EXPECT_EQ(spec.name(), "release");
  ASSERT_EQ(spec.jobs_size(), 2);
  EXPECT_EQ(spec.jobs(0).name(), "build");
  EXPECT_EQ(spec.jobs(0).matrix(0).name(), "arch");
  EXPECT_EQ(spec.jobs(1).needs(0), "build");
  // The fake expanded it as the coordinator would.
  ASSERT_TRUE(farm_.GetPipeline("p1").has_value());
  EXPECT_EQ(farm_.GetPipeline("p1")->jobs_size(), 3);
}

TEST_F(FarmctlTest, ASingleJobFileIsStillSubmittedAsAJob) {
  const Result r = Run({"submit", WriteFile("hello.yaml", kHelloYaml)});
  EXPECT_EQ(r.out, "1\n");
  EXPECT_EQ(farm_.submit_requests().size(), 1u);
  EXPECT_TRUE(farm_.submit_pipeline_requests().empty());
}

TEST_F(FarmctlTest, SubmitPipelineJsonIsThePipeline) {
  const Result r = Run({"submit", WriteFile("release.yaml", kReleaseYaml), "--output=json"});
  EXPECT_EQ(r.code, 0) << r.err;
  const auto pipeline = ParseJson<farm::v1::Pipeline>(r.out);
  EXPECT_EQ(pipeline.id(), "p1");
  ASSERT_EQ(pipeline.jobs_size(), 3);
  EXPECT_EQ(pipeline.jobs(1).name(), "build (arm64)");
  EXPECT_EQ(pipeline.jobs(2).state(), farm::v1::WAITING);
}

TEST_F(FarmctlTest, SubmitReadsAPipelineFromStdin) {
  const Result r = Run({"submit", "-"}, "jobs: {only: {steps: [{run: make}]}}\n");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "p1\n");
  const Result bad = Run({"submit", "-"}, "jobs: {only: {steps: [{rnu: make}]}}\n");
  EXPECT_EQ(bad.code, kExitError);
  EXPECT_THAT(bad.err, StartsWith("<stdin>:1:24: unknown key \"rnu\""));
}

TEST_F(FarmctlTest, SubmitPipelineRetriesUnavailableWithTheSameRequestId) {
  farm_.FailNextSubmits(2, grpc::StatusCode::UNAVAILABLE);
  const Result r = Run({"submit", WriteFile("release.yaml", kReleaseYaml)});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "p1\n");
  const auto requests = farm_.submit_pipeline_requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[1].request_id(), requests[0].request_id());
  EXPECT_EQ(requests[2].request_id(), requests[0].request_id());
  EXPECT_FALSE(farm_.GetPipeline("p2").has_value()) << "a retry made a second pipeline";
}

TEST_F(FarmctlTest, SubmitPipelineRefusedOrUnreachableSaysSoInOneLine) {
  farm_.FailNextSubmits(1, grpc::StatusCode::INVALID_ARGUMENT);
  Result r = Run({"submit", WriteFile("release.yaml", kReleaseYaml)});
  EXPECT_EQ(r.code, kExitError);
  EXPECT_EQ(r.err, "farmctl: the coordinator refused the pipeline: injected failure\n");

  farm_.FailNextSubmits(1'000'000, grpc::StatusCode::UNAVAILABLE);
  r = RunAgainst(farm_.address(), {"submit", WriteFile("release.yaml", kReleaseYaml)}, "",
                 /*submit_retry_ms=*/200);
  EXPECT_EQ(r.code, kExitError);
  EXPECT_EQ(r.err, absl::StrCat("farmctl: cannot reach the coordinator at ", farm_.address(),
                                " (injected failure); gave up after retrying for 200ms\n"));
}

TEST_F(FarmctlTest, ACyclicPipelineIsReportedWithItsPositionBeforeAnyCall) {
  const std::string path = WriteFile("cycle.yaml", kCycleYaml);
  const Result r = Run({"submit", path, "--follow"});
  // As for any bad job file: kExitError, the parser's one line, nothing sent.
  EXPECT_EQ(r.code, kExitError);
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, StartsWith(path + ":3:"));
  EXPECT_THAT(r.err, HasSubstr(": jobs form a cycle: a → c → b → a\n"));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1);
  EXPECT_EQ(farm_.calls(), 0) << "the coordinator was called";
}

TEST_F(FarmctlTest, ABadPipelineFileNamesTheJobAndNothingIsSubmitted) {
  const std::string path = WriteFile("bad.yaml", R"(jobs:
  build: {steps: [{run: make}]}
  test: {needs: [buld], steps: [{run: make}]}
)");
  const Result r = Run({"submit", path});
  EXPECT_EQ(r.code, kExitError);
  EXPECT_THAT(r.err, StartsWith(path + ":3:"));
  EXPECT_THAT(r.err, HasSubstr("\"buld\", which is not a job of this pipeline"));
  EXPECT_EQ(farm_.calls(), 0);
}

// Sets a job of pipeline `id` to `state`, then waits until farmctl has polled the pipeline
// since, so that every change is seen by exactly one poll.
void ChangeAndAwaitPoll(FakeFarm& farm, const std::string& id, const std::string& job,
                        farm::v1::JobState state) {
  farm.SetState(farm.PipelineJobId(id, job), state);
  const int calls = farm.get_pipeline_calls();
  ASSERT_TRUE(farm.AwaitGetPipelineCalls(calls + 1, absl::Seconds(30)));
}

TEST_F(FarmctlTest, SubmitFollowOfAPipelineInAPipeLogsEachChangeAndASummary) {
  const std::string path = WriteFile("follow.yaml", R"(name: follow
jobs:
  build: {steps: [{run: make}]}
  test: {needs: [build], steps: [{run: make}]}
)");
  Result r;
  std::thread follower([&] { r = Run({"submit", path, "--follow"}); });
  ASSERT_TRUE(farm_.AwaitGetPipelineCalls(1, absl::Seconds(30)));
  ChangeAndAwaitPoll(farm_, "p1", "build", farm::v1::RUNNING);
  ChangeAndAwaitPoll(farm_, "p1", "build", farm::v1::SUCCEEDED);
  ChangeAndAwaitPoll(farm_, "p1", "test", farm::v1::QUEUED);
  ChangeAndAwaitPoll(farm_, "p1", "test", farm::v1::RUNNING);
  farm_.SetState(farm_.PipelineJobId("p1", "test"), farm::v1::SUCCEEDED);
  follower.join();

  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_THAT(r.out, Not(HasSubstr("\x1b"))) << "escape codes in a pipe";
  // The time is the (fake) clock's, 22:13:20 UTC; the durations are the fake farm's real ones.
  const std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 9u) << r.out;
  EXPECT_EQ(lines[0], "p1");
  EXPECT_EQ(lines[1], "22:13:20 build  QUEUED");
  EXPECT_EQ(lines[2], "22:13:20 test   WAITING");
  EXPECT_EQ(lines[3], "22:13:20 build  RUNNING");
  EXPECT_THAT(lines[4], MatchesRegex("22:13:20 build  SUCCEEDED  [0-9.]+s"));
  EXPECT_EQ(lines[5], "22:13:20 test   QUEUED");
  EXPECT_EQ(lines[6], "22:13:20 test   RUNNING");
  EXPECT_THAT(lines[7], MatchesRegex("22:13:20 test   SUCCEEDED  [0-9.]+s"));
  EXPECT_THAT(lines[8], MatchesRegex("pipeline p1 follow: SUCCEEDED 2/2 jobs in [0-9.]+s"));
}

TEST_F(FarmctlTest, SubmitWaitOfAPipelineExitsWithItsOutcome) {
  const std::string path = WriteFile("release.yaml", kReleaseYaml);
  Result r;
  std::thread waiter([&] { r = Run({"submit", path, "--wait"}); });
  ASSERT_TRUE(farm_.AwaitGetPipelineCalls(1, absl::Seconds(30)));
  farm_.SetState(farm_.PipelineJobId("p1", "build (amd64)"), farm::v1::SUCCEEDED);
  farm_.SetState(farm_.PipelineJobId("p1", "build (arm64)"), farm::v1::FAILED);
  farm_.SetState(farm_.PipelineJobId("p1", "test"), farm::v1::SKIPPED);
  waiter.join();
  EXPECT_EQ(r.code, kExitJobFailed) << r.err;
  EXPECT_EQ(r.out, "p1\n") << "the id stays the last line of stdout";
  EXPECT_THAT(r.err, MatchesRegex("==> pipeline p1 release: FAILED 3/3 jobs in [0-9.]+s "
                                  "\\(failed: build \\(arm64\\); skipped: test\\)\n"));
}

TEST_F(FarmctlTest, SubmitFollowOfAPipelineWithJsonKeepsStdoutOneDocument) {
  const std::string path = WriteFile("release.yaml", kReleaseYaml);
  Result r;
  std::thread follower([&] { r = Run({"submit", path, "--follow", "--output=json"}); });
  ASSERT_TRUE(farm_.AwaitGetPipelineCalls(1, absl::Seconds(30)));
  farm_.CancelPipelineNow("p1");
  follower.join();
  EXPECT_EQ(r.code, kExitJobCancelled) << r.err;
  const auto pipeline = ParseJson<farm::v1::Pipeline>(r.out);
  EXPECT_EQ(pipeline.state(), farm::v1::CANCELLED);
  EXPECT_THAT(r.err, HasSubstr("build (amd64)  QUEUED"));
  EXPECT_THAT(r.err, HasSubstr("pipeline p1 release: CANCELLED 3/3 jobs"));
}

TEST_F(FarmctlTest, GetAPipeline) {
  const std::string id = farm_.AddPipeline("release", {"build", "test"}, /*chain=*/true);
  farm_.SetState(farm_.PipelineJobId(id, "build"), farm::v1::RUNNING);
  Result r = Run({"get", id});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("id:        p1\nname:      release\nstate:     RUNNING\n"));
  EXPECT_THAT(r.out, HasSubstr("jobs:      0/2 done\n"));
  const std::vector<std::string> lines = Lines(r.out);
  ASSERT_GE(lines.size(), 3u);
  EXPECT_THAT(lines[lines.size() - 3], MatchesRegex("NAME +ID +STATE +ATTEMPTS +DURATION +NEEDS"));
  EXPECT_THAT(lines[lines.size() - 2], MatchesRegex("build +1 +RUNNING +0 +[0-9.]+s +-"));
  EXPECT_THAT(lines[lines.size() - 1], MatchesRegex("test +2 +QUEUED +0 +- +build"));

  r = Run({"get", id, "--output=json"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(
      ParseJson<farm::v1::Pipeline>(r.out), *farm_.GetPipeline(id)));
}

TEST_F(FarmctlTest, ListPipelines) {
  farm_.AddPipeline("first", {"a"});
  const std::string second = farm_.AddPipeline("second", {"a", "b"});
  farm_.SetState(farm_.PipelineJobId(second, "a"), farm::v1::SUCCEEDED);
  Result r = Run({"list", "--pipelines"});
  EXPECT_EQ(r.code, 0) << r.err;
  const std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 3u) << r.out;
  EXPECT_THAT(lines[0], MatchesRegex("ID +NAME +STATE +JOBS +SUBMITTED"));
  EXPECT_THAT(lines[1], MatchesRegex("p2 +second +RUNNING +1/2 +[0-9]+s ago"));
  EXPECT_THAT(lines[2], MatchesRegex("p1 +first +QUEUED +0/1 +[0-9]+s ago"));

  r = Run({"list", "--pipelines", "--limit=1", "--output=json"});
  EXPECT_EQ(r.code, 0) << r.err;
  const auto response = ParseJson<farm::v1::ListPipelinesResponse>(r.out);
  ASSERT_EQ(response.pipelines_size(), 1);
  EXPECT_EQ(response.pipelines(0).id(), "p2");

  // The jobs' list shows their pipeline, and the states pipelines bring.
  r = Run({"list"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(Lines(r.out)[0], MatchesRegex("ID +STATE +NAME +PIPELINE +PRIORITY +AGE +DURATION"));
  EXPECT_THAT(r.out, HasSubstr("SUCCEEDED  a     p2"));
}

TEST_F(FarmctlTest, CancelAPipeline) {
  const std::string queued = farm_.AddPipeline("queued", {"a", "b"}, /*chain=*/true);
  Result r = Run({"cancel", queued});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "pipeline p1 CANCELLED\n");
  EXPECT_EQ(farm_.GetPipeline(queued)->state(), farm::v1::CANCELLED);

  const std::string running = farm_.AddPipeline("running", {"a", "b"});
  farm_.SetState(farm_.PipelineJobId(running, "a"), farm::v1::RUNNING);
  r = Run({"cancel", running});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "pipeline p2: cancel requested (1 job still ending)\n");
  r = Run({"cancel", running, "--output=json"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(ParseJson<farm::v1::Pipeline>(r.out).cancel_requested());

  const std::string done = farm_.AddPipeline("done", {"a"});
  farm_.SetState(farm_.PipelineJobId(done, "a"), farm::v1::SUCCEEDED);
  r = Run({"cancel", done});
  EXPECT_EQ(r.out, "pipeline p3 had already ended: SUCCEEDED\n");
}

TEST_F(FarmctlTest, WaitForAPipelineExitsWithItsOutcome) {
  const std::string id = farm_.AddPipeline("release", {"build", "test"}, /*chain=*/true);
  Result r;
  std::thread waiter([&] { r = Run({"wait", id}); });
  ASSERT_TRUE(farm_.AwaitGetPipelineCalls(1, absl::Seconds(30)));
  farm_.SetState(farm_.PipelineJobId(id, "build"), farm::v1::FAILED);
  farm_.SetState(farm_.PipelineJobId(id, "test"), farm::v1::SKIPPED);
  waiter.join();
  EXPECT_EQ(r.code, kExitJobFailed) << r.err;
  EXPECT_THAT(r.out, MatchesRegex("pipeline p1 release: FAILED 2/2 jobs in [0-9.]+s \\(failed: "
                                  "build; skipped: test\\)\n"));

  const std::string ok = farm_.AddPipeline("ok", {"a"});
  farm_.SetState(farm_.PipelineJobId(ok, "a"), farm::v1::SUCCEEDED);
  r = Run({"wait", ok, "--output=json"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(ParseJson<farm::v1::Pipeline>(r.out).state(), farm::v1::SUCCEEDED);

  const std::string cancelled = farm_.AddPipeline("cancelled", {"a"});
  farm_.CancelPipelineNow(cancelled);
  EXPECT_EQ(Run({"wait", cancelled}).code, kExitJobCancelled);
}

TEST_F(FarmctlTest, WaitForAPipelineTimesOut) {
  const std::string id = farm_.AddPipeline("slow", {"a", "b"});
  farm_.SetState(farm_.PipelineJobId(id, "a"), farm::v1::SUCCEEDED);
  Result r = Run({"wait", id, "--timeout=50ms"});
  EXPECT_EQ(r.code, kExitWaitTimedOut) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "farmctl: pipeline p1 is still RUNNING after 50ms (1/2 jobs done)\n");

  r = Run({"wait", id, "--timeout=0", "--output=json"});
  EXPECT_EQ(r.code, kExitWaitTimedOut) << r.err;
  EXPECT_EQ(ParseJson<farm::v1::Pipeline>(r.out).state(), farm::v1::RUNNING);
}

TEST_F(FarmctlTest, AnUnknownPipelineIsNotFoundInOneLine) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"get", "p9"}, {"wait", "p9"}, {"cancel", "p9"}}) {
    const Result r = Run(args);
    EXPECT_EQ(r.code, kExitError) << args[0];
    EXPECT_EQ(r.err, "farmctl: pipeline p9 not found\n") << args[0];
    EXPECT_EQ(r.out, "") << args[0];
  }
}

TEST_F(FarmctlTest, JobOnlyCommandsSayAPipelineIsNotAJob) {
  farm_.AddPipeline("release", {"build"});
  common::FakeClock clock;
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"logs", "p1"}, {"artifacts", "p1"}, {"download", "p1", "-o", dir_}}) {
    std::ostringstream out;
    std::ostringstream err;
    std::istringstream in;
    CliIo io{out, err, in, clock, absl::UTCTimeZone()};
    EXPECT_EQ(RunFarmctl(args, farm_.address(), io), kExitUsage) << args[0];
    EXPECT_EQ(err.str(), "farmctl: p1 is a pipeline; use `farmctl get p1` to see its jobs' ids\n")
        << args[0];
    EXPECT_EQ(out.str(), "");
  }
  EXPECT_EQ(farm_.calls(), 0);
}

// --- no coordinator, usage --------------------------------------------------------------------

TEST(FarmctlUnreachableTest, EveryCommandSaysSoInOneLine) {
  std::string address;
  {
    FakeFarm farm;  // listen, learn the port, stop: nothing listens there now
    address = farm.address();
  }
  std::string templ = ::testing::TempDir() + "/job.XXXXXX.yaml";
  const int fd = mkstemps(templ.data(), 5);
  ASSERT_GE(fd, 0);
  close(fd);
  std::ofstream(templ) << kHelloYaml;
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"get", "1"},
                                             {"get", "p1"},
                                             {"wait", "p1"},
                                             {"cancel", "p1"},
                                             {"list", "--pipelines"},
                                             {"list"},
                                             {"agents"},
                                             {"cancel", "1"},
                                             {"wait", "1"},
                                             {"logs", "1", "--follow"},
                                             {"events"},
                                             {"events", "--job=1", "--follow"},
                                             {"submit", templ, "--follow"}}) {
    const Result r = RunAgainst(address, args, "", /*submit_retry_ms=*/300);
    EXPECT_EQ(r.code, kExitError) << args[0];
    EXPECT_EQ(r.out, "") << args[0];
    // submit waits for the coordinator through its retry budget first, and says so.
    EXPECT_EQ(
        r.err,
        absl::StrCat("farmctl: cannot reach the coordinator at ", address, " (connection refused)",
                     args[0] == "submit" ? "; gave up after retrying for 300ms" : "", "\n"))
        << args[0];
  }
  std::remove(templ.c_str());
}

// A coordinator restart (kill -9, then a new process on the same address) while farmctl
// submits: farmctl keeps trying for its retry budget, not a number of tries, and submits once.
// The outage is real (nothing listens on the address) and observed: the new coordinator starts
// only once farmctl has seen a try refused, so the test cannot pass without the retry. That the
// wait between tries also makes the channel reconnect shows only in a farmctl process of its
// own: here the fake's server threads drive the client's reconnection too.
TEST(FarmctlRestartTest, SubmitRidesOutACoordinatorRestart) {
  auto farm = std::make_unique<FakeFarm>();
  const std::string address = farm->address();
  farm.reset();  // the coordinator dies; nothing listens on `address` now
  std::string templ = ::testing::TempDir() + "/job.XXXXXX.yaml";
  const int fd = mkstemps(templ.data(), 5);
  ASSERT_GE(fd, 0);
  close(fd);
  std::ofstream(templ) << kHelloYaml;

  absl::Mutex mu;
  std::vector<absl::Status> refused;  // guarded by mu
  Result result;
  std::thread submit([&] {
    result = RunAgainst(address, {"submit", templ}, "", /*submit_retry_ms=*/kSubmitRetryMs,
                        [&](const absl::Status& status) {
                          absl::MutexLock lock(&mu);
                          refused.push_back(status);
                        });
  });
  bool seen_refusal = false;
  {
    absl::MutexLock lock(&mu);
    const auto tried = [&refused]() { return !refused.empty(); };
    seen_refusal = mu.AwaitWithTimeout(absl::Condition(&tried), absl::Seconds(15));
  }
  EXPECT_TRUE(seen_refusal) << "farmctl never reported a refused try";
  farm = std::make_unique<FakeFarm>(std::vector<grpc::Service*>{}, address);
  submit.join();

  {
    absl::MutexLock lock(&mu);
    ASSERT_FALSE(refused.empty());
    EXPECT_EQ(refused[0].code(), absl::StatusCode::kUnavailable) << refused[0];
  }
  EXPECT_EQ(result.code, 0) << result.err;
  EXPECT_EQ(result.out, "1\n");
  EXPECT_EQ(result.err, "");
  EXPECT_EQ(farm->submit_requests().size(), 1u) << "the refused tries never reached a server";
  EXPECT_TRUE(farm->GetJob("1").has_value());
  EXPECT_FALSE(farm->GetJob("2").has_value()) << "a retry made a second job";
  std::remove(templ.c_str());
}

TEST(RunFarmctlTest, UsageErrorsExit64) {
  common::FakeClock clock;
  std::ostringstream out;
  std::ostringstream err;
  std::istringstream in;
  CliIo io{out, err, in, clock, absl::UTCTimeZone()};

  EXPECT_EQ(RunFarmctl({}, "", io), kExitUsage);
  EXPECT_THAT(err.str(), HasSubstr("Commands:"));
  EXPECT_THAT(err.str(), HasSubstr("submit FILE"));

  err.str("");
  EXPECT_EQ(RunFarmctl({"get", "1", "--follow"}, "", io), kExitUsage);
  EXPECT_EQ(err.str(), "farmctl: 'get' does not take --follow (run 'farmctl help get')\n");

  err.str("");
  EXPECT_EQ(RunFarmctl({"help"}, "", io), 0);
  EXPECT_EQ(err.str(), "");
  for (const char* command : {"submit", "get", "list", "logs", "wait", "cancel", "agents"}) {
    EXPECT_THAT(out.str(), HasSubstr(absl::StrCat("\n  ", command, " ")));
  }
}

}  // namespace
}  // namespace farm::cli
