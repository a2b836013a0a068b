#include "coordinator/factory/capacity.h"

#include <algorithm>
#include <cmath>

namespace farm::coordinator::factory {

double ErlangC(int servers, double offered_load) {
  if (servers <= 0 || offered_load >= servers) return 1;
  if (offered_load <= 0) return 0;
  double b = 1;  // Erlang B with 0 servers
  for (int k = 1; k <= servers; ++k) b = offered_load * b / (k + offered_load * b);
  return servers * b / (servers - offered_load * (1 - b));
}

std::optional<double> WaitQuantile(int servers, double arrivals_per_second, double service_seconds,
                                   double quantile) {
  if (arrivals_per_second <= 0 || service_seconds <= 0) return 0.0;
  const double load = arrivals_per_second * service_seconds;
  if (servers <= 0 || load >= servers) return std::nullopt;
  const double c = ErlangC(servers, load);
  const double tail = 1 - quantile;  // P(wait > t) = tail
  if (c <= tail) return 0.0;
  const double drain = servers / service_seconds - arrivals_per_second;  // > 0 when stable
  return std::log(c / tail) / drain;
}

std::optional<int> ServersFor(double arrivals_per_second, double service_seconds, double quantile,
                              double target_seconds, int max_servers) {
  const double load = std::max(0.0, arrivals_per_second * service_seconds);
  // Below floor(load) + 1 servers the queue grows without bound.
  for (int c = std::max(1, static_cast<int>(std::floor(load)) + 1); c <= max_servers; ++c) {
    std::optional<double> wait = WaitQuantile(c, arrivals_per_second, service_seconds, quantile);
    if (wait.has_value() && *wait <= target_seconds) return c;
  }
  return std::nullopt;
}

}  // namespace farm::coordinator::factory
