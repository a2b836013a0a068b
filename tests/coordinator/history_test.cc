// The scheduler as a whole: the event history it writes, and the correctness guarantees of the
// split core (cascades never lost, waiting jobs re-resolved at start, a persisted registry,
// reasons instead of message text), against the in-memory store and a fake clock.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/pipeline_file.h"
#include "coordinator/events/event_reader.h"
#include "coordinator/scheduler/job_records.h"
#include "coordinator/store/keys.h"
#include "tests/coordinator/scheduler_fixture.h"
#include "tests/testing/status_matchers.h"

namespace farm::coordinator {
namespace {

using farm::testing::StatusIs;

class HistoryTest : public SchedulerTest {
 protected:
  // "KIND detail" for each event of `job_id` (every event when empty), oldest first.
  std::vector<std::string> Timeline(const std::string& job_id = "") {
    // A round trip through the engine: everything answered so far is committed.
    EXPECT_OK(Await<farm::v1::ListAgentsResponse>([&](auto cb) { scheduler_->ListAgents(cb); }));
    EventReader reader(&store_);
    farm::v1::ListEventsRequest req;
    req.set_job_id(job_id);
    absl::StatusOr<farm::v1::ListEventsResponse> resp = reader.List(req);
    EXPECT_OK(resp);
    std::vector<std::string> out;
    for (const farm::v1::Event& e : resp->events()) {
      std::string line = farm::v1::EventKind_Name(e.kind());
      switch (e.kind()) {
        case farm::v1::JOB_LEASED:
          absl::StrAppend(&line, " ", e.agent(), " attempt ", e.attempt());
          break;
        case farm::v1::STEP_STARTED:
        case farm::v1::STEP_FINISHED:
          absl::StrAppend(&line, " ", e.step(),
                          e.kind() == farm::v1::STEP_FINISHED
                              ? " " + farm::v1::StepState_Name(e.step_state())
                              : "");
          break;
        case farm::v1::ATTEMPT_ENDED:
          absl::StrAppend(&line, " ", farm::v1::AttemptOutcome_Name(e.outcome()));
          break;
        case farm::v1::JOB_ENDED:
          absl::StrAppend(&line, " ", farm::v1::JobState_Name(e.state()));
          break;
        default:
          if (!e.agent().empty()) absl::StrAppend(&line, " ", e.agent());
          break;
      }
      out.push_back(line);
    }
    return out;
  }

  void StepStarted(const farm::v1::LeaseResponse& lease, uint32_t step) {
    farm::v1::StepStartedRequest req;
    *req.mutable_lease() = lease.lease();
    req.set_step_index(step);
    ASSERT_OK(Await<farm::v1::Ack>([&](auto cb) { scheduler_->StepStarted(req, cb); }));
  }

  absl::Status CompleteWithLastStep(const farm::v1::LeaseResponse& lease) {
    farm::v1::CompleteJobRequest req;
    *req.mutable_lease() = lease.lease();
    req.set_outcome(farm::v1::ATTEMPT_SUCCEEDED);
    req.mutable_last_step()->set_step_index(0);
    req.mutable_last_step()->mutable_result()->set_state(farm::v1::STEP_SUCCEEDED);
    return Await<farm::v1::CompleteJobResponse>([&](auto cb) { scheduler_->CompleteJob(req, cb); })
        .status();
  }

  std::string SubmitPipeline(const std::string& yaml) {
    auto spec = common::ParsePipelineFile(yaml, "pipeline.yaml");
    EXPECT_OK(spec);
    auto r = Await<farm::v1::SubmitPipelineResponse>(
        [&](auto cb) { scheduler_->SubmitPipeline(*spec, "", cb); });
    EXPECT_OK(r);
    return r.ok() ? r->pipeline().id() : "";
  }
};

TEST_F(HistoryTest, TheTimelineOfAJobRetriedAfterALostAgent) {
  const std::string id = Submit(Spec("build"));
  Register("a1");
  ASSERT_OK_AND_ASSIGN(auto first, Lease("a1"));
  StepStarted(first, 0);
  ExpireLeases();  // a1 stops heartbeating
  Register("a2");
  ASSERT_OK_AND_ASSIGN(auto second, Lease("a2"));
  ASSERT_EQ(second.job().id(), id);
  StepStarted(second, 0);
  ASSERT_OK(CompleteWithLastStep(second));
  EXPECT_THAT(Timeline(id),
              ::testing::ElementsAre("JOB_SUBMITTED", "JOB_QUEUED", "JOB_LEASED a1 attempt 1",
                                     "STEP_STARTED s0", "ATTEMPT_ENDED ATTEMPT_LOST", "JOB_QUEUED",
                                     "JOB_LEASED a2 attempt 2", "STEP_STARTED s0",
                                     "STEP_FINISHED s0 STEP_SUCCEEDED",
                                     "ATTEMPT_ENDED ATTEMPT_SUCCEEDED", "JOB_ENDED SUCCEEDED"));
  // The agents' own history is there too.
  const std::vector<std::string> all = Timeline();
  EXPECT_THAT(all, ::testing::Contains("AGENT_REGISTERED a1"));
  EXPECT_THAT(all, ::testing::Contains("AGENT_LOST a1"));
}

TEST_F(HistoryTest, EventsAreWrittenWithWhatTheyRecordAndSurviveARestart) {
  const std::string id = Submit(Spec("j"));
  Restart();
  EXPECT_THAT(Timeline(id), ::testing::ElementsAre("JOB_SUBMITTED", "JOB_QUEUED"));
  // A failed write loses the change and its events together.
  store_.FailWrites(absl::UnavailableError("disk"));
  farm::v1::JobSpec spec = Spec("lost");
  EXPECT_FALSE(
      Await<farm::v1::SubmitJobResponse>([&](auto cb) { scheduler_->Submit(spec, "", cb); }).ok());
  store_.FailWrites(absl::OkStatus());
  EXPECT_EQ(Timeline().size(), 2u);
}

constexpr char kChain[] = R"(
name: chain
jobs:
  a: {steps: [{run: a}]}
  b: {needs: [a], steps: [{run: b}]}
  c: {needs: [b], steps: [{run: c}]}
)";

TEST_F(HistoryTest, ACascadeInterruptedByAReadErrorIsNeverLost) {
  Register("agent");
  const std::string pid = SubmitPipeline(kChain);
  ASSERT_OK_AND_ASSIGN(auto a, Lease("agent"));
  ASSERT_EQ(a.job().pipeline_job(), "a");
  // The read of the pipeline's record, in the middle of a's end, fails once.
  store_.FailReads(Cf::kPipelines, absl::UnavailableError("I/O error"), 1);
  EXPECT_THAT(CompleteWithLastStep(a), StatusIs(absl::StatusCode::kUnavailable));
  // Nothing of it was committed: a still runs, b still waits.
  EXPECT_EQ(Job(a.job().id()).state(), farm::v1::RUNNING);
  auto pipeline = scheduler_->GetPipeline(pid);
  ASSERT_OK(pipeline);
  EXPECT_EQ(pipeline->jobs(1).state(), farm::v1::WAITING);
  // The agent retries, and the whole of it happens.
  ASSERT_OK(CompleteWithLastStep(a));
  EXPECT_EQ(Job(a.job().id()).state(), farm::v1::SUCCEEDED);
  pipeline = scheduler_->GetPipeline(pid);
  ASSERT_OK(pipeline);
  EXPECT_EQ(pipeline->jobs(1).state(), farm::v1::QUEUED) << pipeline->DebugString();
  ASSERT_OK_AND_ASSIGN(auto b, Lease("agent"));
  EXPECT_EQ(b.job().pipeline_job(), "b");
}

TEST_F(HistoryTest, JobsLeftWaitingWithTheirNeedsEndedAreResolvedAtStart) {
  Register("agent");
  const std::string pid = SubmitPipeline(kChain);
  ASSERT_OK_AND_ASSIGN(auto lease, Lease("agent"));
  // As an older coordinator could leave it: a ended, but the cascade to b was lost.
  Shutdown();
  farm::v1::Job a = lease.job();
  a.set_state(farm::v1::FAILED);
  a.set_finished_ms(clock_.NowMs());
  Txn txn(&store_);
  jobs::Put(txn, a);
  txn.Delete(Cf::kActive, keys::JobKey(a.seq()));
  txn.Seal();
  ASSERT_OK(store_.Write(txn.batch(), true));
  Boot();
  // Start re-resolves b (its need failed: skipped) and, through the cascade, c. That is a
  // command nobody waits on, so wait for what it writes.
  absl::StatusOr<farm::v1::Pipeline> pipeline;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  for (;;) {
    pipeline = scheduler_->GetPipeline(pid);
    ASSERT_OK(pipeline);
    if (pipeline->state() != farm::v1::RUNNING || absl::Now() > deadline) break;
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(pipeline->jobs(1).state(), farm::v1::SKIPPED);
  EXPECT_EQ(pipeline->jobs(2).state(), farm::v1::SKIPPED);
  EXPECT_EQ(pipeline->state(), farm::v1::FAILED);
}

TEST_F(HistoryTest, AQueuedJobWithoutARecordIsReportedNotSilentlyDropped) {
  const std::string id = Submit(Spec("doomed"));
  Shutdown();
  WriteBatch batch;
  batch.Delete(Cf::kJobs, keys::JobKey(*keys::ParseJobId(id)));
  ASSERT_OK(store_.Write(batch, true));
  Boot();
  Register("agent");
  ASSERT_OK_AND_ASSIGN(auto lease, Lease("agent"));
  EXPECT_FALSE(lease.has_job());
  const std::vector<std::string> events = Timeline(id);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back(), "JOB_DROPPED");
}

TEST_F(HistoryTest, AJobIdIsNeverGivenTwiceAcrossRestarts) {
  const std::string first = Submit(Spec("first"));
  SubmitPipeline(kChain);  // its three jobs take ids from the same sequence
  Restart();
  const std::string after_pipeline = Submit(Spec("after"));
  EXPECT_EQ(*keys::ParseJobId(after_pipeline), *keys::ParseJobId(first) + 4);
  // Even when the newest job's record is gone, its history keeps its id taken.
  Shutdown();
  WriteBatch batch;
  batch.Delete(Cf::kJobs, keys::JobKey(*keys::ParseJobId(after_pipeline)));
  ASSERT_OK(store_.Write(batch, true));
  Boot();
  EXPECT_EQ(*keys::ParseJobId(Submit(Spec("next"))), *keys::ParseJobId(after_pipeline) + 1);
}

TEST_F(HistoryTest, AnOperatorsDrainSurvivesARestart) {
  Register("agent");
  ASSERT_OK(Await<farm::v1::Ack>([&](auto cb) { scheduler_->SetAgentDrain("agent", true, cb); }));
  Restart();
  Submit(Spec("j"));
  // The agent needs no new registration, and it takes no work.
  ASSERT_OK_AND_ASSIGN(auto lease, Lease("agent"));
  EXPECT_FALSE(lease.has_job());
  ASSERT_OK_AND_ASSIGN(auto agents, Await<farm::v1::ListAgentsResponse>(
                                        [&](auto cb) { scheduler_->ListAgents(cb); }));
  ASSERT_EQ(agents.agents_size(), 1);
  EXPECT_EQ(agents.agents(0).state(), "draining");
  ASSERT_OK(Await<farm::v1::Ack>([&](auto cb) { scheduler_->SetAgentDrain("agent", false, cb); }));
  ASSERT_OK_AND_ASSIGN(lease, Lease("agent"));
  EXPECT_TRUE(lease.has_job());
}

TEST_F(HistoryTest, AnUnknownAgentHearsWhyInAReasonNotInTheText) {
  absl::StatusOr<farm::v1::LeaseResponse> lease = Lease("stranger");
  EXPECT_THAT(lease, StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(common::ReasonOf(lease.status()), common::kReasonAgentNotRegistered);
}

}  // namespace
}  // namespace farm::coordinator
