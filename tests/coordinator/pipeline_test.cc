// Pipelines in the scheduler: needs, artifact hand-off, skipping, exit-code retries,
// concurrency groups, gates and cancelling, against the in-memory store and a fake clock.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "common/pipeline_file.h"
#include "tests/coordinator/scheduler_fixture.h"
#include "tests/testing/status_matchers.h"

namespace farm::coordinator {
namespace {

using farm::testing::StatusIs;
using farm::testing::StatusIsWithMessage;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class PipelineTest : public SchedulerTest {
 protected:
  void SetUp() override {
    SchedulerTest::SetUp();
    Register("agent");
  }

  absl::StatusOr<farm::v1::SubmitPipelineResponse> SubmitYaml(const std::string& yaml,
                                                              const std::string& request_id = "") {
    auto spec = common::ParsePipelineFile(yaml, "pipeline.yaml");
    if (!spec.ok()) return spec.status();
    return Await<farm::v1::SubmitPipelineResponse>(
        [&](auto cb) { scheduler_->SubmitPipeline(*spec, request_id, cb); });
  }

  farm::v1::Pipeline Get(const std::string& id) {
    auto p = scheduler_->GetPipeline(id);
    EXPECT_OK(p);
    return p.ok() ? *p : farm::v1::Pipeline();
  }

  // name → state of every job of the pipeline.
  std::map<std::string, farm::v1::JobState> States(const std::string& id) {
    std::map<std::string, farm::v1::JobState> out;
    const farm::v1::Pipeline pipeline = Get(id);
    for (const auto& job : pipeline.jobs()) out[job.name()] = job.state();
    return out;
  }

  // Leases the next job; fails the test when there is none.
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

  // Completes a lease; a failure is reported as step 0 exiting with `exit_code`.
  void Finish(const farm::v1::LeaseResponse& lease, int exit_code = 0,
              std::vector<farm::v1::Artifact> artifacts = {}) {
    if (exit_code != 0) {
      farm::v1::StepFinishedRequest step;
      *step.mutable_lease() = lease.lease();
      step.set_step_index(0);
      step.mutable_result()->set_state(farm::v1::STEP_FAILED);
      step.mutable_result()->set_exit_code(exit_code);
      ASSERT_OK(Await<farm::v1::Ack>([&](auto cb) { scheduler_->StepFinished(step, cb); }));
    }
    farm::v1::CompleteJobRequest req;
    *req.mutable_lease() = lease.lease();
    req.set_outcome(exit_code == 0 ? farm::v1::ATTEMPT_SUCCEEDED : farm::v1::ATTEMPT_FAILED);
    for (auto& a : artifacts) *req.add_artifacts() = std::move(a);
    ASSERT_OK(
        Await<farm::v1::CompleteJobResponse>([&](auto cb) { scheduler_->CompleteJob(req, cb); }));
  }
};

farm::v1::Artifact MakeArtifact(const std::string& path, char fill) {
  farm::v1::Artifact a;
  a.set_path(path);
  a.set_hash(std::string(64, fill));
  a.set_size(3);
  return a;
}

constexpr char kDiamond[] = R"(
name: diamond
jobs:
  a: {steps: [{run: make a}], artifacts: [a.txt]}
  b: {needs: [a], steps: [{run: make b}], artifacts: [b.txt]}
  c: {needs: a, steps: [{run: make c}], artifacts: [c.txt]}
  d: {needs: [b, c], steps: [{run: cat inputs/b/b.txt inputs/c/c.txt}]}
)";

TEST_F(PipelineTest, ADiamondRunsInOrderAndHandsArtifactsOn) {
  ASSERT_OK_AND_ASSIGN(auto submitted, SubmitYaml(kDiamond));
  const std::string id = submitted.pipeline().id();
  EXPECT_EQ(id, "p1");
  EXPECT_EQ(submitted.pipeline().state(), farm::v1::QUEUED);
  EXPECT_THAT(States(id),
              ElementsAre(std::pair("a", farm::v1::QUEUED), std::pair("b", farm::v1::WAITING),
                          std::pair("c", farm::v1::WAITING), std::pair("d", farm::v1::WAITING)));

  farm::v1::LeaseResponse a = Next();
  EXPECT_EQ(a.job().pipeline_job(), "a");
  EXPECT_TRUE(NothingQueued()) << "b and c must wait for a";
  EXPECT_EQ(Get(id).state(), farm::v1::RUNNING);
  Finish(a, 0, {MakeArtifact("a.txt", 'a')});

  farm::v1::LeaseResponse first = Next();
  farm::v1::LeaseResponse second = Next();
  EXPECT_EQ(first.job().pipeline_job(), "b");
  EXPECT_EQ(second.job().pipeline_job(), "c");
  for (const auto* lease : {&first, &second}) {
    ASSERT_EQ(lease->job().inputs_size(), 1);
    EXPECT_EQ(lease->job().inputs(0).dir(), "a");
    EXPECT_EQ(lease->job().inputs(0).job_id(), a.job().id());
    ASSERT_EQ(lease->job().inputs(0).artifacts_size(), 1);
    EXPECT_EQ(lease->job().inputs(0).artifacts(0).path(), "a.txt");
  }
  Finish(first, 0, {MakeArtifact("b.txt", 'b')});
  EXPECT_TRUE(NothingQueued()) << "d must wait for c too";
  Finish(second, 0, {MakeArtifact("c.txt", 'c')});

  farm::v1::LeaseResponse d = Next();
  EXPECT_EQ(d.job().pipeline_job(), "d");
  ASSERT_EQ(d.job().inputs_size(), 2);
  EXPECT_EQ(d.job().inputs(0).dir(), "b");
  EXPECT_EQ(d.job().inputs(0).artifacts(0).path(), "b.txt");
  EXPECT_EQ(d.job().inputs(1).dir(), "c");
  EXPECT_EQ(d.job().inputs(1).artifacts(0).path(), "c.txt");
  Finish(d);

  const farm::v1::Pipeline done = Get(id);
  EXPECT_EQ(done.state(), farm::v1::SUCCEEDED);
  EXPECT_GT(done.finished_ms(), 0);
  EXPECT_THAT(done.jobs(3).needs(), ElementsAre("b", "c"));
}

TEST_F(PipelineTest, AFailureSkipsWhatNeedsItAndFailsThePipelineOnceAllEnded) {
  ASSERT_OK_AND_ASSIGN(auto submitted, SubmitYaml(R"(
name: skip
jobs:
  a: {steps: [{run: "false"}]}
  b: {needs: [a], steps: [{run: "true"}]}
  c: {needs: [b], steps: [{run: "true"}]}
  other: {steps: [{run: "true"}]}
)"));
  const std::string id = submitted.pipeline().id();
  farm::v1::LeaseResponse a = Next();
  farm::v1::LeaseResponse other = Next();
  ASSERT_EQ(a.job().pipeline_job(), "a");
  Finish(a, 1);
  EXPECT_THAT(
      States(id),
      ElementsAre(std::pair("a", farm::v1::FAILED), std::pair("b", farm::v1::SKIPPED),
                  std::pair("c", farm::v1::SKIPPED), std::pair("other", farm::v1::RUNNING)));
  const farm::v1::Pipeline pipeline = Get(id);
  EXPECT_THAT(Job(pipeline.jobs(1).job_id()).reason(), HasSubstr("needs a, which ended FAILED"));
  EXPECT_EQ(Get(id).state(), farm::v1::RUNNING) << "independent work goes on";
  Finish(other);
  EXPECT_EQ(Get(id).state(), farm::v1::FAILED);
}

TEST_F(PipelineTest, ExitCodeRetriesRunAgainOnlyOnTheListedCodes) {
  ASSERT_OK_AND_ASSIGN(auto submitted, SubmitYaml(R"(
name: flaky
jobs:
  flaky:
    steps: [{run: "exit 75"}]
    retry: {max_attempts: 3, on_exit_codes: [75]}
  broken:
    steps: [{run: "exit 2"}]
    retry: {max_attempts: 3, on_exit_codes: [75]}
)"));
  const std::string id = submitted.pipeline().id();
  farm::v1::LeaseResponse flaky = Next();
  farm::v1::LeaseResponse broken = Next();
  Finish(flaky, 75);
  Finish(broken, 2);
  EXPECT_EQ(Job(broken.job().id()).state(), farm::v1::FAILED) << "2 is not a code to retry on";

  farm::v1::LeaseResponse again = Next();
  EXPECT_EQ(again.job().id(), flaky.job().id());
  EXPECT_EQ(again.lease().attempt(), 2u);
  Finish(again);
  const farm::v1::Job job = Job(flaky.job().id());
  EXPECT_EQ(job.state(), farm::v1::SUCCEEDED);
  ASSERT_EQ(job.attempts_size(), 2);
  EXPECT_EQ(job.attempts(0).outcome(), farm::v1::ATTEMPT_FAILED);
  EXPECT_EQ(Get(id).jobs(0).attempts(), 2u);
}

TEST_F(PipelineTest, RetriesStopAtMaxAttempts) {
  farm::v1::JobSpec spec = Spec("flaky");
  spec.mutable_retry()->set_max_attempts(2);  // any failure
  const std::string id = Submit(spec);
  Finish(Next(), 1);
  Finish(Next(), 1);
  EXPECT_TRUE(NothingQueued());
  const farm::v1::Job job = Job(id);
  EXPECT_EQ(job.state(), farm::v1::FAILED);
  EXPECT_EQ(job.attempts_size(), 2);
}

TEST_F(PipelineTest, AConcurrencyGroupAdmitsAtMostItsLimitInSubmitOrder) {
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    farm::v1::JobSpec spec = Spec("publish-" + std::to_string(i));
    spec.set_concurrency_group("publish");
    spec.set_concurrency(2);
    ids.push_back(Submit(spec));
  }
  EXPECT_EQ(Job(ids[2]).state(), farm::v1::WAITING);
  EXPECT_THAT(Job(ids[2]).reason(), HasSubstr("concurrency group publish"));
  farm::v1::LeaseResponse first = Next();
  farm::v1::LeaseResponse second = Next();
  EXPECT_TRUE(NothingQueued());
  EXPECT_EQ(first.job().id(), ids[0]);
  EXPECT_EQ(second.job().id(), ids[1]);

  // The places survive a restart. The agent does not come back: its attempts end as lost, and
  // the two jobs run again, still holding their places, while the others wait.
  Restart();
  ExpireLeases();
  Register("agent", {}, "s2");
  std::vector<std::string> leased;
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(farm::v1::LeaseResponse lease, Lease("agent", 0, "s2"));
    if (lease.has_job()) leased.push_back(lease.job().id());
  }
  EXPECT_THAT(leased, ElementsAre(ids[0], ids[1]));
  EXPECT_EQ(Job(ids[2]).state(), farm::v1::WAITING);
  EXPECT_EQ(Job(ids[3]).state(), farm::v1::WAITING);
}

TEST_F(PipelineTest, AFinishedJobGivesItsPlaceToTheNextWaitingOne) {
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    farm::v1::JobSpec spec = Spec("deploy-" + std::to_string(i));
    spec.set_concurrency_group("deploy");
    ids.push_back(Submit(spec));  // concurrency 0 = 1
  }
  farm::v1::LeaseResponse first = Next();
  EXPECT_TRUE(NothingQueued());
  Finish(first);
  farm::v1::LeaseResponse second = Next();
  EXPECT_EQ(second.job().id(), ids[1]);
  ASSERT_OK(Await<farm::v1::Job>([&](auto cb) { scheduler_->Cancel(ids[2], cb); }));
  EXPECT_EQ(Job(ids[2]).state(), farm::v1::CANCELLED);
  Finish(second);
  EXPECT_TRUE(NothingQueued());
}

TEST_F(PipelineTest, AJobWithoutStepsSucceedsAtOnce) {
  ASSERT_OK_AND_ASSIGN(auto submitted, SubmitYaml(R"(
name: gate
jobs:
  build: {steps: [{run: make}]}
  gate: {needs: [build]}
  ship: {needs: [gate], steps: [{run: ship}]}
)"));
  Finish(Next());
  EXPECT_EQ(States(submitted.pipeline().id())["gate"], farm::v1::SUCCEEDED);
  EXPECT_EQ(Next().job().pipeline_job(), "ship");
}

TEST_F(PipelineTest, CancellingAPipelineCancelsEveryJobThatHasNotEnded) {
  ASSERT_OK_AND_ASSIGN(auto submitted, SubmitYaml(kDiamond));
  const std::string id = submitted.pipeline().id();
  farm::v1::LeaseResponse a = Next();
  ASSERT_OK_AND_ASSIGN(farm::v1::Pipeline cancelled, Await<farm::v1::Pipeline>([&](auto cb) {
                         scheduler_->CancelPipeline(id, cb);
                       }));
  EXPECT_TRUE(cancelled.cancel_requested());
  EXPECT_THAT(
      States(id),
      ElementsAre(std::pair("a", farm::v1::RUNNING), std::pair("b", farm::v1::CANCELLED),
                  std::pair("c", farm::v1::CANCELLED), std::pair("d", farm::v1::CANCELLED)));
  // The running job is asked to stop; once it has, the pipeline is CANCELLED.
  farm::v1::CompleteJobRequest req;
  *req.mutable_lease() = a.lease();
  req.set_outcome(farm::v1::ATTEMPT_CANCELLED);
  ASSERT_OK(
      Await<farm::v1::CompleteJobResponse>([&](auto cb) { scheduler_->CompleteJob(req, cb); }));
  EXPECT_EQ(Get(id).state(), farm::v1::CANCELLED);
}

TEST_F(PipelineTest, ARetriedSubmitReturnsTheSamePipeline) {
  ASSERT_OK_AND_ASSIGN(auto first, SubmitYaml(kDiamond, "req-1"));
  ASSERT_OK_AND_ASSIGN(auto again, SubmitYaml(kDiamond, "req-1"));
  EXPECT_TRUE(again.existing());
  EXPECT_EQ(again.pipeline().id(), first.pipeline().id());
  EXPECT_EQ(again.pipeline().state(), farm::v1::QUEUED);
  EXPECT_EQ(again.pipeline().jobs(0).state(), farm::v1::QUEUED);
  ASSERT_OK_AND_ASSIGN(auto list, scheduler_->ListPipelines({}));
  ASSERT_EQ(list.pipelines_size(), 1);
  // A job submit with the same request id is a different thing, and no job's id can pass for
  // a pipeline's.
  Submit(Spec("job"), "req-1");
  ASSERT_OK_AND_ASSIGN(list, scheduler_->ListPipelines({}));
  EXPECT_EQ(list.pipelines_size(), 1);
  EXPECT_THAT(Await<farm::v1::SubmitJobResponse>(
                  [&](auto cb) { scheduler_->Submit(Spec("job"), "\x01pipeline/req-1", cb); }),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(PipelineTest, ListIsNewestFirstInPages) {
  for (int i = 0; i < 3; ++i) ASSERT_OK(SubmitYaml(kDiamond).status());
  farm::v1::ListPipelinesRequest req;
  req.set_limit(2);
  ASSERT_OK_AND_ASSIGN(auto page1, scheduler_->ListPipelines(req));
  ASSERT_EQ(page1.pipelines_size(), 2);
  EXPECT_EQ(page1.pipelines(0).id(), "p3");
  EXPECT_EQ(page1.pipelines(1).id(), "p2");
  EXPECT_EQ(page1.pipelines(0).jobs_size(), 4);
  req.set_page_token(page1.next_page_token());
  ASSERT_OK_AND_ASSIGN(auto page2, scheduler_->ListPipelines(req));
  ASSERT_EQ(page2.pipelines_size(), 1);
  EXPECT_EQ(page2.pipelines(0).id(), "p1");
  EXPECT_TRUE(page2.next_page_token().empty());
}

TEST_F(PipelineTest, ACycleIsRefusedWithItsPath) {
  farm::v1::PipelineSpec spec;
  spec.set_name("cycle");
  for (const auto& [name, need] :
       std::vector<std::pair<std::string, std::string>>{{"a", "c"}, {"b", "a"}, {"c", "b"}}) {
    farm::v1::PipelineJobSpec* job = spec.add_jobs();
    job->set_name(name);
    job->add_needs(need);
    job->mutable_spec()->add_steps()->set_run("true");
  }
  EXPECT_THAT(Await<farm::v1::SubmitPipelineResponse>(
                  [&](auto cb) { scheduler_->SubmitPipeline(spec, "", cb); }),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("cycle")));
  ASSERT_OK_AND_ASSIGN(auto list, scheduler_->ListPipelines({}));
  EXPECT_EQ(list.pipelines_size(), 0);
  EXPECT_THAT(scheduler_->GetPipeline("p1"), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(PipelineTest, PipelinesSurviveARestartMidway) {
  ASSERT_OK_AND_ASSIGN(auto submitted, SubmitYaml(kDiamond));
  const std::string id = submitted.pipeline().id();
  Finish(Next(), 0, {MakeArtifact("a.txt", 'a')});
  Restart();
  Register("agent");
  farm::v1::LeaseResponse b = Next();
  farm::v1::LeaseResponse c = Next();
  Finish(b);
  Finish(c);
  farm::v1::LeaseResponse d = Next();
  EXPECT_EQ(d.job().pipeline_job(), "d");
  Finish(d);
  EXPECT_EQ(Get(id).state(), farm::v1::SUCCEEDED);
}

}  // namespace
}  // namespace farm::coordinator
