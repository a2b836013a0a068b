#include "common/backoff.h"

#include <algorithm>

namespace farm::common {

Backoff::Backoff(int64_t initial_ms, int64_t max_ms, double multiplier)
    : initial_ms_(initial_ms),
      max_ms_(max_ms),
      multiplier_(multiplier),
      current_ms_(initial_ms),
      rng_(std::random_device{}()) {}

int64_t Backoff::NextDelayMs() {
  std::uniform_int_distribution<int64_t> dist(current_ms_ / 2, current_ms_);
  const int64_t delay = dist(rng_);
  current_ms_ = std::min<int64_t>(max_ms_, static_cast<int64_t>(current_ms_ * multiplier_));
  return delay;
}

void Backoff::Reset() { current_ms_ = initial_ms_; }

}  // namespace farm::common
