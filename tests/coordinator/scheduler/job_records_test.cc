#include "coordinator/scheduler/job_records.h"

#include <gtest/gtest.h>

#include "coordinator/scheduler/job_reads.h"
#include "tests/coordinator/scheduler/part_test_util.h"

namespace farm::coordinator {
namespace {

class JobRecordsTest : public PartTest {
 protected:
  farm::v1::Job Running(uint64_t seq, uint64_t epoch) {
    farm::v1::Job job = NewJob(seq);
    job.set_state(farm::v1::RUNNING);
    farm::v1::Attempt* at = job.add_attempts();
    at->set_number(1);
    at->set_epoch(epoch);
    at->add_steps()->set_state(farm::v1::STEP_PENDING);
    return job;
  }
};

TEST_F(JobRecordsTest, StepProgressIsWrittenApartAndMergedByReaders) {
  farm::v1::Job job = Running(1, 4);
  Txn txn(&store_);
  jobs::Put(txn, job);
  Commit(txn);
  farm::v1::Attempt progress = job.attempts(0);
  progress.mutable_steps(0)->set_state(farm::v1::STEP_RUNNING);
  Txn step(&store_);
  jobs::PutProgress(step, 1, progress);
  Commit(step);
  // A step report writes only the attempt, not the whole job.
  EXPECT_LT(step.batch().byte_size(), 100u);
  JobReads reads(&store_);
  ASSERT_OK_AND_ASSIGN(farm::v1::Job read, reads.GetJob("1"));
  EXPECT_EQ(read.attempts(0).steps(0).state(), farm::v1::STEP_RUNNING);
  ASSERT_OK_AND_ASSIGN(farm::v1::ListJobsResponse list, reads.ListJobs({}));
  EXPECT_EQ(list.jobs(0).attempts(0).steps(0).state(), farm::v1::STEP_RUNNING);
}

TEST_F(JobRecordsTest, ProgressOfAnotherAttemptOrOfAnEndedJobIsIgnored) {
  farm::v1::Job job = Running(1, 4);
  farm::v1::Attempt stale = job.attempts(0);
  stale.set_epoch(3);
  stale.mutable_steps(0)->set_state(farm::v1::STEP_FAILED);
  EXPECT_FALSE(jobs::MergeProgress(job, stale));
  farm::v1::Attempt current = job.attempts(0);
  current.mutable_steps(0)->set_state(farm::v1::STEP_RUNNING);
  job.set_state(farm::v1::SUCCEEDED);
  EXPECT_FALSE(jobs::MergeProgress(job, current));
  job.set_state(farm::v1::RUNNING);
  EXPECT_TRUE(jobs::MergeProgress(job, current));
}

TEST_F(JobRecordsTest, APipelineJobCarriesASummaryAndCorruptRecordsAreDataLoss) {
  farm::v1::Job job = Running(7, 1);
  job.set_pipeline_id("p2");
  Txn txn(&store_);
  jobs::Put(txn, job);
  txn.Put(Cf::kJobs, keys::JobKey(8),
          std::string("\x0a\x05"
                      "ab",
                      4));  // truncated
  Commit(txn);
  ASSERT_OK_AND_ASSIGN(auto summary, store_.Get(Cf::kPipelineJobs, keys::PipelineJobKey(2, 7)));
  ASSERT_TRUE(summary.has_value());
  farm::v1::PipelineJob pj;
  ASSERT_TRUE(pj.ParseFromString(*summary));
  EXPECT_EQ(pj.state(), farm::v1::RUNNING);
  EXPECT_EQ(pj.attempts(), 1u);
  JobReads reads(&store_);
  EXPECT_THAT(reads.GetJob("8"), testing::StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(reads.GetJob("9"), testing::StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace farm::coordinator
