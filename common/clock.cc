#include "common/clock.h"

#include <chrono>
#include <utility>

namespace farm::common {
namespace {

class SystemClock : public Clock {
 public:
  int64_t NowMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  int64_t MonotonicMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
};

}  // namespace

Clock::Subscription::Subscription(Subscription&& other) noexcept
    : end_(std::exchange(other.end_, nullptr)) {}

Clock::Subscription& Clock::Subscription::operator=(Subscription&& other) noexcept {
  if (this != &other) {
    End();
    end_ = std::exchange(other.end_, nullptr);
  }
  return *this;
}

void Clock::Subscription::End() {
  if (end_ == nullptr) return;
  std::function<void()> end = std::exchange(end_, nullptr);
  end();
}

Clock::Subscription Clock::OnJump(std::function<void()> /*on_jump*/) { return Subscription(); }

Clock* RealClock() {
  static SystemClock* clock = new SystemClock();
  return clock;
}

void FakeClock::AdvanceMs(int64_t ms) {
  now_ms_ += ms;
  absl::MutexLock lock(&mu_);
  for (auto& [id, on_jump] : on_jump_) on_jump();
}

Clock::Subscription FakeClock::OnJump(std::function<void()> on_jump) {
  absl::MutexLock lock(&mu_);
  const int64_t id = next_id_++;
  on_jump_.emplace(id, std::move(on_jump));
  return Subscription([this, id] {
    absl::MutexLock lock(&mu_);
    on_jump_.erase(id);
  });
}

}  // namespace farm::common
