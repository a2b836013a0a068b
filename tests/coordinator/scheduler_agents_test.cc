// Operators' agent commands through the scheduler (scheduler.h: DrainAgent, LabelAgent,
// RemoveAgent): their effect on dispatch (parked Lease calls re-matched at once, no polling),
// persistence across a restart, and bad input that changes nothing. Fake clock, in-memory store.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "coordinator/events/event_reader.h"
#include "tests/coordinator/scheduler_fixture.h"

namespace farm::coordinator {
namespace {

using testing::StatusIs;
using testing::StatusIsWithMessage;

class SchedulerAgentsTest : public SchedulerTest {
 protected:
  absl::StatusOr<farm::v1::AgentInfo> Drain(const std::string& name, bool drain) {
    return Await<farm::v1::AgentInfo>(
        [&](auto cb) { scheduler_->DrainAgent(name, drain, "alice", cb); });
  }
  absl::StatusOr<farm::v1::AgentInfo> Label(const std::string& name, Labels set,
                                            std::vector<std::string> remove = {}) {
    return Await<farm::v1::AgentInfo>(
        [&](auto cb) { scheduler_->LabelAgent(name, set, remove, "alice", cb); });
  }
  absl::StatusOr<farm::v1::AgentInfo> Remove(const std::string& name) {
    return Await<farm::v1::AgentInfo>([&](auto cb) { scheduler_->RemoveAgent(name, "alice", cb); });
  }
  // Parks a Lease call of `agent` with a long wait (the fake clock never ends it).
  void Park(Pending<farm::v1::LeaseResponse>& pending, const std::string& agent) {
    farm::v1::LeaseRequest req;
    req.set_agent(agent);
    req.set_session_id("s1");
    scheduler_->Lease(req, 600'000, scheduler_->NewCallId(), pending.Callback());
  }
  farm::v1::AgentInfo Listed(const std::string& name) {
    absl::StatusOr<farm::v1::ListAgentsResponse> list =
        Await<farm::v1::ListAgentsResponse>([&](auto cb) { scheduler_->ListAgents(cb); });
    EXPECT_OK(list);
    for (const farm::v1::AgentInfo& info : list->agents()) {
      if (info.name() == name) return info;
    }
    return farm::v1::AgentInfo();
  }
  std::vector<farm::v1::EventKind> AgentEventKinds() {
    std::vector<farm::v1::EventKind> kinds;
    farm::v1::ListEventsRequest req;
    absl::StatusOr<farm::v1::ListEventsResponse> events = EventReader(&store_).List(req);
    EXPECT_OK(events);
    for (const farm::v1::Event& e : events->events()) {
      if (!e.agent().empty() && e.job_id().empty()) kinds.push_back(e.kind());
    }
    return kinds;
  }
};

TEST_F(SchedulerAgentsTest, ALabelledAgentsParkedLeaseGetsTheQueuedJobAtOnce) {
  Register("plain", {{"os", "linux"}});
  const std::string gpu = Submit(Spec("gpu", 0, {{"gpu", "yes"}}));
  Pending<farm::v1::LeaseResponse> parked;
  Park(parked, "plain");
  ASSERT_OK(Await<farm::v1::ListAgentsResponse>([&](auto cb) { scheduler_->ListAgents(cb); }));
  EXPECT_FALSE(parked.Ready());  // it does not match yet

  ASSERT_OK_AND_ASSIGN(farm::v1::AgentInfo info, Label("plain", {{"gpu", "yes"}}));
  EXPECT_EQ(ToLabels(info.labels()), (Labels{{"gpu", "yes"}, {"os", "linux"}}));
  EXPECT_EQ(ToLabels(info.operator_labels()), (Labels{{"gpu", "yes"}}));
  ASSERT_OK_AND_ASSIGN(farm::v1::LeaseResponse lease, parked.Get());
  ASSERT_TRUE(lease.has_job());
  EXPECT_EQ(lease.job().id(), gpu);
  EXPECT_EQ(Job(gpu).state(), farm::v1::RUNNING);
}

TEST_F(SchedulerAgentsTest, ADrainedAgentTakesNothingUntilResumedThenAtOnce) {
  Register("a1");
  ASSERT_OK_AND_ASSIGN(farm::v1::AgentInfo drained, Drain("a1", true));
  EXPECT_EQ(drained.state(), "draining");
  const std::string job = Submit(Spec("job"));
  ASSERT_OK_AND_ASSIGN(farm::v1::LeaseResponse none, Lease("a1"));
  EXPECT_FALSE(none.has_job());
  Pending<farm::v1::LeaseResponse> parked;
  Park(parked, "a1");
  Submit(Spec("another"));
  EXPECT_FALSE(parked.Ready());
  EXPECT_EQ(Job(job).state(), farm::v1::QUEUED);

  ASSERT_OK_AND_ASSIGN(farm::v1::AgentInfo resumed, Drain("a1", false));
  EXPECT_NE(resumed.state(), "draining");
  ASSERT_OK_AND_ASSIGN(farm::v1::LeaseResponse lease, parked.Get());
  ASSERT_TRUE(lease.has_job());
  EXPECT_EQ(lease.job().id(), job);
  EXPECT_EQ(AgentEventKinds(),
            (std::vector<farm::v1::EventKind>{farm::v1::AGENT_REGISTERED, farm::v1::AGENT_DRAINING,
                                              farm::v1::AGENT_RESUMED}));
}

TEST_F(SchedulerAgentsTest, DrainAndLabelsSurviveARestartAndTheAgentsNewRegistration) {
  Register("a1", {{"pool", "a"}});
  ASSERT_OK(Drain("a1", true));
  ASSERT_OK(Label("a1", {{"pool", "b"}}));
  Restart();
  Register("a1", {{"pool", "a"}, {"os", "linux"}}, "s2");
  farm::v1::AgentInfo info = Listed("a1");
  EXPECT_EQ(info.state(), "draining");
  EXPECT_EQ(ToLabels(info.labels()), (Labels{{"os", "linux"}, {"pool", "b"}}));
  ASSERT_OK(Label("a1", {}, {"os"}));
  Restart();
  Register("a1", {{"pool", "a"}, {"os", "linux"}}, "s3");
  EXPECT_EQ(ToLabels(Listed("a1").labels()), (Labels{{"pool", "b"}}));
}

TEST_F(SchedulerAgentsTest, RemoveWaitsUntilTheAgentIsOfflineAndHoldsNoLease) {
  Register("a1");
  Submit(Spec("job"));
  ASSERT_OK_AND_ASSIGN(farm::v1::LeaseResponse lease, Lease("a1"));
  ASSERT_TRUE(lease.has_job());
  EXPECT_THAT(Remove("a1"), StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_OK(Complete(lease.lease(), farm::v1::ATTEMPT_SUCCEEDED));
  EXPECT_THAT(Remove("a1"), StatusIsWithMessage(absl::StatusCode::kFailedPrecondition,
                                                ::testing::HasSubstr("is online")));
  EXPECT_EQ(Listed("a1").name(), "a1");
  ExpireLeases();  // a TTL of silence
  ASSERT_OK_AND_ASSIGN(farm::v1::AgentInfo removed, Remove("a1"));
  EXPECT_EQ(removed.name(), "a1");
  EXPECT_EQ(Listed("a1").name(), "");
  // Its next call is told to register again.
  EXPECT_THAT(Lease("a1"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(AgentEventKinds().back(), farm::v1::AGENT_REMOVED);
}

TEST_F(SchedulerAgentsTest, BadInputIsRefusedInOneLineAndChangesNothing) {
  Register("a1", {{"os", "linux"}});
  const std::vector<farm::v1::EventKind> before = AgentEventKinds();
  EXPECT_THAT(Drain("", true),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, "the agent name is empty"));
  EXPECT_THAT(Drain("ghost", true),
              StatusIsWithMessage(absl::StatusCode::kNotFound, "no agent named \"ghost\""));
  EXPECT_THAT(Remove("ghost"),
              StatusIsWithMessage(absl::StatusCode::kNotFound, "no agent named \"ghost\""));
  EXPECT_THAT(Label("ghost", {{"gpu", "yes"}}), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(Label("a1", {}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Label("a1", {{"", "x"}}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Label("a1", {{"a=b", "x"}}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Label("a1", {{"gpu", "a,b"}}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Label("a1", {{"gpu", std::string(257, 'x')}}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Label("a1", {}, {"os", "os"}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Label("a1", {}, {"gpu"}),
              StatusIsWithMessage(absl::StatusCode::kNotFound,
                                  "agent \"a1\" has no label \"gpu\" to remove"));
  farm::v1::AgentInfo info = Listed("a1");
  EXPECT_EQ(info.state(), "idle");
  EXPECT_EQ(ToLabels(info.labels()), (Labels{{"os", "linux"}}));
  EXPECT_TRUE(info.operator_labels().empty());
  EXPECT_EQ(AgentEventKinds(), before);
}

}  // namespace
}  // namespace farm::coordinator
