#include "coordinator/scheduler/lease_table.h"

#include <gtest/gtest.h>

#include "coordinator/scheduler/job_records.h"
#include "tests/coordinator/scheduler/part_test_util.h"

namespace farm::coordinator {
namespace {

using testing::StatusIs;

class LeaseTableTest : public PartTest {
 protected:
  // A RUNNING job with one attempt leased to `agent` with a fresh epoch, written.
  farm::v1::LeaseRef Grant(LeaseTable& t, uint64_t seq, const std::string& agent) {
    Txn txn(&store_);
    farm::v1::Job job = NewJob(seq);
    job.set_state(farm::v1::RUNNING);
    farm::v1::Attempt* at = job.add_attempts();
    at->set_number(1);
    at->set_agent(agent);
    at->set_epoch(t.NextEpoch(txn));
    jobs::Put(txn, job);
    t.Add(txn, job, agent);
    Commit(txn);
    farm::v1::LeaseRef ref;
    ref.set_job_id(job.id());
    ref.set_attempt(1);
    ref.set_epoch(at->epoch());
    return ref;
  }
};

TEST_F(LeaseTableTest, EpochsStrictlyIncreaseAcrossARestart) {
  LeaseTable t(&clock_, 3000);
  const farm::v1::LeaseRef a = Grant(t, 1, "a1");
  const farm::v1::LeaseRef b = Grant(t, 2, "a1");
  EXPECT_LT(a.epoch(), b.epoch());
  LeaseTable restarted(&clock_, 3000);
  ASSERT_OK(restarted.Recover(&store_));
  const farm::v1::LeaseRef c = Grant(restarted, 3, "a2");
  EXPECT_LT(b.epoch(), c.epoch());
}

TEST_F(LeaseTableTest, FencingRefusesStaleEpochsEndedLeasesAndOtherHolders) {
  LeaseTable t(&clock_, 3000);
  farm::v1::LeaseRef ref = Grant(t, 1, "a1");
  ASSERT_OK(t.Check(ref));
  const std::string holder = "a1", other = "a2";
  ASSERT_OK(t.Check(ref, &holder));
  EXPECT_THAT(t.Check(ref, &other), StatusIs(absl::StatusCode::kPermissionDenied));
  farm::v1::LeaseRef stale = ref;
  stale.set_epoch(ref.epoch() - 1);
  EXPECT_THAT(t.Check(stale), StatusIs(absl::StatusCode::kFailedPrecondition));
  farm::v1::LeaseRef bad = ref;
  bad.set_job_id("x1");
  EXPECT_THAT(t.Check(bad), StatusIs(absl::StatusCode::kInvalidArgument));
  Txn txn(&store_);
  ASSERT_TRUE(t.Take(txn, 1).has_value());
  Commit(txn);
  EXPECT_THAT(t.Check(ref), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(t.size(), 0u);
}

TEST_F(LeaseTableTest, LeasesExpireOneTtlAfterTheirLastRenewal) {
  LeaseTable t(&clock_, 3000);
  Grant(t, 1, "a1");
  Grant(t, 2, "a2");
  clock_.AdvanceMs(2000);
  t.Renew(*t.Find(2));
  clock_.AdvanceMs(1000);
  EXPECT_EQ(t.Expired(), (std::vector<uint64_t>{1}));
  clock_.AdvanceMs(2000);
  EXPECT_EQ(t.Expired(), (std::vector<uint64_t>{1, 2}));
}

TEST_F(LeaseTableTest, ARecoveredLeaseGetsAFullTtlAndKeepsItsHolderAndProgress) {
  {
    LeaseTable t(&clock_, 3000);
    Grant(t, 1, "a1");
    Txn txn(&store_);
    farm::v1::Attempt progress = t.Find(1)->job.attempts(0);
    progress.add_steps()->set_state(farm::v1::STEP_RUNNING);
    jobs::PutProgress(txn, 1, progress);
    Commit(txn);
  }
  clock_.AdvanceMs(10'000);  // far past the TTL while the coordinator was down
  LeaseTable t(&clock_, 3000);
  ASSERT_OK(t.Recover(&store_));
  EXPECT_TRUE(t.Expired().empty());
  ASSERT_NE(t.Find(1), nullptr);
  EXPECT_EQ(t.Find(1)->holder, "a1");
  EXPECT_EQ(t.Find(1)->job.attempts(0).steps(0).state(), farm::v1::STEP_RUNNING);
  EXPECT_EQ(t.HeldBy("a1"), (std::vector<uint64_t>{1}));
  EXPECT_EQ(t.ByHolder().at("a1"), (std::vector<uint64_t>{1}));
}

TEST_F(LeaseTableTest, AnActiveJobWithoutARecordIsDataLoss) {
  Txn txn(&store_);
  txn.Put(Cf::kActive, keys::JobKey(5), "");
  Commit(txn);
  LeaseTable t(&clock_, 3000);
  EXPECT_THAT(t.Recover(&store_), StatusIs(absl::StatusCode::kDataLoss));
}

}  // namespace
}  // namespace farm::coordinator
