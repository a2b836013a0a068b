// Time source. Domain code takes a Clock* so that unit tests can drive time by hand.
// Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace farm::common {

class Clock {
 public:
  // A registration made by OnJump(). Destroying it (or assigning over it) ends the calls; it
  // waits for a call in progress. Default-constructed: registers nothing.
  class Subscription {
   public:
    Subscription() = default;
    explicit Subscription(std::function<void()> end) : end_(std::move(end)) {}
    Subscription(Subscription&& other) noexcept;
    Subscription& operator=(Subscription&& other) noexcept;
    ~Subscription() { End(); }

   private:
    void End();
    std::function<void()> end_;
  };

  virtual ~Clock() = default;
  // Wall-clock time in Unix milliseconds, for records users read.
  virtual int64_t NowMs() const = 0;
  // Monotonic milliseconds for deadlines and timeouts.
  virtual int64_t MonotonicMs() const = 0;

  // For a thread that sleeps until a MonotonicMs() deadline with a timed wait, which notices
  // time that flows but not time that jumps: `on_jump` runs each time this clock jumps ahead
  // (FakeClock::AdvanceMs), on the thread that moved it and before that call returns, so that
  // the sleeper looks at its deadlines again. Real time never jumps: the real clock never calls
  // it. `on_jump` may take its owner's locks, so the owner must hold none of them while it
  // subscribes or ends the subscription.
  virtual Subscription OnJump(std::function<void()> on_jump);
};

// The process-wide real clock.
Clock* RealClock();

class FakeClock : public Clock {
 public:
  explicit FakeClock(int64_t start_ms = 1'700'000'000'000) : now_ms_(start_ms) {}
  int64_t NowMs() const override { return now_ms_.load(); }
  int64_t MonotonicMs() const override { return now_ms_.load(); }
  // Moves both times ahead by `ms`, then runs the OnJump() callbacks.
  void AdvanceMs(int64_t ms);
  Subscription OnJump(std::function<void()> on_jump) override;

 private:
  std::atomic<int64_t> now_ms_;
  // Held while the callbacks run, so that ending a subscription waits for its call.
  absl::Mutex mu_;
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<int64_t, std::function<void()>> on_jump_ ABSL_GUARDED_BY(mu_);
};

}  // namespace farm::common
