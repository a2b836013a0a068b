// The operators' queue commands on the real binaries: `farmctl admin pause/resume/queues/
// reprioritize/retry/cancel`.
#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "tests/integration/farm_test_base.h"

namespace farm::testing {
namespace {

using ::testing::HasSubstr;

using AdminQueuesTest = FarmTest;

// One line on stderr, nothing on stdout: how farmctl answers bad input.
void ExpectOneLineError(const CommandResult& r, int exit_code, const std::string& says) {
  EXPECT_EQ(r.exit_code, exit_code) << r.DebugString();
  EXPECT_EQ(r.out, "") << r.DebugString();
  EXPECT_THAT(r.err, HasSubstr(says)) << r.DebugString();
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.DebugString();
}

absl::StatusOr<farm::v1::ListQueuesResponse> Queues(MiniFarm& farm) {
  FARM_ASSIGN_OR_RETURN(CommandResult r, farm.RunFarmctl({"admin", "queues", "--output=json"}));
  if (r.exit_code != 0) return absl::InternalError(r.DebugString());
  farm::v1::ListQueuesResponse resp;
  if (!google::protobuf::util::JsonStringToMessage(r.out, &resp).ok()) {
    return absl::InternalError(r.DebugString());
  }
  return resp;
}

// A job that runs anywhere and ends at once: proof that the agent is taking work.
absl::Status RunControlJob(MiniFarm& farm) {
  FARM_ASSIGN_OR_RETURN(std::string id, farm.SubmitJobFile("steps: [{run: 'true'}]"));
  FARM_ASSIGN_OR_RETURN(farm::v1::Job job, farm.WaitForJobDone(id));
  if (job.state() != farm::v1::SUCCEEDED) return absl::InternalError(job.ShortDebugString());
  return absl::OkStatus();
}

TEST_F(AdminQueuesTest, APausedQueueHoldsItsJobsAcrossARestartUntilResumed) {
  ASSERT_OK(StartAgent("a1", {{"os", "linux"}, {"arch", "x86"}}));
  ASSERT_OK_AND_ASSIGN(CommandResult paused, farm_->RunFarmctl({"admin", "pause", "os=linux"}));
  ASSERT_EQ(paused.exit_code, 0) << paused.DebugString();
  EXPECT_THAT(paused.out, HasSubstr("paused: os=linux"));
  ASSERT_OK_AND_ASSIGN(std::string held, farm_->SubmitJobFile(R"(
labels: {os: linux, arch: x86}
steps: [{run: 'true'}]
)"));
  ASSERT_OK(RunControlJob(*farm_));  // the agent idles with the held job queued
  ASSERT_OK_AND_ASSIGN(farm::v1::Job job, farm_->GetJob(held));
  EXPECT_EQ(job.state(), farm::v1::QUEUED);
  ASSERT_OK_AND_ASSIGN(farm::v1::ListQueuesResponse queues, Queues(*farm_));
  int64_t depth = 0;
  for (const farm::v1::QueueInfo& q : queues.queues()) {
    if (q.depth() == 0) continue;
    depth += q.depth();
    EXPECT_TRUE(q.paused());
    EXPECT_EQ(q.agents(), 1);
  }
  EXPECT_EQ(depth, 1);
  ASSERT_OK_AND_ASSIGN(CommandResult text, farm_->RunFarmctl({"admin", "queues"}));
  EXPECT_THAT(text.out, HasSubstr("paused: os=linux"));

  ASSERT_OK(farm_->StopCoordinator().status());
  ASSERT_OK(farm_->RestartCoordinator());
  ASSERT_OK(RunControlJob(*farm_));
  ASSERT_OK_AND_ASSIGN(job, farm_->GetJob(held));
  EXPECT_EQ(job.state(), farm::v1::QUEUED) << "the pause must survive a restart";

  ASSERT_OK_AND_ASSIGN(CommandResult resumed, farm_->RunFarmctl({"admin", "resume", "os=linux"}));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.DebugString();
  ASSERT_OK_AND_ASSIGN(job, farm_->WaitForJobDone(held));
  EXPECT_EQ(job.state(), farm::v1::SUCCEEDED);
  ASSERT_OK_AND_ASSIGN(CommandResult again, farm_->RunFarmctl({"admin", "resume", "os=linux"}));
  ExpectOneLineError(again, 4, "no pause of");
}

TEST_F(AdminQueuesTest, ReprioritizeMovesAQueuedJobAheadAndBadInputChangesNothing) {
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(std::string id, farm_->SubmitJobFile(JobFile(
                                             "steps: [{run: 'echo @N@ >> \"@DIR@/order\"'}]",
                                             {{"N", absl::StrCat(i)}, {"DIR", farm_->root()}})));
    ids.push_back(id);
  }
  ASSERT_OK_AND_ASSIGN(CommandResult moved,
                       farm_->RunFarmctl({"admin", "reprioritize", ids[2], "10"}));
  ASSERT_EQ(moved.exit_code, 0) << moved.DebugString();
  EXPECT_THAT(moved.out, HasSubstr("priority 10"));
  ExpectOneLineError(*farm_->RunFarmctl({"admin", "reprioritize", "9999", "1"}), 4, "9999");
  ExpectOneLineError(*farm_->RunFarmctl({"admin", "reprioritize", ids[0], "5000"}), 4,
                     "out of range");
  ExpectOneLineError(*farm_->RunFarmctl({"admin", "reprioritize", ids[0], "high"}), 64,
                     "whole number");
  ASSERT_OK_AND_ASSIGN(farm::v1::Job first, farm_->GetJob(ids[0]));
  EXPECT_EQ(first.spec().priority(), 0);

  ASSERT_OK(StartAgent("a1"));
  for (const std::string& id : ids) ASSERT_OK(farm_->WaitForJobDone(id).status());
  EXPECT_EQ(ReadFileOrEmpty(farm_->Path("order")), "2\n0\n1\n");
  ExpectOneLineError(*farm_->RunFarmctl({"admin", "reprioritize", ids[0], "1"}), 4,
                     "only queued jobs");
}

TEST_F(AdminQueuesTest, RetryOfAFailedPipelineRerunsTheFailedJobAndItsDependents) {
  ASSERT_OK(StartAgent("a1"));
  ASSERT_OK_AND_ASSIGN(std::string pid, farm_->SubmitJobFile(JobFile(R"(
name: flaky
jobs:
  build:
    steps: [{run: "mkdir -p out && echo built >> \"@DIR@/builds\" && echo bin > out/bin"}]
    artifacts: [out/bin]
  test:
    needs: [build]
    steps: [{run: "test -e \"@DIR@/fixed\" || exit 1; cat inputs/build/out/bin"}]
  deploy:
    needs: [test]
    steps: [{run: "echo deployed"}]
)",
                                                                     {{"DIR", farm_->root()}})));
  ASSERT_OK_AND_ASSIGN(farm::v1::Pipeline failed, farm_->WaitForPipelineDone(pid));
  ASSERT_EQ(failed.state(), farm::v1::FAILED) << failed.ShortDebugString();
  std::map<std::string, farm::v1::PipelineJob> before;
  for (const auto& j : failed.jobs()) before[j.name()] = j;
  EXPECT_EQ(before["deploy"].state(), farm::v1::SKIPPED);
  ExpectOneLineError(*farm_->RunFarmctl({"admin", "retry", before["build"].job_id()}), 4,
                     "retry the pipeline");
  ExpectOneLineError(*farm_->RunFarmctl({"admin", "retry", "p999"}), 4, "p999");

  ASSERT_OK(WriteFile(farm_->Path("fixed"), ""));
  ASSERT_OK_AND_ASSIGN(CommandResult retried, farm_->RunFarmctl({"admin", "retry", pid}));
  ASSERT_EQ(retried.exit_code, 0) << retried.DebugString();
  EXPECT_THAT(retried.out, HasSubstr(absl::StrCat("pipeline ", pid, " runs again")));
  ASSERT_OK_AND_ASSIGN(farm::v1::Pipeline done, farm_->WaitForPipelineDone(pid));
  EXPECT_EQ(done.state(), farm::v1::SUCCEEDED) << done.ShortDebugString();
  std::map<std::string, farm::v1::PipelineJob> after;
  for (const auto& j : done.jobs()) after[j.name()] = j;
  EXPECT_EQ(after["build"].job_id(), before["build"].job_id());  // kept, not run again
  EXPECT_EQ(after["test"].retry_of(), before["test"].job_id());
  EXPECT_EQ(after["deploy"].retry_of(), before["deploy"].job_id());
  EXPECT_EQ(ReadFileOrEmpty(farm_->Path("builds")), "built\n");
  ASSERT_OK_AND_ASSIGN(std::string logs, farm_->Logs(after["test"].job_id()));
  EXPECT_EQ(logs, "bin\n");  // build's artifact flowed to the new test job
  ASSERT_OK_AND_ASSIGN(farm::v1::Job old_test, farm_->GetJob(before["test"].job_id()));
  EXPECT_EQ(old_test.retried_by(), after["test"].job_id());
  ASSERT_OK_AND_ASSIGN(CommandResult shown, farm_->RunFarmctl({"get", pid}));
  EXPECT_THAT(shown.out, HasSubstr("retried 1 time"));
  ASSERT_OK_AND_ASSIGN(CommandResult job_shown, farm_->RunFarmctl({"get", after["test"].job_id()}));
  EXPECT_THAT(job_shown.out, HasSubstr(absl::StrCat("retry of:  job ", before["test"].job_id())));
}

TEST_F(AdminQueuesTest, RetryOfAJobRefusesOneThatIsRunningAndRunsAFinishedOneAgain) {
  ASSERT_OK(StartAgent("a1"));
  ASSERT_OK_AND_ASSIGN(
      std::string id,
      farm_->SubmitJobFile(
          JobFile(R"(steps: [{run: "while [ ! -e \"@DIR@/go\" ]; do sleep 0.05; done; exit 3"}])",
                  {{"DIR", farm_->root()}})));
  ASSERT_OK(farm_->WaitForJobState(id, farm::v1::RUNNING).status());
  ExpectOneLineError(*farm_->RunFarmctl({"admin", "retry", id}), 4,
                     absl::StrCat("job ", id, " is RUNNING; only finished jobs can be retried"));
  ASSERT_OK(WriteFile(farm_->Path("go"), ""));
  ASSERT_OK_AND_ASSIGN(farm::v1::Job failed, farm_->WaitForJobDone(id));
  EXPECT_EQ(failed.state(), farm::v1::FAILED);
  ASSERT_OK_AND_ASSIGN(CommandResult retried, farm_->RunFarmctl({"admin", "retry", id}));
  ASSERT_EQ(retried.exit_code, 0) << retried.DebugString();
  const std::string new_id =
      std::string(absl::StripAsciiWhitespace(retried.out.substr(retried.out.rfind(' ') + 1)));
  ASSERT_OK_AND_ASSIGN(farm::v1::Job again, farm_->WaitForJobDone(new_id));
  EXPECT_EQ(again.retry_of(), id);
  ExpectOneLineError(*farm_->RunFarmctl({"admin", "retry", "4242"}), 4, "4242");
}

TEST_F(AdminQueuesTest, BulkCancelCancelsTheMatchingQueuedJobsOnly) {
  std::vector<std::string> ci;
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(std::string id,
                         farm_->SubmitJobFile("labels: {pool: ci}\nsteps: [{run: 'true'}]"));
    ci.push_back(id);
  }
  ASSERT_OK_AND_ASSIGN(std::string other,
                       farm_->SubmitJobFile("labels: {pool: release}\nsteps: [{run: 'true'}]"));
  ExpectOneLineError(*farm_->RunFarmctl({"admin", "cancel", "--labels=pool=ci", "--state=running"}),
                     64, "only queued jobs");
  ExpectOneLineError(*farm_->RunFarmctl({"admin", "pause", "pool"}), 64, "key=value");
  ASSERT_OK_AND_ASSIGN(farm::v1::Job still, farm_->GetJob(ci[0]));
  EXPECT_EQ(still.state(), farm::v1::QUEUED);
  ASSERT_OK_AND_ASSIGN(CommandResult r, farm_->RunFarmctl({"admin", "cancel", "--labels=pool=ci",
                                                           "--state=queued"}));
  ASSERT_EQ(r.exit_code, 0) << r.DebugString();
  EXPECT_EQ(r.out, "cancelled 3 queued jobs matching pool=ci\n");
  for (const std::string& id : ci) {
    ASSERT_OK_AND_ASSIGN(farm::v1::Job job, farm_->GetJob(id));
    EXPECT_EQ(job.state(), farm::v1::CANCELLED);
  }
  ASSERT_OK_AND_ASSIGN(farm::v1::Job kept, farm_->GetJob(other));
  EXPECT_EQ(kept.state(), farm::v1::QUEUED);
}

}  // namespace
}  // namespace farm::testing
