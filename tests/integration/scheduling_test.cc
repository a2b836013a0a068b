// Which agent runs which job, and in what order: label matching and priority, on a real farm.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/integration/farm_test_base.h"

namespace farm::testing {
namespace {

using SchedulingTest = FarmTest;

TEST_F(SchedulingTest, AgentsGetOnlyJobsWhoseLabelsTheyHave) {
  ASSERT_OK(StartAgent("agent-a", {{"pool", "a"}}, 2));
  ASSERT_OK(StartAgent("agent-b", {{"pool", "b"}, {"gpu", "yes"}}, 2));

  struct Submitted {
    std::string id;
    std::string expected_agent;
  };
  std::vector<Submitted> jobs;
  for (int i = 0; i < 3; ++i) {
    for (const auto& [labels, agent] :
         std::vector<std::pair<std::string, std::string>>{{"{pool: a}", "agent-a"},
                                                          {"{pool: b}", "agent-b"},
                                                          {"{pool: b, gpu: 'yes'}", "agent-b"}}) {
      ASSERT_OK_AND_ASSIGN(std::string id, farm_->SubmitJobFile(JobFile(R"job(
name: labelled
labels: @LABELS@
steps:
  - run: echo "ran on a matching agent"
)job",
                                                                        {{"LABELS", labels}})));
      jobs.push_back({id, agent});
    }
  }
  // Nobody has pool=c, and agent-a lacks gpu: these two must wait.
  ASSERT_OK_AND_ASSIGN(std::string unmatched_c,
                       farm_->SubmitJobFile("labels: {pool: c}\nsteps: [{run: 'true'}]\n"));
  ASSERT_OK_AND_ASSIGN(
      std::string unmatched_a_gpu,
      farm_->SubmitJobFile("labels: {pool: a, gpu: 'yes'}\nsteps: [{run: 'true'}]\n"));

  for (const Submitted& submitted : jobs) {
    ASSERT_OK_AND_ASSIGN(farm::v1::Job job, farm_->WaitForJobDone(submitted.id));
    EXPECT_EQ(job.state(), farm::v1::SUCCEEDED) << job.ShortDebugString();
    ASSERT_EQ(job.attempts_size(), 1) << job.ShortDebugString();
    EXPECT_EQ(job.attempts(0).agent(), submitted.expected_agent) << job.ShortDebugString();
  }
  // Both agents are idle now and would have taken them at once if they matched.
  for (const std::string& id : {unmatched_c, unmatched_a_gpu}) {
    ASSERT_OK_AND_ASSIGN(farm::v1::Job job, farm_->GetJob(id));
    EXPECT_EQ(job.state(), farm::v1::QUEUED) << job.ShortDebugString();
    EXPECT_EQ(job.attempts_size(), 0) << job.ShortDebugString();
  }

  // A matching agent that arrives later picks the waiting job up.
  ASSERT_OK(StartAgent("agent-c", {{"pool", "c"}}));
  ASSERT_OK_AND_ASSIGN(farm::v1::Job late, farm_->WaitForJobDone(unmatched_c));
  EXPECT_EQ(late.state(), farm::v1::SUCCEEDED) << late.ShortDebugString();
  ASSERT_EQ(late.attempts_size(), 1);
  EXPECT_EQ(late.attempts(0).agent(), "agent-c");

  ASSERT_OK_AND_ASSIGN(CommandResult cancel, farm_->RunFarmctl({"cancel", unmatched_a_gpu}));
  EXPECT_EQ(cancel.exit_code, 0) << cancel.DebugString();
}

TEST_F(SchedulingTest, HigherPriorityRunsFirstThenSubmitOrder) {
  ASSERT_OK(StartAgent("solo", {}, 1));
  const std::map<std::string, std::string> vars = {{"DIR", farm_->root()}};
  // Occupies the only slot until the test creates $MARK/release.
  ASSERT_OK_AND_ASSIGN(std::string blocker, farm_->SubmitJobFile(JobFile(R"job(
name: blocker
env: {MARK: "@DIR@"}
steps:
  - run: |
      while [ ! -e "$MARK/release" ]; do sleep 0.05; done
      echo blocker >> "$MARK/order"
)job",
                                                                         vars)));
  ASSERT_OK(farm_->WaitForJobState(blocker, farm::v1::RUNNING).status());

  // Submitted in this order; expected to run as high, mid, low1, low2.
  std::map<std::string, std::string> ids;
  for (const auto& [name, priority] : std::vector<std::pair<std::string, int>>{
           {"low1", -5}, {"mid", 0}, {"high", 10}, {"low2", -5}}) {
    ASSERT_OK_AND_ASSIGN(
        ids[name],
        farm_->SubmitJobFile(JobFile(
            R"job(
name: @NAME@
priority: @PRIORITY@
env: {MARK: "@DIR@"}
steps:
  - run: echo @NAME@ >> "$MARK/order"
)job",
            {{"NAME", name}, {"PRIORITY", absl::StrCat(priority)}, {"DIR", farm_->root()}})));
  }
  for (const auto& [name, id] : ids) {
    ASSERT_OK_AND_ASSIGN(farm::v1::Job job, farm_->GetJob(id));
    ASSERT_EQ(job.state(), farm::v1::QUEUED) << name << ": " << job.ShortDebugString();
  }

  ASSERT_OK(WriteFile(farm_->Path("release"), ""));
  std::map<std::string, farm::v1::Job> done;
  for (const auto& [name, id] : ids) {
    ASSERT_OK_AND_ASSIGN(done[name], farm_->WaitForJobDone(id));
    ASSERT_EQ(done[name].state(), farm::v1::SUCCEEDED) << done[name].ShortDebugString();
  }
  ASSERT_OK_AND_ASSIGN(std::string order, ReadFile(farm_->Path("order")));
  EXPECT_EQ(order, "blocker\nhigh\nmid\nlow1\nlow2\n");
  // The farm's own record agrees.
  EXPECT_LE(done["high"].attempts(0).started_ms(), done["mid"].attempts(0).started_ms());
  EXPECT_LE(done["mid"].attempts(0).started_ms(), done["low1"].attempts(0).started_ms());
  EXPECT_LE(done["low1"].attempts(0).started_ms(), done["low2"].attempts(0).started_ms());
}

}  // namespace
}  // namespace farm::testing
