#include "coordinator/scheduler/queue_index.h"

#include <gtest/gtest.h>

#include "tests/coordinator/scheduler/queue_test_util.h"

namespace farm::coordinator {
namespace {

using QueueIndexTest = QueuePartTest;

TEST_F(QueueIndexTest, PriorityThenSubmitOrderWithinALabelSet) {
  QueueIndex q(&sets_, /*window=*/2);
  Txn txn(&store_);
  for (auto [seq, prio] : std::vector<std::pair<uint64_t, int>>{{1, 0}, {2, 5}, {3, 0}, {4, 5}}) {
    q.Add(txn, NewJob(seq, prio));
  }
  Commit(txn);
  EXPECT_EQ(Drain(q, {}), (std::vector<uint64_t>{2, 4, 1, 3}));
}

TEST_F(QueueIndexTest, TheOrderHoldsAcrossRefillsOfASmallWindowAndARecovery) {
  QueueIndex q(&sets_, /*window=*/2);
  Txn txn(&store_);
  for (uint64_t seq = 1; seq <= 9; ++seq) q.Add(txn, NewJob(seq, seq % 3 == 0 ? 1 : 0));
  Commit(txn);
  // A new process: the windows are empty, the keys are in the store.
  LabelSets recovered;
  ASSERT_OK(recovered.Recover(&store_));
  QueueIndex fresh(&recovered, /*window=*/2);
  fresh.Reset();
  EXPECT_EQ(Drain(fresh, {}), (std::vector<uint64_t>{3, 6, 9, 1, 2, 4, 5, 7, 8}));
}

TEST_F(QueueIndexTest, AnAgentGetsOnlyJobsWhoseLabelsItHasAndTheBestHeadAcrossSets) {
  QueueIndex q(&sets_, 8);
  Txn txn(&store_);
  q.Add(txn, NewJob(1, 0, {{"os", "linux"}}));
  q.Add(txn, NewJob(2, 3, {{"os", "mac"}}));
  q.Add(txn, NewJob(3, 2, {}));
  Commit(txn);
  EXPECT_EQ(Drain(q, {{"os", "linux"}, {"arch", "x"}}), (std::vector<uint64_t>{3, 1}));
  EXPECT_EQ(Drain(q, {{"os", "mac"}}), (std::vector<uint64_t>{2}));
}

TEST_F(QueueIndexTest, ARequeuedJobGoesAheadOfNewOnesOfItsPriority) {
  QueueIndex q(&sets_, 8);
  Txn txn(&store_);
  q.Add(txn, NewJob(1));
  q.Add(txn, NewJob(2));
  farm::v1::Job requeued = NewJob(3);
  requeued.add_attempts()->set_epoch(7);
  q.Add(txn, requeued);
  Commit(txn);
  EXPECT_EQ(Drain(q, {}), (std::vector<uint64_t>{3, 1, 2}));
}

TEST_F(QueueIndexTest, RemoveTakesACancelledJobOutAndNewWorkIsReportedOncePerSet) {
  QueueIndex q(&sets_, 8);
  Txn txn(&store_);
  const farm::v1::Job a = NewJob(1, 0, {{"pool", "a"}});
  q.Add(txn, a);
  q.Add(txn, NewJob(2, 0, {{"pool", "a"}}));
  q.Add(txn, NewJob(3, 0, {{"pool", "b"}}));
  EXPECT_EQ(q.TakeNewWork().size(), 2u);
  EXPECT_TRUE(q.TakeNewWork().empty());
  q.Remove(txn, a);
  Commit(txn);
  EXPECT_EQ(Drain(q, {{"pool", "a"}}), (std::vector<uint64_t>{2}));
  uint64_t b = sets_.Intern(txn, NewJob(3, 0, {{"pool", "b"}}).spec().labels());
  EXPECT_TRUE(q.Matches(b, {{"pool", "b"}, {"os", "linux"}}));
  EXPECT_FALSE(q.Matches(b, {{"pool", "a"}}));
  Txn pop(&store_);
  ASSERT_OK_AND_ASSIGN(std::optional<uint64_t> head, q.PopHead(pop, b));
  EXPECT_EQ(head, 3u);
}

TEST_F(QueueIndexTest, AReadErrorDuringARefillLeavesTheIndexUsable) {
  QueueIndex q(&sets_, 1);
  Txn txn(&store_);
  for (uint64_t seq = 1; seq <= 3; ++seq) q.Add(txn, NewJob(seq));
  Commit(txn);
  q.Reset();
  store_.FailReads(Cf::kQueue, absl::UnavailableError("disk"), 1);
  Txn failing(&store_);
  EXPECT_THAT(q.PopFor(failing, {}), testing::StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(Drain(q, {}), (std::vector<uint64_t>{1, 2, 3}));
}

}  // namespace
}  // namespace farm::coordinator
