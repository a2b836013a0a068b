#include "coordinator/scheduler/concurrency_groups.h"

#include <gtest/gtest.h>

#include "coordinator/scheduler/job_records.h"
#include "tests/coordinator/scheduler/part_test_util.h"

namespace farm::coordinator {
namespace {

class ConcurrencyGroupsTest : public PartTest {
 protected:
  farm::v1::Job GroupJob(uint64_t seq, int limit = 2) {
    farm::v1::Job job = NewJob(seq);
    job.mutable_spec()->set_concurrency_group("deploy");
    job.mutable_spec()->set_concurrency(limit);
    return job;
  }
  // Admits `job`; when it must wait, writes it WAITING as the lifecycle would.
  bool Admit(ConcurrencyGroups& g, Txn& txn, farm::v1::Job job) {
    std::string reason;
    const bool admitted = g.Admit(txn, job, &reason);
    job.set_state(admitted ? farm::v1::QUEUED : farm::v1::WAITING);
    if (!admitted) {
      EXPECT_NE(reason.find("concurrency group deploy (2 of 2 taken)"), std::string::npos);
    }
    jobs::Put(txn, job);
    return admitted;
  }
  std::vector<uint64_t> Seqs(const std::vector<farm::v1::Job>& jobs) {
    std::vector<uint64_t> out;
    for (const auto& j : jobs) out.push_back(j.seq());
    return out;
  }
};

TEST_F(ConcurrencyGroupsTest, AtMostTheLimitHoldPlacesAndWaitersGetThemInSubmitOrder) {
  ConcurrencyGroups g;
  Txn txn(&store_);
  EXPECT_TRUE(Admit(g, txn, GroupJob(1)));
  EXPECT_TRUE(Admit(g, txn, GroupJob(2)));
  EXPECT_FALSE(Admit(g, txn, GroupJob(3)));
  EXPECT_FALSE(Admit(g, txn, GroupJob(4)));
  Commit(txn);
  // A restart keeps both the places and the waiters.
  ConcurrencyGroups recovered;
  ASSERT_OK(recovered.Recover(&store_));
  Txn end(&store_);
  ASSERT_OK_AND_ASSIGN(std::vector<farm::v1::Job> next, recovered.Release(end, "deploy", 2));
  EXPECT_EQ(Seqs(next), (std::vector<uint64_t>{3}));
  ASSERT_OK_AND_ASSIGN(next, recovered.Release(end, "deploy", 2));  // released twice: nothing
  EXPECT_TRUE(next.empty());
  ASSERT_OK_AND_ASSIGN(next, recovered.Release(end, "deploy", 1));
  EXPECT_EQ(Seqs(next), (std::vector<uint64_t>{4}));
  Commit(end);
}

TEST_F(ConcurrencyGroupsTest, AWithdrawnWaiterIsSkippedAndNobodyOvertakesAWaiter) {
  ConcurrencyGroups g;
  Txn txn(&store_);
  farm::v1::Job one = GroupJob(1, 1), two = GroupJob(2, 1), three = GroupJob(3, 1);
  std::string reason;
  EXPECT_TRUE(g.Admit(txn, one, &reason));
  EXPECT_FALSE(g.Admit(txn, two, &reason));
  two.set_state(farm::v1::WAITING);
  jobs::Put(txn, two);
  ASSERT_OK(g.Withdraw(txn, two));  // cancelled while waiting
  two.set_state(farm::v1::CANCELLED);
  jobs::Put(txn, two);
  EXPECT_FALSE(g.Admit(txn, three, &reason));
  three.set_state(farm::v1::WAITING);
  jobs::Put(txn, three);
  ASSERT_OK_AND_ASSIGN(std::vector<farm::v1::Job> next, g.Release(txn, "deploy", 1));
  EXPECT_EQ(Seqs(next), (std::vector<uint64_t>{3}));
  EXPECT_TRUE(g.Admit(txn, NewJob(9), &reason));  // no group: always
}

}  // namespace
}  // namespace farm::coordinator
