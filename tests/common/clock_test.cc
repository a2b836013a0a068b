// FakeClock's jumps reach the code that sleeps until one of its deadlines; the real clock's
// time flows and never calls.
#include "common/clock.h"

#include <gtest/gtest.h>

#include <optional>
#include <utility>
#include <vector>

namespace farm::common {
namespace {

TEST(FakeClockTest, AdvanceMovesBothTimesAndCallsTheSubscribersBeforeReturning) {
  FakeClock clock(1'000);
  std::vector<int64_t> seen;
  Clock::Subscription subscription = clock.OnJump([&] { seen.push_back(clock.MonotonicMs()); });
  clock.AdvanceMs(250);
  EXPECT_EQ(clock.NowMs(), 1'250);
  EXPECT_EQ(clock.MonotonicMs(), 1'250);
  clock.AdvanceMs(1);
  EXPECT_EQ(seen, (std::vector<int64_t>{1'250, 1'251}));
}

TEST(FakeClockTest, AnEndedSubscriptionIsNotCalled) {
  FakeClock clock;
  int calls = 0;
  std::optional<Clock::Subscription> subscription = clock.OnJump([&] { ++calls; });
  clock.AdvanceMs(1);
  Clock::Subscription moved = std::move(*subscription);
  subscription.reset();  // the moved-from one ends nothing
  clock.AdvanceMs(1);
  EXPECT_EQ(calls, 2);
  moved = Clock::Subscription();
  clock.AdvanceMs(1);
  EXPECT_EQ(calls, 2);
}

TEST(RealClockTest, MonotonicTimeDoesNotGoBackAndNoJumpIsEverReported) {
  int calls = 0;
  Clock::Subscription subscription = RealClock()->OnJump([&] { ++calls; });
  const int64_t first = RealClock()->MonotonicMs();
  EXPECT_GE(RealClock()->MonotonicMs(), first);
  EXPECT_GT(RealClock()->NowMs(), 1'600'000'000'000);  // after 2020: Unix milliseconds
  EXPECT_EQ(calls, 0);
}

}  // namespace
}  // namespace farm::common
