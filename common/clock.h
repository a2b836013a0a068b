// Time source. Domain code takes a Clock* so that unit tests can drive time by hand.
// Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>

namespace farm::common {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time in Unix milliseconds, for records users read.
  virtual int64_t NowMs() const = 0;
  // Monotonic milliseconds for deadlines and timeouts.
  virtual int64_t MonotonicMs() const = 0;
};

// The process-wide real clock.
Clock* RealClock();

class FakeClock : public Clock {
 public:
  explicit FakeClock(int64_t start_ms = 1'700'000'000'000) : now_ms_(start_ms) {}
  int64_t NowMs() const override { return now_ms_.load(); }
  int64_t MonotonicMs() const override { return now_ms_.load(); }
  void AdvanceMs(int64_t ms) { now_ms_ += ms; }

 private:
  std::atomic<int64_t> now_ms_;
};

}  // namespace farm::common
