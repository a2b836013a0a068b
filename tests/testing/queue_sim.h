// A simulation of an M/M/c queue, to check capacity advice against: Poisson arrivals at
// `lambda` a second, exponential service times of mean `service` seconds, `servers` servers,
// first come first served. Deterministic for a seed (on one standard library).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <queue>
#include <random>
#include <vector>

namespace farm::testing {

// The waits (seconds) of `n` customers.
inline std::vector<double> SimulateWaits(int servers, double lambda, double service, int n,
                                         uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::exponential_distribution<double> gap(lambda);
  std::exponential_distribution<double> work(1 / service);
  // When each server is next free; the earliest takes the next customer.
  std::priority_queue<double, std::vector<double>, std::greater<>> free_at;
  for (int i = 0; i < servers; ++i) free_at.push(0);
  std::vector<double> waits;
  waits.reserve(static_cast<size_t>(n));
  double t = 0;
  for (int i = 0; i < n; ++i) {
    t += gap(rng);
    const double start = std::max(t, free_at.top());
    free_at.pop();
    free_at.push(start + work(rng));
    waits.push_back(start - t);
  }
  return waits;
}

// The q-quantile of `v` (a copy is sorted).
inline double Quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

}  // namespace farm::testing
