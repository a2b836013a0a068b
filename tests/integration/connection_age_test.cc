// The coordinator retires every client connection after --max_connection_age (GOAWAY), its open
// calls getting --max_connection_age_grace more. Here both are 2 s, so that the agent's parked
// calls, its log uploads and a `farmctl logs --follow` are all cut under them several times
// during one job: the job must still succeed, and its output arrive whole, once, in order,
// without farmctl reporting an outage.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/integration/farm_test_base.h"

namespace farm::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class ConnectionAgeTest : public FarmTest {
 protected:
  std::vector<std::string> CoordinatorFlags() const override {
    return {"--max_connection_age=2s", "--max_connection_age_grace=2s"};
  }
};

TEST_F(ConnectionAgeTest, AgentAndLogsFollowRideOutRetiredConnections) {
  ASSERT_OK(StartAgent("a1"));
  ASSERT_OK_AND_ASSIGN(std::string id, farm_->SubmitJobFile(R"job(
steps:
  - name: count
    run: for i in $(seq 1 40); do echo "line $i"; sleep 0.3; done
)job"));
  ASSERT_OK(farm_->WaitForJobState(id, farm::v1::RUNNING).status());
  ASSERT_OK_AND_ASSIGN(MiniFarm::Background follow, farm_->StartFarmctl({"logs", id, "--follow"}));
  ASSERT_OK_AND_ASSIGN(int code, follow.process->Wait(absl::Seconds(60)));
  const std::string err = ReadFile(follow.stderr_path).value_or("");
  EXPECT_EQ(code, 0) << err;
  std::string expected;
  for (int i = 1; i <= 40; ++i) absl::StrAppend(&expected, "line ", i, "\n");
  EXPECT_EQ(ReadFile(follow.stdout_path).value_or(""), expected) << err;
  EXPECT_THAT(err, Not(HasSubstr("reconnecting")));
  EXPECT_THAT(err, Not(HasSubstr("too_many_pings")));
  ASSERT_OK_AND_ASSIGN(farm::v1::Job job, farm_->WaitForJobDone(id));
  EXPECT_EQ(job.state(), farm::v1::SUCCEEDED) << job.reason();
  EXPECT_EQ(job.attempts_size(), 1);
}

}  // namespace
}  // namespace farm::testing
