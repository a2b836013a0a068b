// Exponential backoff with full jitter for retrying calls that failed with UNAVAILABLE (or
// another code the caller names). Not thread-safe; one per retry loop.
#pragma once

#include <cstdint>
#include <random>

namespace farm::common {

class Backoff {
 public:
  Backoff(int64_t initial_ms = 100, int64_t max_ms = 5000, double multiplier = 2.0);

  // The delay before the next try: uniform in [0, current], then current grows.
  int64_t NextDelayMs();
  void Reset();

 private:
  int64_t initial_ms_;
  int64_t max_ms_;
  double multiplier_;
  int64_t current_ms_;
  std::mt19937_64 rng_;
};

}  // namespace farm::common
