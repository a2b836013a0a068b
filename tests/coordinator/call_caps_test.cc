// Unit tests of the per-identity call caps (coordinator/service/call_caps.h): no sockets.
#include "coordinator/service/call_caps.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <utility>
#include <vector>

#include "tests/testing/status_matchers.h"

namespace farm::coordinator {
namespace {

TEST(CallCapTest, AnIdentityGetsUpToItsCapAndIsThenRefusedNamingTheFlag) {
  CallCap cap("WatchLogs streams", "--max_watch_streams_per_identity", 3);
  std::vector<CallCap::Slot> held;
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(CallCap::Slot slot, cap.Acquire("viewer ci"));
    held.push_back(std::move(slot));
  }
  absl::StatusOr<CallCap::Slot> fourth = cap.Acquire("viewer ci");
  ASSERT_EQ(fourth.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(fourth.status().message(),
            "viewer ci already holds 3 open WatchLogs streams, the most one caller may "
            "(--max_watch_streams_per_identity=3): close some first, or raise "
            "--max_watch_streams_per_identity on the coordinator");
  EXPECT_EQ(cap.open("viewer ci"), 3);
  // Another identity is not held back.
  ASSERT_OK_AND_ASSIGN(CallCap::Slot other, cap.Acquire("viewer alice"));
  EXPECT_EQ(cap.open("viewer alice"), 1);
  EXPECT_EQ(cap.total(), 4);
}

TEST(CallCapTest, ASlotIsGivenBackOnceWhenItGoes) {
  CallCap cap("parked calls", "--max_parked_calls_per_identity", 1);
  {
    ASSERT_OK_AND_ASSIGN(CallCap::Slot slot, cap.Acquire("agent a1"));
    EXPECT_EQ(cap.open("agent a1"), 1);
    CallCap::Slot moved = std::move(slot);  // the moved-from slot gives nothing back
    EXPECT_EQ(cap.open("agent a1"), 1);
    EXPECT_FALSE(cap.Acquire("agent a1").ok());
    moved.Reset();
    moved.Reset();  // at most once
    EXPECT_EQ(cap.open("agent a1"), 0);
  }
  EXPECT_EQ(cap.total(), 0);
  ASSERT_OK_AND_ASSIGN(CallCap::Slot again, cap.Acquire("agent a1"));
  // Assigning over a held slot gives that one back.
  again = CallCap::Slot();
  EXPECT_EQ(cap.open("agent a1"), 0);
  ASSERT_OK_AND_ASSIGN(CallCap::Slot last, cap.Acquire("agent a1"));
  EXPECT_EQ(cap.total(), 1);
}

TEST(CallCapTest, ASlotMovedIntoAHolderIsGivenBackByTheHolder) {
  CallCap cap("parked calls", "--max_parked_calls_per_identity", 2);
  struct Call {
    CallCap::Slot slot;
  };
  auto call = std::make_unique<Call>();
  ASSERT_OK_AND_ASSIGN(call->slot, cap.Acquire("agent a1"));
  EXPECT_EQ(cap.total(), 1);
  call.reset();  // what a reactor's OnDone does
  EXPECT_EQ(cap.total(), 0);
  EXPECT_EQ(cap.open("agent a1"), 0);
}

TEST(CallCapTest, ConcurrentCallersNeverExceedTheCapAndLeaveNothingCounted) {
  constexpr int kCap = 3;
  CallCap cap("parked calls", "--max_parked_calls_per_identity", kCap);
  std::atomic<int> inside{0};
  std::atomic<int> most{0};
  std::atomic<int> refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 5'000; ++i) {
        absl::StatusOr<CallCap::Slot> slot = cap.Acquire("agent a1");
        if (!slot.ok()) {
          ++refused;
          continue;
        }
        const int now = ++inside;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        --inside;  // before the slot goes
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_LE(most.load(), kCap);
  EXPECT_EQ(cap.total(), 0);
  EXPECT_EQ(cap.open("agent a1"), 0);
  ASSERT_OK_AND_ASSIGN(CallCap::Slot slot, cap.Acquire("agent a1"));
  EXPECT_EQ(cap.total(), 1);
}

}  // namespace
}  // namespace farm::coordinator
