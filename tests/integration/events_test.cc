// The event history as a user reads it with `farmctl events`, on a real farm: a job's whole
// timeline across a lost agent, and a pipeline run's events against what happened.
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/json_util.h"
#include "tests/integration/farm_test_base.h"

namespace farm::testing {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class FarmEventsTest : public FarmTest {
 protected:
  // A short TTL, so that a killed agent's lease ends within the test.
  std::vector<std::string> CoordinatorFlags() const override { return {"--lease_ttl=2s"}; }

  // `farmctl events ARGS...` as text: its lines, each without the time stamp before the kind.
  std::vector<std::string> EventLines(std::vector<std::string> args) {
    args.insert(args.begin(), "events");
    absl::StatusOr<CommandResult> r = farm_->RunFarmctl(args);
    EXPECT_OK(r);
    if (!r.ok()) return {};
    EXPECT_EQ(r->exit_code, 0) << r->DebugString();
    std::vector<std::string> lines;
    for (absl::string_view line : absl::StrSplit(r->out, '\n', absl::SkipEmpty())) {
      const size_t space = line.find(' ');
      lines.emplace_back(space == absl::string_view::npos ? line : line.substr(space + 1));
    }
    return lines;
  }

  // Every event since the farm started (`farmctl events --output=json`).
  std::vector<farm::v1::Event> AllEvents() {
    absl::StatusOr<CommandResult> r = farm_->RunFarmctl({"events", "--since=1h", "--output=json"});
    EXPECT_OK(r);
    if (!r.ok()) return {};
    EXPECT_EQ(r->exit_code, 0) << r->DebugString();
    farm::v1::ListEventsResponse resp;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(r->out, &resp).ok()) << r->out;
    return {resp.events().begin(), resp.events().end()};
  }
};

TEST_F(FarmEventsTest, TheTimelineOfAJobRetriedAfterALostAgent) {
  ASSERT_OK(StartAgent("doomed"));
  // The step runs until the test creates $MARK/release.
  ASSERT_OK_AND_ASSIGN(std::string id, farm_->SubmitJobFile(JobFile(R"job(
name: survivor
env: {MARK: "@DIR@"}
steps:
  - name: wait
    run: while [ ! -e "$MARK/release" ]; do sleep 0.05; done; echo released
)job",
                                                                    {{"DIR", farm_->root()}})));
  // Running on `doomed`, and the coordinator heard that its step started.
  ASSERT_OK(farm_
                ->WaitForJob(id,
                             [](const farm::v1::Job& job) {
                               return job.attempts_size() == 1 &&
                                      job.attempts(0).steps(0).state() == farm::v1::STEP_RUNNING;
                             })
                .status());
  ASSERT_OK(farm_->KillAgent("doomed"));
  ASSERT_OK(StartAgent("rescuer"));
  // Its lease expires, and the job runs again on `rescuer`.
  ASSERT_OK(farm_
                ->WaitForJob(id,
                             [](const farm::v1::Job& job) {
                               return job.attempts_size() == 2 && job.state() == farm::v1::RUNNING;
                             })
                .status());
  ASSERT_OK(WriteFile(farm_->Path("release"), ""));
  ASSERT_OK_AND_ASSIGN(farm::v1::Job job, farm_->WaitForJobDone(id));
  ASSERT_EQ(job.state(), farm::v1::SUCCEEDED) << job.ShortDebugString();

  EXPECT_THAT(EventLines({absl::StrCat("--job=", id)}),
              ElementsAre(AllOf(HasSubstr("JOB_SUBMITTED " + id), HasSubstr("name=survivor")),
                          HasSubstr("JOB_QUEUED " + id),
                          AllOf(HasSubstr("JOB_LEASED " + id), HasSubstr("agent=doomed attempt=1")),
                          AllOf(HasSubstr("STEP_STARTED"), HasSubstr("attempt=1 step=wait#0")),
                          AllOf(HasSubstr("ATTEMPT_ENDED"), HasSubstr("agent=doomed attempt=1"),
                                HasSubstr("outcome=LOST")),
                          AllOf(HasSubstr("JOB_QUEUED " + id), HasSubstr("requeued")),
                          AllOf(HasSubstr("JOB_LEASED"), HasSubstr("agent=rescuer attempt=2")),
                          AllOf(HasSubstr("STEP_STARTED"), HasSubstr("attempt=2 step=wait#0")),
                          AllOf(HasSubstr("STEP_FINISHED"), HasSubstr("attempt=2 step=wait#0"),
                                HasSubstr("SUCCEEDED exit=0")),
                          AllOf(HasSubstr("ATTEMPT_ENDED"), HasSubstr("agent=rescuer attempt=2"),
                                HasSubstr("outcome=SUCCEEDED")),
                          AllOf(HasSubstr("JOB_ENDED " + id), HasSubstr("state=SUCCEEDED"))));
  // The agents' side of it, in the farm's whole history.
  const std::vector<std::string> all = EventLines({"--since=1h"});
  EXPECT_THAT(all, Contains(AllOf(HasSubstr("AGENT_REGISTERED"), HasSubstr("agent=doomed"))));
  EXPECT_THAT(all, Contains(AllOf(HasSubstr("AGENT_LOST"), HasSubstr("agent=doomed"))));
  EXPECT_THAT(all, Contains(AllOf(HasSubstr("AGENT_REGISTERED"), HasSubstr("agent=rescuer"))));
}

TEST_F(FarmEventsTest, APipelineRunsEventsMatchWhatHappened) {
  ASSERT_OK(StartAgent("worker"));
  ASSERT_OK_AND_ASSIGN(std::string pid, farm_->SubmitJobFile(R"(
name: release
jobs:
  build: {steps: [{name: compile, run: echo built}]}
  test: {needs: [build], steps: [{name: unit, run: exit 3}]}
  publish: {needs: [test], steps: [{name: upload, run: echo never}]}
  docs: {needs: [build], steps: [{name: render, run: echo docs}]}
)"));
  ASSERT_OK_AND_ASSIGN(farm::v1::Pipeline pipeline, farm_->WaitForPipelineDone(pid));
  ASSERT_EQ(pipeline.state(), farm::v1::FAILED) << pipeline.ShortDebugString();

  // Each job's events, by name within the pipeline, and the job records to hold them against.
  std::map<std::string, std::vector<farm::v1::Event>> by_job;
  for (farm::v1::Event& e : AllEvents()) {
    if (e.pipeline_id() != pid) continue;
    EXPECT_FALSE(e.job_id().empty()) << e.ShortDebugString();
    by_job[e.pipeline_job()].push_back(std::move(e));
  }
  std::map<std::string, farm::v1::Job> jobs;
  for (const farm::v1::PipelineJob& pj : pipeline.jobs()) {
    ASSERT_OK_AND_ASSIGN(jobs[pj.name()], farm_->GetJob(pj.job_id()));
  }
  ASSERT_EQ(by_job.size(), 4u);
  auto kinds = [&](const std::string& name) {
    std::vector<farm::v1::EventKind> out;
    for (const farm::v1::Event& e : by_job[name]) {
      EXPECT_EQ(e.job_id(), jobs[name].id()) << name;
      out.push_back(e.kind());
    }
    return out;
  };
  using farm::v1::EventKind;
  const std::vector<EventKind> ran_once = {farm::v1::JOB_SUBMITTED, farm::v1::JOB_WAITING,
                                           farm::v1::JOB_QUEUED,    farm::v1::JOB_LEASED,
                                           farm::v1::STEP_STARTED,  farm::v1::STEP_FINISHED,
                                           farm::v1::ATTEMPT_ENDED, farm::v1::JOB_ENDED};
  // build needs nothing: queued at once.
  EXPECT_THAT(kinds("build"),
              ElementsAre(farm::v1::JOB_SUBMITTED, farm::v1::JOB_QUEUED, farm::v1::JOB_LEASED,
                          farm::v1::STEP_STARTED, farm::v1::STEP_FINISHED, farm::v1::ATTEMPT_ENDED,
                          farm::v1::JOB_ENDED));
  EXPECT_EQ(kinds("test"), ran_once);
  EXPECT_EQ(kinds("docs"), ran_once);
  // publish never ran: it waited, then was skipped when test failed.
  EXPECT_THAT(kinds("publish"),
              ElementsAre(farm::v1::JOB_SUBMITTED, farm::v1::JOB_WAITING, farm::v1::JOB_ENDED));

  // What the events say agrees with the records: outcomes, exit codes, agents, times.
  for (const auto& [name, events] : by_job) {
    const farm::v1::Job& job = jobs[name];
    const farm::v1::Event& ended = events.back();
    EXPECT_EQ(ended.state(), job.state()) << name;
    EXPECT_EQ(ended.time_ms(), job.finished_ms()) << name;
    for (const farm::v1::Event& e : events) {
      if (e.kind() == farm::v1::JOB_LEASED) {
        EXPECT_EQ(e.agent(), "worker");
        EXPECT_EQ(e.epoch(), job.attempts(0).epoch()) << name;
        EXPECT_EQ(e.time_ms(), job.attempts(0).started_ms()) << name;
      }
      if (e.kind() == farm::v1::STEP_FINISHED) {
        EXPECT_EQ(e.exit_code(), job.attempts(0).steps(0).exit_code()) << name;
        EXPECT_EQ(e.step(), job.attempts(0).steps(0).name()) << name;
      }
    }
  }
  EXPECT_EQ(by_job["test"][5].exit_code(), 3);
  EXPECT_EQ(by_job["test"].back().state(), farm::v1::FAILED);
  EXPECT_EQ(by_job["publish"].back().state(), farm::v1::SKIPPED);
  // test and docs were queued only once build had ended.
  const int64_t build_ended = by_job["build"].back().time_ms();
  EXPECT_GE(by_job["test"][2].time_ms(), build_ended);
  EXPECT_GE(by_job["docs"][2].time_ms(), build_ended);
  // And publish was skipped only once test had ended.
  EXPECT_GE(by_job["publish"].back().time_ms(), by_job["test"].back().time_ms());
}

}  // namespace
}  // namespace farm::testing
