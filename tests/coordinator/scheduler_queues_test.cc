// The operators' queue commands in the scheduler (scheduler.h: PauseQueue ... BulkCancel),
// against the in-memory store and a fake clock.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "common/pipeline_file.h"
#include "coordinator/scheduler/queue_report.h"
#include "tests/coordinator/scheduler_fixture.h"
#include "tests/testing/status_matchers.h"

namespace farm::coordinator {
namespace {

using farm::testing::StatusIs;
using farm::testing::StatusIsWithMessage;
using ::testing::HasSubstr;

class SchedulerQueuesTest : public SchedulerTest {
 protected:
  void SetUp() override {
    SchedulerTest::SetUp();
    Register("agent", {{"os", "linux"}, {"arch", "x86"}});
  }

  absl::Status Pause(const Labels& selector) {
    return Await<farm::v1::PauseQueueResponse>(
               [&](auto cb) { scheduler_->PauseQueue(selector, cb); })
        .status();
  }
  absl::Status Resume(const Labels& selector) {
    return Await<farm::v1::ResumeQueueResponse>(
               [&](auto cb) { scheduler_->ResumeQueue(selector, cb); })
        .status();
  }
  absl::StatusOr<farm::v1::ListQueuesResponse> Queues() {
    auto snap = Await<QueueSnapshot>([&](auto cb) { scheduler_->SnapshotQueues(cb); });
    if (!snap.ok()) return snap.status();
    return BuildQueueReport(&store_, *snap);
  }
  absl::StatusOr<farm::v1::Job> Reprioritize(const std::string& id, int priority) {
    return Await<farm::v1::Job>([&](auto cb) { scheduler_->Reprioritize(id, priority, cb); });
  }
  absl::StatusOr<farm::v1::RetryResponse> Retry(const std::string& id, std::string rid = "") {
    return Await<farm::v1::RetryResponse>([&](auto cb) { scheduler_->Retry(id, rid, cb); });
  }
  absl::StatusOr<farm::v1::BulkCancelResponse> BulkCancel(
      const Labels& selector, farm::v1::JobState state = farm::v1::QUEUED) {
    return Await<farm::v1::BulkCancelResponse>(
        [&](auto cb) { scheduler_->BulkCancel(selector, state, cb); });
  }
  absl::StatusOr<farm::v1::SubmitPipelineResponse> SubmitYaml(const std::string& yaml) {
    auto spec = common::ParsePipelineFile(yaml, "pipeline.yaml");
    if (!spec.ok()) return spec.status();
    return Await<farm::v1::SubmitPipelineResponse>(
        [&](auto cb) { scheduler_->SubmitPipeline(*spec, "", cb); });
  }
  farm::v1::Pipeline GetPipeline(const std::string& id) {
    auto p = scheduler_->GetPipeline(id);
    EXPECT_OK(p);
    return p.ok() ? *p : farm::v1::Pipeline();
  }
  farm::v1::LeaseResponse Next() {
    auto lease = Lease("agent");
    EXPECT_OK(lease);
    EXPECT_TRUE(lease.ok() && lease->has_job()) << "nothing to lease";
    return lease.ok() ? *lease : farm::v1::LeaseResponse();
  }
  bool NothingQueued() {
    auto lease = Lease("agent");
    return lease.ok() && !lease->has_job();
  }
  void Finish(const farm::v1::LeaseResponse& lease, bool ok,
              std::vector<farm::v1::Artifact> artifacts = {}) {
    farm::v1::CompleteJobRequest req;
    *req.mutable_lease() = lease.lease();
    req.set_outcome(ok ? farm::v1::ATTEMPT_SUCCEEDED : farm::v1::ATTEMPT_FAILED);
    for (auto& a : artifacts) *req.add_artifacts() = std::move(a);
    ASSERT_OK(
        Await<farm::v1::CompleteJobResponse>([&](auto cb) { scheduler_->CompleteJob(req, cb); }));
  }
};

TEST_F(SchedulerQueuesTest, APausedQueueKeepsItsJobsUntilResumedEvenAcrossARestart) {
  ASSERT_OK(Pause({{"os", "linux"}}));
  const std::string held = Submit(Spec("held", 0, {{"os", "linux"}}));
  const std::string free = Submit(Spec("free"));
  const farm::v1::LeaseResponse ran = Next();
  EXPECT_EQ(ran.job().id(), free);
  Finish(ran, true);
  EXPECT_TRUE(NothingQueued());
  ASSERT_OK_AND_ASSIGN(farm::v1::ListQueuesResponse queues, Queues());
  ASSERT_EQ(queues.pauses_size(), 1);
  bool seen = false;
  for (const auto& q : queues.queues()) {
    if (q.depth() == 0) continue;
    seen = true;
    EXPECT_TRUE(q.paused());
    EXPECT_EQ(q.depth(), 1);
    EXPECT_EQ(q.agents(), 1);
    EXPECT_EQ(q.oldest_submitted_ms(), Job(held).submitted_ms());
  }
  EXPECT_TRUE(seen);

  Restart();
  Register("agent", {{"os", "linux"}, {"arch", "x86"}}, "s2");
  ASSERT_OK_AND_ASSIGN(farm::v1::LeaseResponse none, Lease("agent", 0, "s2"));
  EXPECT_FALSE(none.has_job());
  // A Lease parked while paused gets the job the moment the queue is resumed.
  Pending<farm::v1::LeaseResponse> parked;
  farm::v1::LeaseRequest req;
  req.set_agent("agent");
  req.set_session_id("s2");
  scheduler_->Lease(req, 60'000, scheduler_->NewCallId(), parked.Callback());
  EXPECT_FALSE(parked.Ready());
  ASSERT_OK(Resume({{"os", "linux"}}));
  ASSERT_OK_AND_ASSIGN(farm::v1::LeaseResponse lease, parked.Get());
  EXPECT_EQ(lease.job().id(), held);
}

TEST_F(SchedulerQueuesTest, PauseAndResumeRefuseBadSelectors) {
  EXPECT_THAT(Pause({}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Pause({{"", "x"}}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Pause({{"a,b", "x"}}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Resume({{"os", "linux"}}), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK_AND_ASSIGN(farm::v1::ListQueuesResponse queues, Queues());
  EXPECT_EQ(queues.pauses_size(), 0);
}

TEST_F(SchedulerQueuesTest, ReprioritizeMovesAQueuedJobAheadAndRefusesBadInput) {
  const std::string a = Submit(Spec("a"));
  const std::string b = Submit(Spec("b"));
  ASSERT_OK_AND_ASSIGN(farm::v1::Job moved, Reprioritize(b, 7));
  EXPECT_EQ(moved.spec().priority(), 7);
  EXPECT_EQ(Job(b).spec().priority(), 7);
  EXPECT_THAT(Reprioritize("999", 1), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(Reprioritize(a, 1001), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(Job(a).spec().priority(), 0);
  const farm::v1::LeaseResponse first = Next();
  EXPECT_EQ(first.job().id(), b);
  EXPECT_THAT(Reprioritize(b, 1),
              StatusIsWithMessage(absl::StatusCode::kFailedPrecondition, HasSubstr("is RUNNING")));
  EXPECT_EQ(Next().job().id(), a);
}

TEST_F(SchedulerQueuesTest, RetryRunsAFinishedJobAgainAsALinkedJobOnce) {
  const std::string id = Submit(Spec("flaky"));
  const farm::v1::LeaseResponse lease = Next();
  EXPECT_THAT(Retry(id),
              StatusIsWithMessage(absl::StatusCode::kFailedPrecondition,
                                  HasSubstr("is RUNNING; only finished jobs can be retried")));
  Finish(lease, /*ok=*/false);
  ASSERT_OK_AND_ASSIGN(farm::v1::RetryResponse first, Retry(id, "r1"));
  ASSERT_OK_AND_ASSIGN(farm::v1::RetryResponse again, Retry(id, "r1"));  // the RPC retried
  EXPECT_TRUE(again.existing());
  EXPECT_EQ(again.job().id(), first.job().id());
  EXPECT_EQ(first.job().retry_of(), id);
  EXPECT_EQ(Job(id).retried_by(), first.job().id());
  EXPECT_EQ(Job(id).state(), farm::v1::FAILED);
  EXPECT_THAT(Retry(id, "r2"), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(Retry("4242"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(Retry("p77"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(Next().job().id(), first.job().id());
  EXPECT_TRUE(NothingQueued());
}

constexpr char kPipeline[] = R"(
name: p
jobs:
  build:
    steps: [{run: make}]
  test:
    needs: [build]
    steps: [{run: test}]
  deploy:
    needs: [test]
    steps: [{run: deploy}]
  lint:
    steps: [{run: lint}]
)";

TEST_F(SchedulerQueuesTest, RetryOfAPipelineRerunsWhatFailedAndWhatNeedsItWithKeptArtifacts) {
  ASSERT_OK_AND_ASSIGN(farm::v1::SubmitPipelineResponse submitted, SubmitYaml(kPipeline));
  const std::string pid = submitted.pipeline().id();
  std::map<std::string, std::string> first_ids;
  for (const auto& j : submitted.pipeline().jobs()) first_ids[j.name()] = j.job_id();
  farm::v1::Artifact binary;
  binary.set_path("out/bin");
  binary.set_hash(std::string(64, 'a'));
  binary.set_size(3);
  for (int i = 0; i < 3; ++i) {  // build and lint succeed, test fails: deploy is skipped
    const farm::v1::LeaseResponse l = Next();
    const std::string name = l.job().pipeline_job();
    Finish(l, name != "test",
           name == "build" ? std::vector{binary} : std::vector<farm::v1::Artifact>{});
  }
  EXPECT_EQ(GetPipeline(pid).state(), farm::v1::FAILED);

  ASSERT_OK_AND_ASSIGN(farm::v1::RetryResponse retried, Retry(pid));
  EXPECT_EQ(retried.job_ids_size(), 2);  // test and deploy
  farm::v1::Pipeline p = GetPipeline(pid);
  EXPECT_EQ(p.retries(), 1u);
  EXPECT_NE(p.state(), farm::v1::FAILED);
  std::map<std::string, farm::v1::PipelineJob> jobs;
  for (const auto& j : p.jobs()) jobs[j.name()] = j;
  EXPECT_EQ(jobs["build"].job_id(), first_ids["build"]);
  EXPECT_EQ(jobs["lint"].job_id(), first_ids["lint"]);
  EXPECT_EQ(jobs["test"].retry_of(), first_ids["test"]);
  EXPECT_EQ(jobs["deploy"].retry_of(), first_ids["deploy"]);
  EXPECT_EQ(Job(first_ids["test"]).retried_by(), jobs["test"].job_id());

  // The new test job runs at once, with build's artifacts as its inputs.
  const farm::v1::LeaseResponse test = Next();
  EXPECT_EQ(test.job().id(), jobs["test"].job_id());
  ASSERT_EQ(test.job().inputs_size(), 1);
  EXPECT_EQ(test.job().inputs(0).artifacts(0).path(), "out/bin");
  EXPECT_TRUE(NothingQueued());  // deploy waits for the new test
  Finish(test, true);
  const farm::v1::LeaseResponse deploy = Next();
  EXPECT_EQ(deploy.job().id(), jobs["deploy"].job_id());
  Finish(deploy, true);
  EXPECT_EQ(GetPipeline(pid).state(), farm::v1::SUCCEEDED);
  EXPECT_THAT(Retry(pid), StatusIsWithMessage(absl::StatusCode::kFailedPrecondition,
                                              HasSubstr("nothing to retry")));
  EXPECT_THAT(Retry(first_ids["build"]),
              StatusIsWithMessage(absl::StatusCode::kFailedPrecondition, HasSubstr(pid)));
}

TEST_F(SchedulerQueuesTest, ARunningPipelineIsNotRetried) {
  ASSERT_OK_AND_ASSIGN(farm::v1::SubmitPipelineResponse submitted, SubmitYaml(kPipeline));
  EXPECT_THAT(Retry(submitted.pipeline().id()),
              StatusIsWithMessage(absl::StatusCode::kFailedPrecondition,
                                  HasSubstr("only finished pipelines can be retried")));
}

TEST_F(SchedulerQueuesTest, BulkCancelCancelsEveryMatchingQueuedJobInBoundedWrites) {
  const size_t n = Scheduler::kBulkCancelBatch * 2 + 5;
  for (size_t i = 0; i < n; ++i) Submit(Spec("bulk", 0, {{"pool", "ci"}, {"os", "linux"}}));
  const std::string other = Submit(Spec("other", 0, {{"pool", "release"}}));
  const std::string running = Submit(Spec("running", 9, {{"pool", "ci"}}));
  Register("ci", {{"pool", "ci"}});
  ASSERT_OK_AND_ASSIGN(farm::v1::LeaseResponse lease, Lease("ci"));
  EXPECT_EQ(lease.job().id(), running);
  EXPECT_THAT(BulkCancel({{"pool", "ci"}}, farm::v1::RUNNING),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(BulkCancel({}), StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK_AND_ASSIGN(farm::v1::BulkCancelResponse resp, BulkCancel({{"pool", "ci"}}));
  EXPECT_EQ(resp.cancelled(), static_cast<int64_t>(n));
  EXPECT_EQ(resp.batches(), 3);
  EXPECT_EQ(Job("1").state(), farm::v1::CANCELLED);
  EXPECT_EQ(Job(other).state(), farm::v1::QUEUED);
  EXPECT_EQ(Job(running).state(), farm::v1::RUNNING);  // only queued jobs
  ASSERT_OK_AND_ASSIGN(farm::v1::ListQueuesResponse queues, Queues());
  int64_t depth = 0;
  for (const auto& q : queues.queues()) depth += q.depth();
  EXPECT_EQ(depth, 1);
}

}  // namespace
}  // namespace farm::coordinator
