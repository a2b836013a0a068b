// The M/M/c formulas against values worked by hand and against a simulation of the queue.
#include "coordinator/factory/capacity.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "tests/testing/queue_sim.h"

namespace farm::coordinator::factory {
namespace {

TEST(ErlangCTest, MatchesTheFormulaWorkedByHand) {
  EXPECT_NEAR(ErlangC(1, 0.5), 0.5, 1e-12);      // M/M/1: P(wait) = rho
  EXPECT_NEAR(ErlangC(2, 1.0), 1.0 / 3, 1e-12);  // (1/2 * 2) / (1 + 1 + 1)
  EXPECT_NEAR(ErlangC(3, 2.0), 4.0 / 9, 1e-12);  // (8/6 * 3) / (1 + 2 + 2 + 4)
  EXPECT_EQ(ErlangC(4, 4.0), 1.0);               // unstable: every arrival waits
  EXPECT_EQ(ErlangC(4, 0.0), 0.0);
  // Stays a probability for thousands of servers (the recurrence does not overflow).
  const double big = ErlangC(5000, 4900);
  EXPECT_GT(big, 0.0);
  EXPECT_LT(big, 1.0);
}

TEST(WaitQuantileTest, MM1HasAClosedForm) {
  // P(W > t) = rho * exp(-(mu - lambda) t): rho 0.5, mu - lambda 0.5 -> p95 = 2 ln 10.
  std::optional<double> p95 = WaitQuantile(1, 0.5, 1.0, 0.95);
  ASSERT_TRUE(p95.has_value());
  EXPECT_NEAR(*p95, 2 * std::log(10.0), 1e-9);
  EXPECT_EQ(WaitQuantile(1, 1.0, 1.0, 0.95), std::nullopt);  // rho = 1
  EXPECT_EQ(*WaitQuantile(10, 0.1, 1.0, 0.95), 0.0);         // hardly anyone waits
}

using farm::testing::Quantile;
using farm::testing::SimulateWaits;

TEST(WaitQuantileTest, AgreesWithASimulatedQueue) {
  // 8 slots, 80% busy: the simulated p95 within 10% of the formula's.
  const double lambda = 0.8 * 8 / 60.0;  // jobs per second; mean run 60 s
  const std::vector<double> waits = SimulateWaits(8, lambda, 60, 400'000, 7);
  const double simulated = Quantile(waits, 0.95);
  const double predicted = *WaitQuantile(8, lambda, 60, 0.95);
  EXPECT_NEAR(simulated, predicted, 0.1 * predicted) << "simulated " << simulated;
}

TEST(ServersForTest, TheAdvisedServersMeetTheTargetInASimulationAndOneFewerDoNot) {
  const double lambda = 1.0 / 6;  // a job every 6 s, each running 50 s: 8.3 slots busy
  const double service = 50;
  const double target = 30;
  std::optional<int> c = ServersFor(lambda, service, 0.95, target);
  ASSERT_TRUE(c.has_value());
  EXPECT_LE(*WaitQuantile(*c, lambda, service, 0.95), target);
  EXPECT_GT(WaitQuantile(*c - 1, lambda, service, 0.95).value_or(1e18), target);
  EXPECT_LE(Quantile(SimulateWaits(*c, lambda, service, 300'000, 11), 0.95), target);
  EXPECT_GT(Quantile(SimulateWaits(*c - 1, lambda, service, 300'000, 11), 0.95), target);
}

}  // namespace
}  // namespace farm::coordinator::factory
