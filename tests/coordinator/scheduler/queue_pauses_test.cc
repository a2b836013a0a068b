// The queue index's pauses and reprioritize (queue_index.h), on the in-memory store.
#include <gtest/gtest.h>

#include "coordinator/scheduler/queue_index.h"
#include "tests/coordinator/scheduler/queue_test_util.h"

namespace farm::coordinator {
namespace {

using QueuePausesTest = QueuePartTest;

const Labels kLinuxX86 = {{"arch", "x86"}, {"os", "linux"}};

TEST_F(QueuePausesTest, APauseHoldsEverySetThatContainsTheSelectorAndNoOther) {
  QueueIndex q(&sets_, 8);
  Txn txn(&store_);
  q.Add(txn, NewJob(1, 0, {{"os", "linux"}}));
  q.Add(txn, NewJob(2, 0, {{"os", "linux"}, {"arch", "x86"}}));
  q.Add(txn, NewJob(3, 0, {{"os", "mac"}}));
  q.Add(txn, NewJob(4, 0, {}));
  EXPECT_TRUE(q.Pause(txn, {{"os", "linux"}}, 1000));
  EXPECT_FALSE(q.Pause(txn, {{"os", "linux"}}, 2000));  // already: nothing changes
  Commit(txn);
  EXPECT_EQ(q.pauses().at({{"os", "linux"}}), 1000);
  // An agent that could run all of them gets only the jobs of sets the pause does not cover.
  EXPECT_EQ(Drain(q, {{"os", "linux"}, {"arch", "x86"}}), (std::vector<uint64_t>{4}));
  EXPECT_EQ(Drain(q, {{"os", "mac"}}), (std::vector<uint64_t>{3}));
  Txn pop(&store_);
  const uint64_t linux_set = sets_.Intern(pop, NewJob(1, 0, {{"os", "linux"}}).spec().labels());
  ASSERT_OK_AND_ASSIGN(std::optional<uint64_t> head, q.PopHead(pop, linux_set));
  EXPECT_FALSE(head.has_value());
  EXPECT_EQ(Count(Cf::kQueue), 2);  // still queued, in the store
}

TEST_F(QueuePausesTest, AnUnrelatedOrNarrowerSelectorDoesNotPause) {
  QueueIndex q(&sets_, 8);
  Txn txn(&store_);
  q.Add(txn, NewJob(1, 0, {{"os", "linux"}}));
  // The job does not require arch=x86, so a pause of os=linux,arch=x86 does not hold it.
  q.Pause(txn, kLinuxX86, 1);
  q.Pause(txn, {{"os", "linux-old"}}, 1);
  Commit(txn);
  EXPECT_EQ(Drain(q, kLinuxX86), (std::vector<uint64_t>{1}));
}

TEST_F(QueuePausesTest, PausesSurviveARestartAndResumeFreesTheSetsAsNewWork) {
  {
    QueueIndex q(&sets_, 8);
    Txn txn(&store_);
    q.Add(txn, NewJob(1, 0, kLinuxX86));
    q.Add(txn, NewJob(2, 0, {{"os", "linux"}}));
    q.Pause(txn, {{"os", "linux"}}, 5);
    Commit(txn);
  }
  LabelSets recovered;
  ASSERT_OK(recovered.Recover(&store_));
  QueueIndex fresh(&recovered, 8);
  fresh.Reset();
  ASSERT_OK(fresh.RecoverPauses(&store_));
  EXPECT_EQ(fresh.pauses().size(), 1u);
  EXPECT_TRUE(Drain(fresh, kLinuxX86).empty());
  fresh.TakeNewWork();
  Txn txn(&store_);
  EXPECT_FALSE(fresh.Resume(txn, {{"os", "mac"}}));
  EXPECT_TRUE(fresh.Resume(txn, {{"os", "linux"}}));
  Commit(txn);
  // Both sets are offered to parked agents at once, without polling.
  EXPECT_EQ(fresh.TakeNewWork().size(), 2u);
  EXPECT_EQ(Drain(fresh, kLinuxX86), (std::vector<uint64_t>{1, 2}));
  // And the resume is durable: a restart finds no pause.
  QueueIndex again(&recovered, 8);
  ASSERT_OK(again.RecoverPauses(&store_));
  EXPECT_TRUE(again.pauses().empty());
}

TEST_F(QueuePausesTest, ASetHeldByTwoPausesStaysPausedUntilBothAreLifted) {
  QueueIndex q(&sets_, 8);
  Txn txn(&store_);
  q.Add(txn, NewJob(1, 0, kLinuxX86));
  q.Pause(txn, {{"os", "linux"}}, 1);
  q.Pause(txn, {{"arch", "x86"}}, 1);
  q.TakeNewWork();
  q.Resume(txn, {{"os", "linux"}});
  EXPECT_TRUE(q.TakeNewWork().empty());
  Commit(txn);
  EXPECT_TRUE(Drain(q, kLinuxX86).empty());
  Txn resume(&store_);
  q.Resume(resume, {{"arch", "x86"}});
  Commit(resume);
  EXPECT_EQ(Drain(q, kLinuxX86), (std::vector<uint64_t>{1}));
}

TEST_F(QueuePausesTest, ReprioritizeMovesAQueuedJobInOneGroup) {
  QueueIndex q(&sets_, /*window=*/2);
  Txn txn(&store_);
  std::vector<farm::v1::Job> jobs;
  for (uint64_t seq = 1; seq <= 6; ++seq) {
    jobs.push_back(NewJob(seq));
    q.Add(txn, jobs.back());
  }
  Commit(txn);
  // Pop one so that the window's refill bound is set, then move the last job (beyond the
  // window) ahead of all, and the first one down.
  Txn pop(&store_);
  ASSERT_OK_AND_ASSIGN(std::optional<uint64_t> first, q.PopFor(pop, {}));
  EXPECT_EQ(first, 1u);
  Commit(pop);
  Txn move(&store_);
  q.Reprioritize(move, jobs[5], 10);
  q.Reprioritize(move, jobs[1], -5);
  Commit(move);
  EXPECT_EQ(jobs[5].spec().priority(), 10);
  EXPECT_EQ(Count(Cf::kQueue), 5);  // the old keys are gone, one key per job
  EXPECT_EQ(Drain(q, {}), (std::vector<uint64_t>{6, 3, 4, 5, 2}));
}

TEST_F(QueuePausesTest, ReprioritizeKeepsTheOrderAcrossARestart) {
  QueueIndex q(&sets_, 8);
  Txn txn(&store_);
  farm::v1::Job a = NewJob(1), b = NewJob(2);
  q.Add(txn, a);
  q.Add(txn, b);
  q.Reprioritize(txn, b, 3);
  Commit(txn);
  LabelSets recovered;
  ASSERT_OK(recovered.Recover(&store_));
  QueueIndex fresh(&recovered, 8);
  fresh.Reset();
  EXPECT_EQ(Drain(fresh, {}), (std::vector<uint64_t>{2, 1}));
}

}  // namespace
}  // namespace farm::coordinator
