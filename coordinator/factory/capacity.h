// Capacity from queueing theory: the M/M/c queue (Poisson arrivals at rate lambda, exponential
// service times of mean S, c servers), through the Erlang C formula. A pool of agents with c
// slots fed by its label set's jobs is such a queue, to a first approximation; the factory
// report uses it to say how many slots a pool needs for its queue wait to meet a target.
//
//   offered load  a = lambda * S            (erlangs; the slots busy on average)
//   utilisation   rho = a / c               (stable only below 1)
//   P(wait > 0)   = C(c, a)                 (Erlang C)
//   P(wait > t)   = C(c, a) * exp(-(c/S - lambda) * t)
//
// Pure functions; no state.
#pragma once

#include <cstdint>
#include <optional>

namespace farm::coordinator::factory {

// The probability that an arrival waits at all, C(c, a); 1 when the queue is unstable (a >= c).
// Computed through Erlang B's recurrence, which stays accurate for thousands of servers.
double ErlangC(int servers, double offered_load);

// The wait (seconds) that a share `quantile` of arrivals do not exceed, for an M/M/c queue;
// nullopt when it is unstable (arrivals at least as fast as the servers can work).
std::optional<double> WaitQuantile(int servers, double arrivals_per_second, double service_seconds,
                                   double quantile);

// The fewest servers (at least 1) whose `quantile` wait is at most `target_seconds`; searched up
// to `max_servers` (nullopt past it).
std::optional<int> ServersFor(double arrivals_per_second, double service_seconds, double quantile,
                              double target_seconds, int max_servers = 100'000);

}  // namespace farm::coordinator::factory
