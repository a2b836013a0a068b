#include "coordinator/scheduler/parked_calls.h"

#include <gtest/gtest.h>

#include "absl/synchronization/notification.h"
#include "tests/coordinator/scheduler/part_test_util.h"

namespace farm::coordinator {
namespace {

// Parked calls hold engine timers, so these tests run their steps as engine commands.
class ParkedCallsTest : public PartTest {
 protected:
  void SetUp() override { engine_.Start(); }
  void TearDown() override { engine_.Stop(); }

  // Runs fn on the engine thread and waits for it.
  void OnEngine(std::function<void(Txn&)> fn) {
    absl::Notification done;
    ASSERT_TRUE(engine_.Post([&](Txn& txn) {
      fn(txn);
      done.Notify();
    }));
    ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  }

  LeaseWaiter Waiter(uint64_t id, const std::string& agent, std::vector<std::string>* answers) {
    LeaseWaiter w;
    w.call_id = id;
    w.agent = agent;
    w.due_ms = clock_.MonotonicMs() + 1000;
    w.done = [answers, agent](absl::StatusOr<farm::v1::LeaseResponse> r) {
      answers->push_back(agent + (r.ok() ? ":ok" : ":" + std::string(r.status().message())));
    };
    return w;
  }

  Engine engine_{&store_, &clock_};
  ParkedCalls parked_{&engine_};
};

TEST_F(ParkedCallsTest, EachWaitEndsOnceWhicheverWayItEnds) {
  std::vector<std::string> answers;  // engine thread only
  OnEngine([&](Txn&) {
    for (uint64_t id = 1; id <= 3; ++id) {
      parked_.ParkLease(Waiter(id, "a" + std::to_string(id), &answers),
                        [](LeaseWaiter w) { w.done(absl::DeadlineExceededError("due")); });
    }
    // Taken by its id (the client went away): not answered by its timer any more.
    std::optional<LeaseWaiter> w = parked_.TakeLease(2);
    ASSERT_TRUE(w.has_value());
    w->done(absl::CancelledError("gone"));
    EXPECT_FALSE(parked_.TakeLease(2).has_value());
  });
  clock_.AdvanceMs(1000);
  OnEngine([&](Txn&) {});  // the due timers run in this group, before the command
  OnEngine([&](Txn&) {
    EXPECT_EQ(answers, (std::vector<std::string>{"a2:gone", "a1:due", "a3:due"}));
    EXPECT_TRUE(parked_.empty());
  });
}

TEST_F(ParkedCallsTest, VisitingServesInArrivalOrderAndStops) {
  std::vector<std::string> answers;
  OnEngine([&](Txn&) {
    for (uint64_t id = 1; id <= 4; ++id) {
      parked_.ParkLease(Waiter(id, id % 2 ? "odd" : "even", &answers), [](LeaseWaiter) {});
    }
    int handed = 0;
    parked_.VisitLeases([&](LeaseWaiter& w) {
      if (w.agent != "odd") return ParkedCalls::Visit::kKeep;
      if (handed == 1) return ParkedCalls::Visit::kStop;
      ++handed;
      w.done(farm::v1::LeaseResponse());
      return ParkedCalls::Visit::kTake;
    });
    EXPECT_EQ(answers, (std::vector<std::string>{"odd:ok"}));
    std::vector<LeaseWaiter> rest = parked_.TakeAllLeases();
    ASSERT_EQ(rest.size(), 3u);
    EXPECT_EQ(rest[0].call_id, 2u);
    EXPECT_EQ(rest[1].call_id, 3u);
    EXPECT_EQ(rest[2].call_id, 4u);
  });
}

TEST_F(ParkedCallsTest, HeartbeatsLeaveByTheirIdOrTheirTimer) {
  int due = 0;
  OnEngine([&](Txn&) {
    for (uint64_t id = 10; id <= 11; ++id) {
      HeartbeatWaiter w;
      w.call_id = id;
      w.done = [](absl::StatusOr<farm::v1::HeartbeatResponse>) {};
      parked_.ParkHeartbeat(std::move(w), clock_.MonotonicMs() + 500,
                            [&](HeartbeatWaiter) { ++due; });
    }
    EXPECT_TRUE(parked_.TakeHeartbeat(10).has_value());
  });
  clock_.AdvanceMs(500);
  OnEngine([&](Txn&) {});
  OnEngine([&](Txn&) {
    EXPECT_EQ(due, 1);
    EXPECT_TRUE(parked_.empty());
  });
}

}  // namespace
}  // namespace farm::coordinator
