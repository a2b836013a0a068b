// The flow metrics (scheduler/flow_metrics.h) as the scheduler observes them, with a fake clock:
// each figure is the time the test let pass.
#include "coordinator/scheduler/flow_metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/numbers.h"
#include "tests/coordinator/scheduler_fixture.h"
#include "tests/testing/status_matchers.h"

namespace farm::coordinator {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class FlowMetricsTest : public SchedulerTest {
 protected:
  std::string Exposition() { return registry_.Expose(); }
  // The value of the sample `series` (name and labels) in the exposition; -1 when absent.
  double Value(const std::string& series) {
    const std::string text = Exposition();
    const size_t at = text.find("\n" + series + " ");
    double value = -1;
    if (at == std::string::npos) return value;
    const size_t start = at + series.size() + 2;
    EXPECT_TRUE(absl::SimpleAtod(text.substr(start, text.find('\n', start) - start), &value));
    return value;
  }
};

TEST_F(FlowMetricsTest, QueueWaitRunAndLeadTimeAreTheTimesBetweenTheTransitions) {
  Register("a1", {{"os", "linux"}});
  const std::string id = Submit(Spec("j", 0, {{"os", "linux"}}));
  clock_.AdvanceMs(5000);
  ASSERT_OK_AND_ASSIGN(farm::v1::LeaseResponse lease, Lease("a1"));
  ASSERT_EQ(lease.job().id(), id);
  clock_.AdvanceMs(2000);  // within the lease TTL (3 s)
  ASSERT_OK(Complete(lease.lease(), farm::v1::ATTEMPT_SUCCEEDED));
  const std::string text = Exposition();
  EXPECT_THAT(text, HasSubstr("\nfarm_job_queue_wait_seconds_sum{labels=\"os=linux\"} 5\n"));
  EXPECT_THAT(text, HasSubstr("\nfarm_job_queue_wait_seconds_count{labels=\"os=linux\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("\nfarm_job_run_seconds_sum{labels=\"os=linux\"} 2\n"));
  EXPECT_THAT(
      text,
      HasSubstr("\nfarm_job_lead_time_seconds_sum{labels=\"os=linux\",state=\"succeeded\"} 7\n"));
  EXPECT_THAT(text, HasSubstr("\nfarm_attempts_total{outcome=\"succeeded\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("\nfarm_lease_expirations_total 0\n"));
}

TEST_F(FlowMetricsTest, ARequeuedAttemptWaitsFromItsRequeueAndAnExpiredLeaseIsCounted) {
  Register("a1");
  const std::string id = Submit(Spec("j"));
  clock_.AdvanceMs(2000);
  ASSERT_OK_AND_ASSIGN(farm::v1::LeaseResponse first, Lease("a1"));
  ASSERT_EQ(first.job().id(), id);
  ExpireLeases();  // 6 s later the attempt is lost and the job queued again (one retry)
  EXPECT_EQ(Job(id).state(), farm::v1::QUEUED);
  const int64_t requeued = Job(id).queued_ms();
  EXPECT_GT(requeued, 0);
  Register("a1", {}, "s2");
  clock_.AdvanceMs(1000);
  ASSERT_OK_AND_ASSIGN(farm::v1::LeaseResponse second, Lease("a1", 0, "s2"));
  ASSERT_EQ(second.job().id(), id);
  ASSERT_OK(Complete(second.lease(), farm::v1::ATTEMPT_FAILED));
  const std::string text = Exposition();
  EXPECT_THAT(text, HasSubstr("\nfarm_lease_expirations_total 1\n"));
  EXPECT_THAT(text, HasSubstr("\nfarm_attempts_total{outcome=\"lost\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("\nfarm_attempts_total{outcome=\"failed\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("\nfarm_job_queue_wait_seconds_count{labels=\"\"} 2\n"));
  // 2 s before the first lease, then from the requeue to the second lease.
  const farm::v1::Job job = Job(id);
  ASSERT_EQ(job.attempts_size(), 2);
  const double second_wait = static_cast<double>(job.attempts(1).started_ms() - requeued) / 1000;
  EXPECT_GE(second_wait, 1.0);
  EXPECT_NEAR(Value("farm_job_queue_wait_seconds_sum{labels=\"\"}"), 2 + second_wait, 1e-9);
  EXPECT_THAT(text,
              HasSubstr("\nfarm_job_lead_time_seconds_count{labels=\"\",state=\"failed\"} 1\n"));
  EXPECT_THAT(text, Not(HasSubstr("state=\"succeeded\"} 1\n")));
}

}  // namespace
}  // namespace farm::coordinator
