// What the coordinator promises across crashes: an acknowledged submit is never lost.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/integration/farm_test_base.h"

namespace farm::testing {
namespace {

using ::testing::UnorderedElementsAreArray;

using DurabilityTest = FarmTest;

TEST_F(DurabilityTest, QueuedJobsSurviveKill9AndAllRunAfterRestart) {
  constexpr int kJobs = 5;
  std::vector<std::string> ids;
  for (int i = 0; i < kJobs; ++i) {
    ASSERT_OK_AND_ASSIGN(std::string id, farm_->SubmitJobFile(JobFile(
                                             R"job(
name: durable-@N@
env: {MARK: "@DIR@"}
steps:
  - run: |
      echo "job @N@ ran"
      touch "$MARK/ran-@N@"
)job",
                                             {{"N", absl::StrCat(i)}, {"DIR", farm_->root()}})));
    ids.push_back(id);
  }
  // Straight after the acknowledgements, with no clean shutdown.
  ASSERT_OK(farm_->KillCoordinator());
  ASSERT_OK(farm_->RestartCoordinator());

  ASSERT_OK_AND_ASSIGN(farm::v1::ListJobsResponse listed, farm_->ListJobs());
  std::vector<std::string> listed_ids;
  for (const farm::v1::Job& job : listed.jobs()) {
    listed_ids.push_back(job.id());
    EXPECT_EQ(job.state(), farm::v1::QUEUED) << job.ShortDebugString();
  }
  EXPECT_THAT(listed_ids, UnorderedElementsAreArray(ids));

  ASSERT_OK(StartAgent("after-crash", {}, 2));
  for (int i = 0; i < kJobs; ++i) {
    ASSERT_OK_AND_ASSIGN(farm::v1::Job job, farm_->WaitForJobDone(ids[i]));
    EXPECT_EQ(job.state(), farm::v1::SUCCEEDED) << job.ShortDebugString();
    EXPECT_EQ(job.spec().name(), absl::StrCat("durable-", i));
    ASSERT_OK_AND_ASSIGN(std::string logs, farm_->Logs(ids[i]));
    EXPECT_EQ(logs, absl::StrCat("job ", i, " ran\n"));
    EXPECT_TRUE(FileExists(farm_->Path(absl::StrCat("ran-", i))));
  }
}

TEST_F(DurabilityTest, FinishedJobsAndLogsSurviveKill9) {
  ASSERT_OK(StartAgent("a1"));
  ASSERT_OK_AND_ASSIGN(std::string id, farm_->SubmitJobFile(R"job(
steps:
  - name: say
    run: echo "kept across crashes"
)job"));
  ASSERT_OK_AND_ASSIGN(farm::v1::Job before, farm_->WaitForJobDone(id));
  ASSERT_EQ(before.state(), farm::v1::SUCCEEDED) << before.ShortDebugString();

  ASSERT_OK(farm_->KillCoordinator());
  ASSERT_OK(farm_->RestartCoordinator());

  ASSERT_OK_AND_ASSIGN(farm::v1::Job after, farm_->GetJob(id));
  EXPECT_EQ(after.state(), farm::v1::SUCCEEDED) << after.ShortDebugString();
  EXPECT_EQ(after.attempts_size(), 1);
  ASSERT_OK_AND_ASSIGN(std::string logs, farm_->Logs(id));
  EXPECT_EQ(logs, "kept across crashes\n");
}

TEST_F(DurabilityTest, CoordinatorStopsCleanlyOnSigterm) {
  ASSERT_OK_AND_ASSIGN(std::string id, farm_->SubmitJobFile("steps: [{run: 'true'}]\n"));
  ASSERT_OK_AND_ASSIGN(int code, farm_->StopCoordinator(absl::Seconds(10)));
  EXPECT_EQ(code, 0);
  ASSERT_OK(farm_->RestartCoordinator());
  ASSERT_OK_AND_ASSIGN(farm::v1::Job job, farm_->GetJob(id));
  EXPECT_EQ(job.state(), farm::v1::QUEUED);
}

}  // namespace
}  // namespace farm::testing
