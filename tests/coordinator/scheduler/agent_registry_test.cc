#include "coordinator/scheduler/agent_registry.h"

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "coordinator/events/event_reader.h"
#include "tests/coordinator/scheduler/part_test_util.h"

namespace farm::coordinator {
namespace {

using testing::StatusIs;
using testing::StatusIsWithMessage;

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
  std::vector<farm::v1::Event> Events() {
    EventReader reader(&store_);
    farm::v1::ListEventsResponse resp = *reader.List(farm::v1::ListEventsRequest());
    return {resp.events().begin(), resp.events().end()};
  }
  std::vector<farm::v1::EventKind> Kinds() {
    std::vector<farm::v1::EventKind> kinds;
    for (const auto& e : Events()) kinds.push_back(e.kind());
    return kinds;
  }
  // Registers `name` with os=linux and pool=`pool`, committed.
  void RegisterCommitted(AgentRegistry& r, const std::string& name, const std::string& session,
                         const std::string& pool = "a") {
    Txn txn(&store_);
    farm::v1::RegisterRequest req = Req(name, session);
    (*req.mutable_labels())["pool"] = pool;
    bool superseded;
    r.Register(txn, req, &superseded);
    Commit(txn);
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

// An operator's labels: set ones override or add, removed ones go, and both outlive the agent's
// next registration (whatever it registers) and a restart of the coordinator.
TEST_F(AgentRegistryTest, OperatorLabelsOverrideAddRemoveAndOutliveRegistrationAndRestart) {
  {
    AgentRegistry r = NewRegistry();
    RegisterCommitted(r, "a1", "s1");
    Txn txn(&store_);
    bool changed = false;
    ASSERT_OK(
        r.SetOperatorLabels(txn, "a1", {{"pool", "b"}, {"gpu", "yes"}}, {"os"}, "alice", &changed));
    EXPECT_TRUE(changed);
    Commit(txn);
    EXPECT_EQ(r.Find("a1")->labels, (Labels{{"gpu", "yes"}, {"pool", "b"}}));
  }
  AgentRegistry r = NewRegistry();
  ASSERT_OK(r.Recover(&store_));
  EXPECT_EQ(r.Find("a1")->labels, (Labels{{"gpu", "yes"}, {"pool", "b"}}));
  // The agent registers again (a new process) with its own labels: the operator's still win.
  RegisterCommitted(r, "a1", "s2", "c");
  EXPECT_EQ(r.Find("a1")->labels, (Labels{{"gpu", "yes"}, {"pool", "b"}}));
  // Setting a removed key brings it back; removing a set one takes it out for good.
  {
    Txn txn(&store_);
    bool changed = false;
    ASSERT_OK(r.SetOperatorLabels(txn, "a1", {{"os", "bsd"}}, {"gpu"}, "", &changed));
    Commit(txn);
  }
  EXPECT_EQ(r.Find("a1")->labels, (Labels{{"os", "bsd"}, {"pool", "b"}}));
  farm::v1::AgentInfo info = r.Info(*r.Find("a1"), {});
  EXPECT_EQ(ToLabels(info.operator_labels()), (Labels{{"os", "bsd"}, {"pool", "b"}}));
  EXPECT_EQ(std::vector<std::string>(info.removed_labels().begin(), info.removed_labels().end()),
            std::vector<std::string>{"gpu"});
  std::vector<farm::v1::Event> events = Events();
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[1].kind(), farm::v1::AGENT_LABELED);
  EXPECT_EQ(events[1].agent(), "a1");
  EXPECT_EQ(events[1].reason(), "set gpu=yes,pool=b; removed os; by alice");
  EXPECT_EQ(events[3].reason(), "set os=bsd; removed gpu; by an operator");
}

TEST_F(AgentRegistryTest, ABadLabelChangeChangesNothingAndTheSameOneTwiceIsNoEvent) {
  AgentRegistry r = NewRegistry();
  RegisterCommitted(r, "a1", "s1");
  Txn txn(&store_);
  bool changed = true;
  EXPECT_THAT(r.SetOperatorLabels(txn, "ghost", {{"gpu", "yes"}}, {}, "", &changed),
              StatusIsWithMessage(absl::StatusCode::kNotFound, "no agent named \"ghost\""));
  EXPECT_FALSE(changed);
  EXPECT_THAT(r.SetOperatorLabels(txn, "a1", {{"gpu", "yes"}}, {"arch"}, "", &changed),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(r.SetOperatorLabels(txn, "a1", {{"os", "bsd"}}, {"os"}, "", &changed),
              StatusIs(absl::StatusCode::kInvalidArgument));
  Labels many;
  for (int i = 0; i < 63; ++i) many[absl::StrCat("k", i)] = "v";
  EXPECT_THAT(r.SetOperatorLabels(txn, "a1", many, {}, "", &changed),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(r.Find("a1")->labels, (Labels{{"os", "linux"}, {"pool", "a"}}));
  ASSERT_OK(r.SetOperatorLabels(txn, "a1", {{"gpu", "yes"}}, {}, "", &changed));
  EXPECT_TRUE(changed);
  ASSERT_OK(r.SetOperatorLabels(txn, "a1", {{"gpu", "yes"}}, {}, "", &changed));
  EXPECT_FALSE(changed);
  Commit(txn);
  EXPECT_EQ(Kinds(), (std::vector<farm::v1::EventKind>{farm::v1::AGENT_REGISTERED,
                                                       farm::v1::AGENT_LABELED}));
}

TEST_F(AgentRegistryTest, RemoveIsRefusedWhileOnlineOrHoldingLeasesThenForgetsTheAgent) {
  AgentRegistry r = NewRegistry();
  RegisterCommitted(r, "a1", "s1");
  {
    Txn txn(&store_);
    EXPECT_THAT(r.Remove(txn, "ghost", {}, "alice"),
                StatusIsWithMessage(absl::StatusCode::kNotFound, "no agent named \"ghost\""));
    EXPECT_THAT(
        r.Remove(txn, "a1", {}, "alice"),
        StatusIsWithMessage(absl::StatusCode::kFailedPrecondition,
                            "agent \"a1\" is online: stop it first (it counts as offline after 3 s "
                            "without a call)"));
    clock_.AdvanceMs(3001);
    EXPECT_THAT(
        r.Remove(txn, "a1", {17}, "alice"),
        StatusIsWithMessage(absl::StatusCode::kFailedPrecondition,
                            "agent \"a1\" holds leases (jobs 17): it can be removed once it is "
                            "offline and they have ended"));
    ASSERT_NE(r.Find("a1"), nullptr);
    ASSERT_OK_AND_ASSIGN(farm::v1::AgentInfo removed, r.Remove(txn, "a1", {}, "alice"));
    EXPECT_EQ(removed.name(), "a1");
    EXPECT_EQ(removed.state(), "offline");
    EXPECT_EQ(r.Find("a1"), nullptr);
    Commit(txn);
  }
  AgentRegistry restarted = NewRegistry();
  ASSERT_OK(restarted.Recover(&store_));
  EXPECT_EQ(restarted.Find("a1"), nullptr);
  std::vector<farm::v1::Event> events = Events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].kind(), farm::v1::AGENT_REMOVED);
  EXPECT_EQ(events[1].reason(), "removed by alice");
}

TEST_F(AgentRegistryTest, AnAgentAnOperatorLabelledIsNotForgottenAndItsDrainNamesWho) {
  AgentRegistry r = NewRegistry();
  RegisterCommitted(r, "a1", "s1");
  RegisterCommitted(r, "a2", "s1");
  {
    Txn txn(&store_);
    bool changed;
    ASSERT_OK(r.SetOperatorLabels(txn, "a1", {}, {"pool"}, "bob", &changed));
    ASSERT_OK(r.SetOperatorDrain(txn, "a2", true, "bob"));
    EXPECT_THAT(r.SetOperatorDrain(txn, "", true, "bob"), StatusIs(absl::StatusCode::kNotFound));
    Commit(txn);
  }
  clock_.AdvanceMs(61'001);
  {
    Txn txn(&store_);
    r.Sweep(txn, {});
    Commit(txn);
  }
  EXPECT_NE(r.Find("a1"), nullptr);
  EXPECT_NE(r.Find("a2"), nullptr);
  std::vector<farm::v1::Event> events = Events();
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events[3].kind(), farm::v1::AGENT_DRAINING);
  EXPECT_EQ(events[3].reason(), "drained by bob");
}

}  // namespace
}  // namespace farm::coordinator
