// `farmctl events` end to end against the FakeFarm's event history, and the event line format.
#include "coordinator/cli/events_commands.h"

#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/clock.h"
#include "coordinator/cli/commands.h"
#include "coordinator/cli/options.h"
#include "tests/coordinator/cli/fake_farm.h"
#include "tests/coordinator/cli/usage_error.h"

namespace farm::cli {
namespace {

using ::farm::testing::FakeFarm;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int64_t kNowMs = 1'700'000'000'000;  // the FakeClock's start: 2023-11-14T22:13:20Z

farm::v1::Event MakeEvent(int64_t time_ms, farm::v1::EventKind kind, const std::string& job) {
  farm::v1::Event event;
  event.set_time_ms(time_ms);
  event.set_kind(kind);
  event.set_job_id(job);
  return event;
}

// The timeline of job 7, retried after a lost agent, as the coordinator records it.
std::vector<farm::v1::Event> RetriedJobTimeline() {
  std::vector<farm::v1::Event> events;
  auto add = [&](int64_t ago_ms, farm::v1::EventKind kind) -> farm::v1::Event& {
    events.push_back(MakeEvent(kNowMs - ago_ms, kind, "7"));
    return events.back();
  };
  farm::v1::Event& submitted = add(60'000, farm::v1::JOB_SUBMITTED);
  submitted.set_job_name("build");
  submitted.set_state(farm::v1::QUEUED);
  farm::v1::Event& leased = add(59'000, farm::v1::JOB_LEASED);
  leased.set_agent("a1");
  leased.set_attempt(1);
  leased.set_epoch(41);
  farm::v1::Event& lost = add(30'000, farm::v1::ATTEMPT_ENDED);
  lost.set_agent("a1");
  lost.set_attempt(1);
  lost.set_outcome(farm::v1::ATTEMPT_LOST);
  lost.set_reason("agent lost");
  add(30'000, farm::v1::JOB_QUEUED).set_reason("requeued after a lost agent");
  farm::v1::Event& again = add(29'000, farm::v1::JOB_LEASED);
  again.set_agent("a2");
  again.set_attempt(2);
  again.set_epoch(42);
  farm::v1::Event& step = add(28'500, farm::v1::STEP_FINISHED);
  step.set_attempt(2);
  step.set_step("compile");
  step.set_step_index(0);
  step.set_step_state(farm::v1::STEP_SUCCEEDED);
  farm::v1::Event& ended = add(28'000, farm::v1::JOB_ENDED);
  ended.set_state(farm::v1::SUCCEEDED);
  return events;
}

class EventsTest : public ::testing::Test {
 protected:
  Result Run(const std::vector<std::string>& args, int64_t wait_ms = 30'000) {
    std::ostringstream out;
    std::ostringstream err;
    std::istringstream in;
    CliIo io{out, err, in, clock_, absl::UTCTimeZone()};
    absl::StatusOr<CliOptions> options = ParseArgs(args, farm_.address());
    if (options.ok()) options->security.insecure = true;  // the fake coordinator speaks plaintext
    if (!options.ok()) return {kExitUsage, "", std::string(options.status().message())};
    options->retry_initial_backoff_ms = 5;
    options->retry_max_backoff_ms = 20;
    options->events_wait_ms = wait_ms;
    const int code = RunCommand(*options, io);
    return {code, out.str(), err.str()};
  }

  std::vector<std::string> Lines(const std::string& text) {
    return absl::StrSplit(text, '\n', absl::SkipEmpty());
  }

  common::FakeClock clock_{kNowMs};
  FakeFarm farm_;
};

TEST_F(EventsTest, AJobsTimelineOneLineEachOldestFirst) {
  for (farm::v1::Event& event : RetriedJobTimeline()) farm_.AddEvent(event);
  farm::v1::Event other = MakeEvent(kNowMs - 10'000, farm::v1::JOB_SUBMITTED, "8");
  farm_.AddEvent(other);

  const Result r = Run({"events", "--job=7"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_THAT(
      Lines(r.out),
      ElementsAre(
          "2023-11-14T22:12:20.000+00:00 JOB_SUBMITTED 7 name=build state=QUEUED",
          "2023-11-14T22:12:21.000+00:00 JOB_LEASED 7 agent=a1 attempt=1 epoch=41",
          "2023-11-14T22:12:50.000+00:00 ATTEMPT_ENDED 7 agent=a1 attempt=1 outcome=LOST "
          "reason=\"agent lost\"",
          "2023-11-14T22:12:50.000+00:00 JOB_QUEUED 7 reason=\"requeued after a lost agent\"",
          "2023-11-14T22:12:51.000+00:00 JOB_LEASED 7 agent=a2 attempt=2 epoch=42",
          "2023-11-14T22:12:51.500+00:00 STEP_FINISHED 7 attempt=2 step=compile#0 SUCCEEDED "
          "exit=0",
          "2023-11-14T22:12:52.000+00:00 JOB_ENDED 7 state=SUCCEEDED"));
  const auto requests = farm_.list_events_requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].job_id(), "7");
  EXPECT_EQ(requests[0].since_ms(), 0);
  EXPECT_EQ(requests[0].until_ms(), kNowMs + 1) << "without --follow: the history up to now";
  EXPECT_EQ(requests[0].wait_ms(), 0);
}

TEST_F(EventsTest, PipelineJobsAndAgentEventsNameWhatTheyAreAbout) {
  farm::v1::Event leased = MakeEvent(kNowMs - 1'000, farm::v1::JOB_LEASED, "12");
  leased.set_pipeline_id("p3");
  leased.set_pipeline_job("test");
  leased.set_agent("builder 1");
  leased.set_attempt(1);
  leased.set_epoch(9);
  farm_.AddEvent(leased);
  farm::v1::Event agent = MakeEvent(kNowMs - 500, farm::v1::AGENT_LOST, "");
  agent.set_agent("builder-2");
  farm_.AddEvent(agent);
  const Result r = Run({"events"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(Lines(r.out),
              ElementsAre("2023-11-14T22:13:19.000+00:00 JOB_LEASED 12 (p3/test) "
                          "agent=\"builder 1\" attempt=1 epoch=9",
                          "2023-11-14T22:13:19.500+00:00 AGENT_LOST agent=builder-2"));
}

TEST_F(EventsTest, SinceAndUntilAreDurationsBackFromNowOrTimes) {
  farm_.AddEvent(MakeEvent(kNowMs - 2 * 3'600'000, farm::v1::JOB_SUBMITTED, "1"));
  farm_.AddEvent(MakeEvent(kNowMs - 1'000, farm::v1::JOB_SUBMITTED, "2"));
  Result r = Run({"events", "--since=1h"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Lines(r.out).size(), 1u) << r.out;
  EXPECT_THAT(r.out, HasSubstr("JOB_SUBMITTED 2"));
  EXPECT_EQ(farm_.list_events_requests().back().since_ms(), kNowMs - 3'600'000);

  r = Run({"events", "--since=2023-11-14T00:00:00Z", "--until=30m"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(Lines(r.out), ElementsAre(HasSubstr("JOB_SUBMITTED 1")));
  EXPECT_EQ(farm_.list_events_requests().back().since_ms(), 1'699'920'000'000);
  EXPECT_EQ(farm_.list_events_requests().back().until_ms(), kNowMs - 1'800'000);
}

TEST_F(EventsTest, PagesThroughALongHistoryAndLimitStopsEarly) {
  for (int i = 0; i < 1'500; ++i) {
    farm_.AddEvent(MakeEvent(kNowMs - 100'000 + i, farm::v1::JOB_QUEUED, absl::StrCat(i)));
  }
  Result r = Run({"events"});
  EXPECT_EQ(r.code, 0) << r.err;
  const std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 1'500u);
  EXPECT_THAT(lines.front(), HasSubstr("JOB_QUEUED 0"));
  EXPECT_THAT(lines.back(), HasSubstr("JOB_QUEUED 1499"));
  auto requests = farm_.list_events_requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1].page_token(), "1000");

  r = Run({"events", "--limit=3"});
  EXPECT_EQ(Lines(r.out).size(), 3u);
  EXPECT_EQ(farm_.list_events_requests().back().limit(), 3);
}

TEST_F(EventsTest, JsonIsOneListEventsResponse) {
  for (farm::v1::Event& event : RetriedJobTimeline()) farm_.AddEvent(event);
  const Result r = Run({"events", "--job=7", "--output=json"});
  EXPECT_EQ(r.code, 0) << r.err;
  farm::v1::ListEventsResponse response;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &response).ok()) << r.out;
  ASSERT_EQ(response.events_size(), 7);
  EXPECT_EQ(response.events(2).outcome(), farm::v1::ATTEMPT_LOST);
  EXPECT_EQ(response.events(6).kind(), farm::v1::JOB_ENDED);
}

TEST_F(EventsTest, FollowLongPollsUntilTheJobEndsAndExitsWithItsOutcome) {
  farm_.AddEvent(MakeEvent(kNowMs - 1'000, farm::v1::JOB_SUBMITTED, "5"));
  Result result;
  std::thread follow([&] { result = Run({"events", "--job=5", "--follow"}); });
  // farmctl waits at the live end in a held call, not in a sleep loop.
  ASSERT_TRUE(farm_.AwaitHeldListEvents(1, absl::Seconds(20)));
  farm::v1::Event leased = MakeEvent(kNowMs, farm::v1::JOB_LEASED, "5");
  leased.set_agent("a1");
  farm_.AddEvent(leased);
  farm_.AddEvent(MakeEvent(kNowMs, farm::v1::JOB_LEASED, "6"));  // another job's
  farm::v1::Event ended = MakeEvent(kNowMs + 5, farm::v1::JOB_ENDED, "5");
  ended.set_state(farm::v1::FAILED);
  farm_.AddEvent(ended);
  follow.join();

  EXPECT_EQ(result.code, kExitJobFailed) << result.err;
  EXPECT_THAT(Lines(result.out),
              ElementsAre(HasSubstr("JOB_SUBMITTED 5"), HasSubstr("JOB_LEASED 5 agent=a1"),
                          HasSubstr("JOB_ENDED 5 state=FAILED")));
  const auto requests = farm_.list_events_requests();
  ASSERT_GE(requests.size(), 2u);
  for (const auto& request : requests) {
    EXPECT_EQ(request.wait_ms(), 30'000);
    EXPECT_EQ(request.until_ms(), 0);
  }
  EXPECT_EQ(requests[1].page_token(), "1") << "the follow goes on after what it printed";
}

TEST_F(EventsTest, FollowJsonIsOneEventPerLine) {
  farm_.AddEvent(MakeEvent(kNowMs - 1'000, farm::v1::JOB_SUBMITTED, "5"));
  Result result;
  std::thread follow([&] { result = Run({"events", "--job=5", "--follow", "--output=json"}); });
  ASSERT_TRUE(farm_.AwaitHeldListEvents(1, absl::Seconds(20)));
  farm::v1::Event ended = MakeEvent(kNowMs, farm::v1::JOB_ENDED, "5");
  ended.set_state(farm::v1::SUCCEEDED);
  farm_.AddEvent(ended);
  follow.join();

  EXPECT_EQ(result.code, 0) << result.err;
  EXPECT_EQ(result.err, "");
  const std::vector<std::string> lines = Lines(result.out);
  ASSERT_EQ(lines.size(), 2u) << result.out;
  farm::v1::Event first;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(lines[0], &first).ok());
  EXPECT_EQ(first.kind(), farm::v1::JOB_SUBMITTED);
  farm::v1::Event last;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(lines[1], &last).ok());
  EXPECT_EQ(last.kind(), farm::v1::JOB_ENDED);
}

TEST_F(EventsTest, FollowSaysOnceThatItReconnects) {
  farm_.AddEvent(MakeEvent(kNowMs - 1'000, farm::v1::JOB_SUBMITTED, "5"));
  Result result;
  std::thread follow([&] { result = Run({"events", "--job=5", "--follow"}, /*wait_ms=*/1); });
  ASSERT_TRUE(farm_.AwaitHeldListEvents(1, absl::Seconds(20)));
  const size_t before = farm_.list_events_requests().size();
  farm_.FailNextListEvents(3);
  // Three calls refused, then one that gets through: only then does the job end.
  ASSERT_TRUE(farm_.AwaitListEventsCalls(before + 4, absl::Seconds(20)));
  farm::v1::Event ended = MakeEvent(kNowMs, farm::v1::JOB_ENDED, "5");
  ended.set_state(farm::v1::CANCELLED);
  farm_.AddEvent(ended);
  follow.join();

  EXPECT_EQ(result.code, kExitJobCancelled) << result.err;
  EXPECT_EQ(result.err, absl::StrCat("farmctl: cannot reach the coordinator at ", farm_.address(),
                                     " (injected failure); reconnecting\n"));
  EXPECT_THAT(Lines(result.out),
              ElementsAre(HasSubstr("JOB_SUBMITTED 5"), HasSubstr("JOB_ENDED 5 state=CANCELLED")));
}

TEST(FormatEventLineTest, ShowsLocalTimeWithMillisecondsAndUnknownKinds) {
  farm::v1::Event event = MakeEvent(1'700'000'000'123, farm::v1::STEP_STARTED, "3");
  event.set_attempt(1);
  event.set_step("unit tests");
  event.set_step_index(2);
  EXPECT_EQ(FormatEventLine(event, absl::FixedTimeZone(3600)),
            "2023-11-14T23:13:20.123+01:00 STEP_STARTED 3 attempt=1 step=\"unit tests\"#2\n");
  event.set_kind(static_cast<farm::v1::EventKind>(99));
  event.set_reason("new");
  EXPECT_THAT(FormatEventLine(event, absl::UTCTimeZone()), HasSubstr("KIND_99 3 attempt=1"));
  EXPECT_THAT(FormatEventLine(event, absl::UTCTimeZone()), HasSubstr("reason=new"));
}

}  // namespace
}  // namespace farm::cli
