#include "coordinator/scheduler/agent_registry.h"

#include <gtest/gtest.h>

#include "common/grpc_status.h"
#include "coordinator/events/event_reader.h"
#include "tests/coordinator/scheduler/part_test_util.h"

namespace farm::coordinator {
namespace {

using testing::StatusIs;

class AgentRegistryTest : public PartTest {
 protected:
  farm::v1::RegisterRequest Req(const std::string& name, const std::string& session) {
    farm::v1::RegisterRequest req;
    req.set_name(name);
    req.set_session_id(session);
    req.set_slots(2);
    req.set_version("1.0");
    (*req.mutable_labels())["os"] = "linux";
    return req;
  }
  AgentRegistry NewRegistry() { return AgentRegistry(&clock_, &events_, 3000, 60'000); }
  std::vector<farm::v1::EventKind> Kinds() {
    EventReader reader(&store_);
    farm::v1::ListEventsResponse resp = *reader.List(farm::v1::ListEventsRequest());
    std::vector<farm::v1::EventKind> kinds;
    for (const auto& e : resp.events()) kinds.push_back(e.kind());
    return kinds;
  }

  LabelSets sets_;
  FollowerHub hub_;
  EventRecorder events_{&clock_, &sets_, &hub_, EventRecorder::kDefaultRetentionMs};
};

TEST_F(AgentRegistryTest, AnUnknownAgentIsNotRegisteredByReasonNotByText) {
  AgentRegistry r = NewRegistry();
  Txn txn(&store_);
  absl::StatusOr<AgentState*> call = r.Call(txn, "ghost", "s1");
  EXPECT_THAT(call, StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(common::ReasonOf(call.status()), common::kReasonAgentNotRegistered);
}

TEST_F(AgentRegistryTest, ANewSessionSupersedesTheOldOneWhoseCallsAreRefused) {
  AgentRegistry r = NewRegistry();
  Txn txn(&store_);
  bool superseded = true;
  r.Register(txn, Req("a1", "s1"), &superseded);
  EXPECT_FALSE(superseded);
  ASSERT_OK(r.Call(txn, "a1", "s1"));
  r.Register(txn, Req("a1", "s2"), &superseded);
  EXPECT_TRUE(superseded);
  EXPECT_THAT(r.Call(txn, "a1", "s1"), StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_OK_AND_ASSIGN(AgentState * a, r.Call(txn, "a1", "s2"));
  EXPECT_EQ(a->labels.at("os"), "linux");
  EXPECT_EQ(a->record.slots(), 2u);
}

TEST_F(AgentRegistryTest, AgentsAndAnOperatorsDrainSurviveARestart) {
  {
    AgentRegistry r = NewRegistry();
    Txn txn(&store_);
    bool superseded;
    r.Register(txn, Req("a1", "s1"), &superseded);
    r.Register(txn, Req("a2", "s7"), &superseded);
    ASSERT_OK(r.SetOperatorDrain(txn, "a1", true));
    EXPECT_THAT(r.SetOperatorDrain(txn, "nobody", true), StatusIs(absl::StatusCode::kNotFound));
    Commit(txn);
  }
  AgentRegistry r = NewRegistry();
  ASSERT_OK(r.Recover(&store_));
  Txn txn(&store_);
  // The agents keep their sessions: no need to register again after a coordinator restart.
  ASSERT_OK_AND_ASSIGN(AgentState * a1, r.Call(txn, "a1", "s1"));
  EXPECT_TRUE(a1->draining());
  ASSERT_OK_AND_ASSIGN(AgentState * a2, r.Call(txn, "a2", "s7"));
  EXPECT_FALSE(a2->draining());
  EXPECT_EQ(r.StateOf(*a1, false), "draining");
  EXPECT_EQ(r.StateOf(*a2, true), "busy");
  ASSERT_OK(r.SetOperatorDrain(txn, "a1", false));
  EXPECT_EQ(r.StateOf(*a1, false), "idle");
}

TEST_F(AgentRegistryTest, ASilentAgentIsLostOnceReturnsAndIsForgottenUnlessDrained) {
  AgentRegistry r = NewRegistry();
  {
    Txn txn(&store_);
    bool superseded;
    r.Register(txn, Req("a1", "s1"), &superseded);
    r.Register(txn, Req("a2", "s1"), &superseded);
    ASSERT_OK(r.SetOperatorDrain(txn, "a2", true));
    Commit(txn);
  }
  clock_.AdvanceMs(3001);
  {
    Txn txn(&store_);
    r.Sweep(txn, {});
    r.Sweep(txn, {});  // lost only once
    ASSERT_OK(r.Call(txn, "a1", "s1"));
    Commit(txn);
  }
  EXPECT_EQ(r.StateOf(*r.Find("a2"), false), "offline");
  clock_.AdvanceMs(61'000);
  {
    Txn txn(&store_);
    r.Sweep(txn, {});
    Commit(txn);
  }
  EXPECT_EQ(r.Find("a1"), nullptr);  // forgotten
  EXPECT_NE(r.Find("a2"), nullptr);  // an operator's drain is kept
  AgentRegistry restarted = NewRegistry();
  ASSERT_OK(restarted.Recover(&store_));
  EXPECT_EQ(restarted.Find("a1"), nullptr);
  using E = farm::v1::EventKind;
  EXPECT_EQ(Kinds(),
            (std::vector<E>{farm::v1::AGENT_REGISTERED, farm::v1::AGENT_REGISTERED,
                            farm::v1::AGENT_DRAINING, farm::v1::AGENT_LOST, farm::v1::AGENT_LOST,
                            farm::v1::AGENT_RETURNED, farm::v1::AGENT_LOST}));
}

TEST_F(AgentRegistryTest, TheAgentsOwnDrainIsAnEventWhenItChanges) {
  AgentRegistry r = NewRegistry();
  Txn txn(&store_);
  bool superseded;
  AgentState& a = r.Register(txn, Req("a1", "s1"), &superseded);
  r.SetSelfDraining(txn, a, true);
  r.SetSelfDraining(txn, a, true);
  Commit(txn);
  EXPECT_TRUE(a.draining());
  EXPECT_EQ(Kinds(), (std::vector<farm::v1::EventKind>{farm::v1::AGENT_REGISTERED,
                                                       farm::v1::AGENT_DRAINING}));
}

}  // namespace
}  // namespace farm::coordinator
