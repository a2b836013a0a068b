#include "coordinator/scheduler/job_lifecycle.h"

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "coordinator/events/event_reader.h"
#include "coordinator/scheduler/job_records.h"
#include "tests/coordinator/scheduler/part_test_util.h"

namespace farm::coordinator {
namespace {

using farm::v1::Job;
using testing::StatusIs;

class JobLifecycleTest : public PartTest {
 protected:
  std::vector<std::string> Events() {
    EventReader reader(&store_);
    absl::StatusOr<farm::v1::ListEventsResponse> resp = reader.List({});
    EXPECT_OK(resp);
    std::vector<std::string> out;
    for (const auto& e : resp->events()) {
      out.push_back(absl::StrCat(e.job_id(), " ", farm::v1::EventKind_Name(e.kind()), " ",
                                 farm::v1::JobState_Name(e.state())));
    }
    return out;
  }
  Job Stored(uint64_t seq) {
    Txn txn(&store_);
    absl::StatusOr<std::optional<Job>> job = jobs::Load(txn, seq);
    EXPECT_TRUE(job.ok() && job->has_value());
    return job.ok() && job->has_value() ? **job : Job();
  }
  // A pipeline "p1": job 1 "a", job 2 "b" needs a, job 3 "gate" (no steps) needs b.
  void SubmitPipeline(Txn& txn) {
    farm::v1::Pipeline p;
    p.set_id("p1");
    p.set_seq(1);
    std::vector<Job> jobs = {NewJob(1), NewJob(2), NewJob(3, 0, {}, /*steps=*/0)};
    const char* names[] = {"a", "b", "gate"};
    for (int i = 0; i < 3; ++i) {
      jobs[i].set_pipeline_id("p1");
      jobs[i].set_pipeline_job(names[i]);
      farm::v1::PipelineJob* pj = p.add_jobs();
      pj->set_name(names[i]);
      pj->set_job_id(jobs[i].id());
      if (i > 0) {
        pj->add_needs(names[i - 1]);
        jobs[i].add_needs(jobs[i - 1].id());
      }
    }
    txn.Put(Cf::kPipelines, keys::JobKey(1), p.SerializeAsString());
    ASSERT_OK(lifecycle_.Submit(txn, jobs[1], "waiting for a"));
    ASSERT_OK(lifecycle_.Submit(txn, jobs[2], "waiting for b"));
    ASSERT_OK(lifecycle_.Submit(txn, jobs[0], ""));
  }
  // Ends job `seq` (QUEUED → RUNNING → `to`) in one group.
  absl::Status RunAndEnd(Txn& txn, uint64_t seq, farm::v1::JobState to) {
    FARM_ASSIGN_OR_RETURN(std::optional<Job> loaded, jobs::Load(txn, seq));
    Job job = *loaded;
    FARM_RETURN_IF_ERROR(lifecycle_.Transition(txn, job, farm::v1::RUNNING, ""));
    return lifecycle_.Transition(txn, job, to, "done");
  }

  LabelSets sets_;
  FollowerHub hub_;
  QueueIndex queue_{&sets_, 16};
  ConcurrencyGroups groups_;
  PipelineGraph pipelines_;
  EventRecorder events_{&clock_, &sets_, &hub_, EventRecorder::kDefaultRetentionMs};
  JobLifecycle lifecycle_{{&clock_, &queue_, &groups_, &pipelines_, &events_, &hub_}};
};

TEST_F(JobLifecycleTest, ASubmitIsWrittenQueuedAndRecorded) {
  Txn txn(&store_);
  Job job = NewJob(1, 0, {{"os", "linux"}});
  ASSERT_OK(lifecycle_.Submit(txn, job, ""));
  Commit(txn);
  EXPECT_EQ(Stored(1).state(), farm::v1::QUEUED);
  EXPECT_EQ(Events(), (std::vector<std::string>{"1 JOB_SUBMITTED QUEUED", "1 JOB_QUEUED QUEUED"}));
  Txn pop(&store_);
  EXPECT_THAT(queue_.PopFor(pop, {{"os", "linux"}}), testing::IsOkAndHolds(1u));
  EventReader reader(&store_);
  farm::v1::ListEventsResponse resp = *reader.List({});
  EXPECT_EQ(resp.events(0).labels().at("os"), "linux");
  EXPECT_EQ(resp.events(0).job_name(), "job1");
}

TEST_F(JobLifecycleTest, AnIllegalTransitionIsAnInternalErrorAndFailsTheGroup) {
  Txn txn(&store_);
  Job job = NewJob(1);
  ASSERT_OK(lifecycle_.Submit(txn, job, ""));
  EXPECT_THAT(lifecycle_.Transition(txn, job, farm::v1::SKIPPED, ""),
              StatusIs(absl::StatusCode::kInternal));
  EXPECT_TRUE(txn.failed());
  Txn again(&store_);
  Job done = NewJob(2);
  ASSERT_OK(lifecycle_.Submit(again, done, ""));
  ASSERT_OK(lifecycle_.Transition(again, done, farm::v1::CANCELLED, "by user"));
  EXPECT_THAT(lifecycle_.Transition(again, done, farm::v1::QUEUED, ""),
              StatusIs(absl::StatusCode::kInternal));  // final is final
}

TEST_F(JobLifecycleTest, AnEndCascadesThroughThePipelineInTheSameGroup) {
  Txn txn(&store_);
  SubmitPipeline(txn);
  Commit(txn);
  EXPECT_EQ(Stored(2).state(), farm::v1::WAITING);
  Txn end(&store_);
  ASSERT_OK(RunAndEnd(end, 1, farm::v1::SUCCEEDED));
  Commit(end);
  EXPECT_EQ(Stored(2).state(), farm::v1::QUEUED);
  Txn fail(&store_);
  ASSERT_OK(RunAndEnd(fail, 2, farm::v1::FAILED));
  Commit(fail);
  EXPECT_EQ(Stored(3).state(), farm::v1::SKIPPED);
  EXPECT_EQ(Stored(3).reason(), "needs b, which ended FAILED");
  // Nothing waits any more: the WAITING index is empty.
  EXPECT_EQ(Count(Cf::kWaiting), 0);
}

TEST_F(JobLifecycleTest, AReadErrorInTheCascadeFailsTheWholeGroupSoNothingIsHalfDone) {
  Txn txn(&store_);
  SubmitPipeline(txn);
  Commit(txn);
  store_.FailReads(Cf::kPipelines, absl::UnavailableError("disk hiccup"), 1);
  Txn end(&store_);
  EXPECT_THAT(RunAndEnd(end, 1, farm::v1::SUCCEEDED), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_TRUE(end.failed());
  // The retry (a new group, as after the engine's recovery) runs all of it.
  Txn retry(&store_);
  ASSERT_OK(RunAndEnd(retry, 1, farm::v1::SUCCEEDED));
  Commit(retry);
  EXPECT_EQ(Stored(1).state(), farm::v1::SUCCEEDED);
  EXPECT_EQ(Stored(2).state(), farm::v1::QUEUED);
}

TEST_F(JobLifecycleTest, AJobWithoutStepsSucceedsAsSoonAsItMayRun) {
  Txn txn(&store_);
  SubmitPipeline(txn);
  ASSERT_OK(RunAndEnd(txn, 1, farm::v1::SUCCEEDED));
  ASSERT_OK(RunAndEnd(txn, 2, farm::v1::SUCCEEDED));
  Commit(txn);
  EXPECT_EQ(Stored(3).state(), farm::v1::SUCCEEDED);
  EXPECT_EQ(Stored(3).reason(), "no steps to run");
  const std::vector<std::string> events = Events();
  EXPECT_EQ(events.back(), "3 JOB_ENDED SUCCEEDED");
}

TEST_F(JobLifecycleTest, ACancelOfAQueuedJobTakesItOutOfTheQueue) {
  Txn txn(&store_);
  Job job = NewJob(1);
  ASSERT_OK(lifecycle_.Submit(txn, job, ""));
  ASSERT_OK(lifecycle_.CancelNotRunning(txn, job));
  Commit(txn);
  EXPECT_EQ(Stored(1).state(), farm::v1::CANCELLED);
  EXPECT_TRUE(Stored(1).cancel_requested());
  Txn pop(&store_);
  EXPECT_THAT(queue_.PopFor(pop, {}), testing::IsOkAndHolds(std::nullopt));
  EXPECT_EQ(Events().back(), "1 JOB_ENDED CANCELLED");
}

}  // namespace
}  // namespace farm::coordinator
