#include "coordinator/scheduler/retention.h"

#include <gtest/gtest.h>

#include "coordinator/logs/log_reader.h"
#include "coordinator/scheduler/job_lifecycle.h"
#include "coordinator/scheduler/job_records.h"
#include "tests/coordinator/scheduler/part_test_util.h"

namespace farm::coordinator {
namespace {

using farm::v1::Job;

constexpr int64_t kSecond = 1000;

class RetentionTest : public PartTest {
 protected:
  static RetentionPolicy Policy() {
    RetentionPolicy p;
    p.job_retention_ms = 100 * kSecond;
    p.log_retention_ms = 10 * kSecond;
    p.max_log_bytes = 0;
    return p;
  }

  std::optional<Job> Stored(uint64_t seq) {
    Txn txn(&store_);
    absl::StatusOr<std::optional<Job>> job = jobs::Load(txn, seq);
    EXPECT_OK(job);
    return job.ok() ? *job : std::nullopt;
  }

  // Submits job `seq` (standalone, or of pipeline p1 as `name`), stores `log` as its output and
  // ends it SUCCEEDED, all in one group.
  void RunJob(uint64_t seq, const std::string& log, const std::string& pipeline_job = "") {
    Txn txn(&store_);
    Job job = NewJob(seq);
    if (!pipeline_job.empty()) {
      job.set_pipeline_id("p1");
      job.set_pipeline_job(pipeline_job);
    }
    ASSERT_OK(lifecycle_.Submit(txn, job, ""));
    ASSERT_OK(lifecycle_.Transition(txn, job, farm::v1::RUNNING, ""));
    farm::v1::Attempt* at = job.add_attempts();
    at->set_number(1);
    farm::v1::StepResult* step = at->add_steps();
    step->set_log_bytes(static_cast<int64_t>(log.size()));
    txn.PutBlind(Cf::kLogs, keys::LogKey(seq, 1, 0, 0), log);
    ASSERT_OK(lifecycle_.Transition(txn, job, farm::v1::SUCCEEDED, "done"));
    Commit(txn);
  }

  // A pipeline record p1 with jobs 1..n named j1..jn (no needs), all QUEUED.
  void CreatePipeline(int n) {
    Txn txn(&store_);
    farm::v1::Pipeline p;
    p.set_id("p1");
    p.set_seq(1);
    for (int i = 1; i <= n; ++i) {
      farm::v1::PipelineJob* pj = p.add_jobs();
      pj->set_name("j" + std::to_string(i));
      pj->set_job_id(std::to_string(i));
      Job job = NewJob(static_cast<uint64_t>(i));
      job.set_pipeline_id("p1");
      job.set_pipeline_job(pj->name());
      ASSERT_OK(lifecycle_.Submit(txn, job, ""));
    }
    txn.Put(Cf::kPipelines, keys::JobKey(1), p.SerializeAsString());
    Commit(txn);
  }

  // Ends queued job `seq` of the pipeline with `log` as its output.
  void EndQueued(uint64_t seq, const std::string& log) {
    Txn txn(&store_);
    Job job = *Stored(seq);
    ASSERT_OK(lifecycle_.Transition(txn, job, farm::v1::RUNNING, ""));
    farm::v1::Attempt* at = job.add_attempts();
    at->add_steps()->set_log_bytes(static_cast<int64_t>(log.size()));
    txn.PutBlind(Cf::kLogs, keys::LogKey(seq, 1, 0, 0), log);
    ASSERT_OK(lifecycle_.Transition(txn, job, farm::v1::SUCCEEDED, "done"));
    Commit(txn);
  }

  RetentionReport Sweep(bool dry_run = false) {
    Txn txn(&store_);
    absl::StatusOr<RetentionReport> r = retention_.Sweep(txn, dry_run, /*force=*/true);
    EXPECT_OK(r);
    Commit(txn);
    return r.ok() ? *r : RetentionReport();
  }

  bool HasOutput(uint64_t seq) {
    absl::StatusOr<std::vector<StoredChunk>> chunks = ReadLog(&store_, seq, 1, 0, 0, 1 << 20);
    EXPECT_OK(chunks);
    return chunks.ok() && !chunks->empty();
  }

  LabelSets sets_;
  FollowerHub hub_;
  QueueIndex queue_{&sets_, 16};
  ConcurrencyGroups groups_;
  PipelineGraph pipelines_;
  EventRecorder events_{&clock_, &sets_, &hub_, EventRecorder::kDefaultRetentionMs};
  Retention retention_{&clock_, Policy()};
  JobLifecycle lifecycle_{{&clock_, &queue_, &groups_, &pipelines_, &events_, &hub_, &retention_}};
};

TEST_F(RetentionTest, OutputGoesAfterLogRetentionTheJobAfterJobRetention) {
  ASSERT_OK(retention_.Recover(&store_));
  RunJob(7, "hello\n");
  EXPECT_EQ(retention_.log_bytes(), 6);
  RetentionReport early = Sweep();
  EXPECT_EQ(early.jobs + early.logs, 0);
  EXPECT_TRUE(HasOutput(7));

  clock_.AdvanceMs(11 * kSecond);
  RetentionReport logs = Sweep();
  EXPECT_EQ(logs.logs, 1);
  EXPECT_EQ(logs.log_bytes, 6);
  EXPECT_EQ(logs.jobs, 0);
  EXPECT_FALSE(HasOutput(7));
  absl::StatusOr<std::optional<LogsRemoved>> marker = ReadLogsRemoved(&store_, 7);
  ASSERT_OK(marker);
  ASSERT_TRUE(marker->has_value());
  EXPECT_EQ((*marker)->policy, "log_retention");
  EXPECT_TRUE(Stored(7).has_value());
  EXPECT_EQ(retention_.log_bytes(), 0);
  EXPECT_EQ(Sweep().logs, 0);  // once

  clock_.AdvanceMs(90 * kSecond);
  RetentionReport jobs = Sweep();
  EXPECT_EQ(jobs.jobs, 1);
  EXPECT_EQ(jobs.logs, 0);  // already gone
  EXPECT_FALSE(Stored(7).has_value());
  EXPECT_EQ(Count(Cf::kLogs), 0);  // the marker went with the job
  EXPECT_EQ(Count(Cf::kRetention), 0);
  // Job ids are not reused: the floor covers the removed job.
  absl::StatusOr<std::optional<std::string>> floor = store_.Get(Cf::kMeta, keys::kNextSeq);
  ASSERT_OK(floor);
  ASSERT_TRUE(floor->has_value());
  EXPECT_EQ(keys::ReadU64(**floor, 0), 7u);
}

TEST_F(RetentionTest, ADryRunReportsAndWritesNothing) {
  ASSERT_OK(retention_.Recover(&store_));
  RunJob(1, "aaaa");
  RunJob(2, "bb");
  clock_.AdvanceMs(200 * kSecond);
  const int64_t writes = store_.writes();
  Txn txn(&store_);
  absl::StatusOr<RetentionReport> r = retention_.Sweep(txn, /*dry_run=*/true);
  ASSERT_OK(r);
  EXPECT_EQ(r->jobs, 2);
  EXPECT_EQ(r->logs, 2);
  EXPECT_EQ(r->log_bytes, 6);
  txn.Seal();
  EXPECT_TRUE(txn.batch().empty());
  EXPECT_EQ(store_.writes(), writes);
  EXPECT_TRUE(Stored(1).has_value());
  EXPECT_EQ(Sweep().jobs, 2);  // and the real pass does it
}

TEST_F(RetentionTest, TheJobsOfARunningPipelineStayThenGoTogetherWithThePipeline) {
  ASSERT_OK(retention_.Recover(&store_));
  CreatePipeline(2);
  EndQueued(1, "first");
  clock_.AdvanceMs(500 * kSecond);  // job 1 ended long ago, but job 2 is still queued
  RetentionReport kept = Sweep();
  EXPECT_EQ(kept.jobs + kept.logs, 0);
  EXPECT_TRUE(Stored(1).has_value());
  EXPECT_TRUE(HasOutput(1));

  EndQueued(2, "second");
  clock_.AdvanceMs(101 * kSecond);
  RetentionReport gone = Sweep();
  EXPECT_EQ(gone.jobs, 2);
  EXPECT_EQ(gone.pipelines, 1);
  EXPECT_EQ(gone.log_bytes, 11);
  EXPECT_FALSE(Stored(1).has_value());
  EXPECT_FALSE(Stored(2).has_value());
  EXPECT_EQ(Count(Cf::kPipelines), 0);
  EXPECT_EQ(Count(Cf::kPipelineJobs), 0);
}

TEST_F(RetentionTest, AboveMaxLogBytesTheOldestOutputGoesFirst) {
  RetentionPolicy policy = Policy();
  policy.log_retention_ms = 0;
  policy.max_log_bytes = 250;
  Retention retention(&clock_, policy);
  JobLifecycle lifecycle({&clock_, &queue_, &groups_, &pipelines_, &events_, &hub_, &retention});
  ASSERT_OK(retention.Recover(&store_));
  for (uint64_t seq = 1; seq <= 4; ++seq) {
    Txn txn(&store_);
    Job job = NewJob(seq);
    ASSERT_OK(lifecycle.Submit(txn, job, ""));
    ASSERT_OK(lifecycle.Transition(txn, job, farm::v1::RUNNING, ""));
    job.add_attempts()->add_steps()->set_log_bytes(100);
    txn.PutBlind(Cf::kLogs, keys::LogKey(seq, 1, 0, 0), std::string(100, 'x'));
    ASSERT_OK(lifecycle.Transition(txn, job, farm::v1::SUCCEEDED, "done"));
    Commit(txn);
    clock_.AdvanceMs(kSecond);
  }
  EXPECT_EQ(retention.log_bytes(), 400);
  Txn txn(&store_);
  absl::StatusOr<RetentionReport> r = retention.Sweep(txn, false, true);
  ASSERT_OK(r);
  Commit(txn);
  EXPECT_EQ(r->logs, 2);
  EXPECT_EQ(retention.log_bytes(), 200);
  EXPECT_FALSE(HasOutput(1));
  EXPECT_FALSE(HasOutput(2));
  EXPECT_TRUE(HasOutput(3));
  EXPECT_TRUE(HasOutput(4));
  absl::StatusOr<std::optional<LogsRemoved>> marker = ReadLogsRemoved(&store_, 1);
  ASSERT_OK(marker);
  ASSERT_TRUE(marker->has_value());
  EXPECT_EQ((*marker)->policy, "max_log_bytes");
  // The count survives a restart.
  Retention again(&clock_, policy);
  ASSERT_OK(again.Recover(&store_));
  EXPECT_EQ(again.log_bytes(), 200);
}

TEST_F(RetentionTest, JobsThatEndedBeforeTheIndexAreBackfilledThenRemoved) {
  // A data dir from before retention: jobs end without an index.
  JobLifecycle old({&clock_, &queue_, &groups_, &pipelines_, &events_, &hub_});
  for (uint64_t seq = 1; seq <= 3; ++seq) {
    Txn txn(&store_);
    Job job = NewJob(seq);
    ASSERT_OK(old.Submit(txn, job, ""));
    if (seq != 2) ASSERT_OK(old.Transition(txn, job, farm::v1::CANCELLED, "by user"));
    Commit(txn);
  }
  EXPECT_EQ(Count(Cf::kRetention), 0);
  ASSERT_OK(retention_.Recover(&store_));
  clock_.AdvanceMs(101 * kSecond);
  RetentionReport first = Sweep();
  EXPECT_EQ(first.backfilled, 2);  // job 2 is still queued
  EXPECT_EQ(first.jobs, 2);
  EXPECT_FALSE(Stored(1).has_value());
  EXPECT_TRUE(Stored(2).has_value());
  EXPECT_FALSE(Stored(3).has_value());
  // Done once: a restart does not backfill again.
  ASSERT_OK(retention_.Recover(&store_));
  EXPECT_EQ(Sweep().backfilled, 0);
}

TEST_F(RetentionTest, APassIsBoundedAndSaysMoreIsDue) {
  ASSERT_OK(retention_.Recover(&store_));
  const uint64_t n = Retention::kMaxPerSweep + 10;
  Txn txn(&store_);
  for (uint64_t seq = 1; seq <= n; ++seq) {
    Job job = NewJob(seq);
    ASSERT_OK(lifecycle_.Submit(txn, job, ""));
    ASSERT_OK(lifecycle_.Transition(txn, job, farm::v1::CANCELLED, "by user"));
  }
  Commit(txn);
  clock_.AdvanceMs(101 * kSecond);
  RetentionReport first = Sweep();
  EXPECT_TRUE(first.more);
  RetentionReport second = Sweep();
  EXPECT_EQ(first.jobs + second.jobs, static_cast<int64_t>(n));
  EXPECT_FALSE(second.more);
  EXPECT_EQ(Count(Cf::kJobs), 0);
}

}  // namespace
}  // namespace farm::coordinator
