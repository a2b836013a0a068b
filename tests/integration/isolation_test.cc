// Step isolation on a real farm (README, "Step isolation"): `farmctl agents` says how an agent
// isolates its steps, cancelling a job kills a process its step hid with setsid (when the agent
// has cgroup v2; the test skips and says why otherwise), and a step running as the unprivileged
// step user cannot read the agent's credential.
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/integration/farm_test_base.h"

namespace farm::testing {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;
using ::testing::Not;

using IsolationTest = FarmTest;

// How many processes run with `marker` in their command line (/proc/*/cmdline).
int ProcessesWith(const std::string& marker) {
  int found = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename();
    if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
    std::ifstream in(entry.path() / "cmdline");
    std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (char& c : cmdline) {
      if (c == '\0') c = ' ';
    }
    if (cmdline.find(marker) != std::string::npos) ++found;
  }
  return found;
}

TEST_F(IsolationTest, AgentsShowsHowStepsAreIsolated) {
  ASSERT_OK(StartAgent("a1"));
  ASSERT_OK_AND_ASSIGN(farm::v1::ListAgentsResponse agents, farm_->ListAgents());
  ASSERT_EQ(agents.agents_size(), 1);
  const farm::v1::StepIsolation& isolation = agents.agents(0).isolation();
  EXPECT_THAT(isolation.kill(), AnyOf("cgroup-v2", "process-group"));
  EXPECT_FALSE(isolation.run_as().empty());
  ASSERT_OK_AND_ASSIGN(CommandResult listed, farm_->RunFarmctl({"agents"}));
  ASSERT_EQ(listed.exit_code, 0) << listed.DebugString();
  EXPECT_THAT(listed.out, HasSubstr("ISOLATION"));
  EXPECT_THAT(listed.out, HasSubstr(absl::StrCat(isolation.kill(), " user=", isolation.run_as())));
}

TEST_F(IsolationTest, CancelKillsAProcessThatCalledSetsid) {
  ASSERT_OK(StartAgent("a1"));
  ASSERT_OK_AND_ASSIGN(farm::v1::ListAgentsResponse agents, farm_->ListAgents());
  ASSERT_EQ(agents.agents_size(), 1);
  if (agents.agents(0).isolation().kill() != "cgroup-v2") {
    GTEST_SKIP() << "the agent has no usable cgroup v2 here (it says "
                 << agents.agents(0).isolation().kill()
                 << "), and a process group cannot hold a process that calls setsid";
  }
  std::random_device rd;
  const std::string marker = absl::StrCat("300.", 100000 + rd() % 800000);
  ASSERT_OK_AND_ASSIGN(std::string id, farm_->SubmitJobFile(JobFile(R"job(
name: escape
steps:
  - run: |
      setsid sh -c 'sleep @MARK@' &
      sleep 300
)job",
                                                                    {{"MARK", marker}})));
  // The escaped shell and its sleep both carry the marker.
  ASSERT_OK(WaitFor([&] { return ProcessesWith(marker) >= 2; }, absl::Seconds(20),
                    "the step's setsid process to start"));
  ASSERT_OK_AND_ASSIGN(CommandResult cancel, farm_->RunFarmctl({"cancel", id}));
  ASSERT_EQ(cancel.exit_code, 0) << cancel.DebugString();
  ASSERT_OK_AND_ASSIGN(farm::v1::Job job,
                       farm_->WaitForJobState(id, farm::v1::CANCELLED, absl::Seconds(20)));
  EXPECT_OK(WaitFor([&] { return ProcessesWith(marker) == 0; }, absl::Seconds(10),
                    "every process of the cancelled attempt to be gone"));
}

TEST_F(IsolationTest, AStepCannotReadTheAgentsCredential) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: steps run as another user only then";
  // The step user must reach the agent's work dir (the farm's directory is 0700).
  ASSERT_EQ(::chmod(farm_->root().c_str(), 0755), 0);
  ASSERT_OK(StartAgent("a1", {}, 1, {"--run_as=nobody"}));
  const std::string credential = farm_->agent_work_dir("a1") + "/credential";
  std::ofstream(credential) << "SECRET-AGENT-CREDENTIAL\n";
  ASSERT_EQ(::chmod(credential.c_str(), 0600), 0);
  ASSERT_OK_AND_ASSIGN(std::string id, farm_->SubmitJobFile(JobFile(R"job(
steps:
  - run: |
      id -un
      cat "@CRED@" || echo could-not-read
)job",
                                                                    {{"CRED", credential}})));
  ASSERT_OK_AND_ASSIGN(farm::v1::Job job, farm_->WaitForJobDone(id));
  EXPECT_EQ(job.state(), farm::v1::SUCCEEDED) << job.ShortDebugString();
  ASSERT_OK_AND_ASSIGN(std::string logs, farm_->Logs(id));
  EXPECT_THAT(logs, HasSubstr("nobody"));
  EXPECT_THAT(logs, HasSubstr("Permission denied"));
  EXPECT_THAT(logs, HasSubstr("could-not-read"));
  EXPECT_THAT(logs, Not(HasSubstr("SECRET-AGENT-CREDENTIAL")));
}

}  // namespace
}  // namespace farm::testing
