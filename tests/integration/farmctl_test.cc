// farmctl as a user meets it: live logs, exit codes, errors in one line, bad job files.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "tests/integration/farm_test_base.h"

namespace farm::testing {
namespace {

using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

using FarmctlTest = FarmTest;

std::string Lower(const std::string& s) { return absl::AsciiStrToLower(s); }

// Lines of `text` without the trailing newline; "" has none.
int CountLines(const std::string& text) {
  absl::string_view body = absl::StripSuffix(text, "\n");
  if (body.empty()) return 0;
  return 1 + static_cast<int>(std::count(body.begin(), body.end(), '\n'));
}

TEST_F(FarmctlTest, SubmitFollowStreamsOutputLive) {
  ASSERT_OK(StartAgent("a1"));
  ASSERT_OK_AND_ASSIGN(std::string path, farm_->WriteJobFile(JobFile(R"job(
name: follow
env: {MARK: "@DIR@"}
steps:
  - name: talk
    run: |
      echo first-line
      while [ ! -e "$MARK/go" ]; do sleep 0.05; done
      echo second-line
)job",
                                                                     {{"DIR", farm_->root()}})));
  ASSERT_OK_AND_ASSIGN(MiniFarm::Background follow,
                       farm_->StartFarmctl({"submit", path, "--follow"}));

  // The first line reaches farmctl's stdout while the step is still waiting.
  std::string seen;
  absl::Status live = WaitFor(
      [&] {
        seen = ReadFile(follow.stdout_path).value_or("");
        return absl::StrContains(seen, "first-line") || !follow.process->IsRunning();
      },
      absl::Seconds(20), "first-line on farmctl's stdout");
  ASSERT_TRUE(live.ok()) << live << "; stdout so far:\n" << seen;
  ASSERT_TRUE(follow.process->IsRunning()) << "farmctl exited before the job ended; stdout:\n"
                                           << seen << "\nstderr:\n"
                                           << ReadFile(follow.stderr_path).value_or("");
  ASSERT_THAT(seen, HasSubstr("first-line"));
  EXPECT_THAT(seen, Not(HasSubstr("second-line")));

  ASSERT_OK(WriteFile(farm_->Path("go"), ""));
  ASSERT_OK_AND_ASSIGN(int code, follow.process->Wait(absl::Seconds(20)));
  const std::string out = ReadFile(follow.stdout_path).value_or("");
  EXPECT_EQ(code, 0) << "stdout:\n"
                     << out << "\nstderr:\n"
                     << ReadFile(follow.stderr_path).value_or("");
  const size_t first = out.find("first-line\n");
  const size_t second = out.find("second-line\n");
  ASSERT_NE(first, std::string::npos) << out;
  ASSERT_NE(second, std::string::npos) << out;
  EXPECT_LT(first, second);
}

TEST_F(FarmctlTest, LogsFollowEndsWhenTheJobEnds) {
  ASSERT_OK(StartAgent("a1"));
  ASSERT_OK_AND_ASSIGN(std::string id, farm_->SubmitJobFile(JobFile(R"job(
env: {MARK: "@DIR@"}
steps:
  - name: one
    run: |
      echo one
      while [ ! -e "$MARK/go" ]; do sleep 0.05; done
  - name: two
    run: echo two
)job",
                                                                    {{"DIR", farm_->root()}})));
  ASSERT_OK(farm_->WaitForJobState(id, farm::v1::RUNNING).status());
  ASSERT_OK_AND_ASSIGN(MiniFarm::Background follow, farm_->StartFarmctl({"logs", id, "--follow"}));
  ASSERT_OK(
      WaitFor([&] { return absl::StrContains(ReadFile(follow.stdout_path).value_or(""), "one\n"); },
              absl::Seconds(20), "the first step's output"));
  EXPECT_TRUE(follow.process->IsRunning());
  ASSERT_OK(WriteFile(farm_->Path("go"), ""));
  ASSERT_OK_AND_ASSIGN(int code, follow.process->Wait(absl::Seconds(20)));
  EXPECT_EQ(code, 0);
  EXPECT_EQ(ReadFile(follow.stdout_path).value_or(""), "one\ntwo\n");
}

TEST_F(FarmctlTest, UnreachableCoordinatorIsOneLineOnStderr) {
  // A bound socket that does not listen: connections to it are refused, and no other process
  // can take the port while we hold it.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const std::string target = absl::StrCat("--coordinator=127.0.0.1:", ntohs(addr.sin_port));

  for (const std::vector<std::string>& command :
       std::vector<std::vector<std::string>>{{"get", "some-job"}, {"list"}, {"agents"}}) {
    std::vector<std::string> args = {target};
    args.insert(args.end(), command.begin(), command.end());
    ASSERT_OK_AND_ASSIGN(CommandResult result, farm_->RunFarmctl(args, absl::Seconds(60)));
    EXPECT_NE(result.exit_code, 0) << result.DebugString();
    EXPECT_EQ(CountLines(result.err), 1) << result.DebugString();
    EXPECT_THAT(result.out, IsEmpty()) << result.DebugString();
  }
  close(fd);
}

// farmctl submit keeps retrying (same request id, reconnecting) while the coordinator is down,
// and the job is created once when it is back.
TEST_F(FarmctlTest, SubmitRidesOutACoordinatorRestart) {
  ASSERT_OK_AND_ASSIGN(std::string path, farm_->WriteJobFile("steps: [{run: 'true'}]\n"));
  ASSERT_OK(farm_->KillCoordinator());
  ASSERT_OK_AND_ASSIGN(MiniFarm::Background submit, farm_->StartFarmctl({"submit", path}));
  ASSERT_OK(farm_->RestartCoordinator());
  ASSERT_OK_AND_ASSIGN(int code, submit.process->Wait(absl::Seconds(30)));
  EXPECT_EQ(code, 0) << ReadFile(submit.stderr_path).value_or("");
  ASSERT_OK_AND_ASSIGN(farm::v1::ListJobsResponse list, farm_->ListJobs());
  EXPECT_EQ(list.jobs_size(), 1) << list.ShortDebugString();
}

TEST_F(FarmctlTest, MalformedJobFilesAreRejectedWithFileLineAndColumn) {
  struct Case {
    std::string name;
    std::string extension;
    std::string text;
    std::string where;  // regex after "FILE:"
  };
  const std::vector<Case> cases = {
      {"yaml syntax", "yaml", "name: broken\nsteps:\n  - name: a\n    run: [unclosed\n",
       "[0-9]+:[0-9]+"},
      {"unknown key", "yaml", "name: typo\nsteps:\n  - name: a\n    rnu: echo hi\n", "4:[0-9]+"},
      {"wrong type", "yaml", "name: t\npriority: high\nsteps:\n  - run: 'true'\n", "2:[0-9]+"},
      {"empty steps", "yaml", "name: nothing\nsteps: []\n", "[0-9]+:[0-9]+"},
      {"json syntax", "json", "{\"name\": \"j\",\n \"steps\": [\n}\n", "[0-9]+:[0-9]+"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ASSERT_OK_AND_ASSIGN(std::string path, farm_->WriteJobFile(c.text, c.extension));
    ASSERT_OK_AND_ASSIGN(CommandResult result, farm_->RunFarmctl({"submit", path}));
    EXPECT_NE(result.exit_code, 0) << result.DebugString();
    EXPECT_THAT(result.err, ContainsRegex(path + ":" + c.where)) << result.DebugString();
    EXPECT_THAT(result.out, IsEmpty()) << result.DebugString();
  }
  ASSERT_OK_AND_ASSIGN(CommandResult typo,
                       farm_->RunFarmctl({"submit", farm_->Path("job-2.yaml")}));
  EXPECT_THAT(typo.err, HasSubstr("rnu"));

  // Nothing reached the coordinator.
  ASSERT_OK_AND_ASSIGN(farm::v1::ListJobsResponse listed, farm_->ListJobs());
  EXPECT_EQ(listed.jobs_size(), 0) << listed.ShortDebugString();
}

TEST_F(FarmctlTest, JsonJobFilesAreAccepted) {
  ASSERT_OK(StartAgent("a1"));
  ASSERT_OK_AND_ASSIGN(std::string path, farm_->WriteJobFile(R"job({
  "name": "from-json",
  "env": {"WHO": "json"},
  "steps": [{"name": "hi", "run": "echo hi from $WHO", "timeout": "30s"}]
})job",
                                                             "json"));
  ASSERT_OK_AND_ASSIGN(CommandResult submit, farm_->RunFarmctl({"submit", path, "--wait"}));
  EXPECT_EQ(submit.exit_code, 0) << submit.DebugString();
  ASSERT_OK_AND_ASSIGN(farm::v1::ListJobsResponse listed, farm_->ListJobs());
  ASSERT_EQ(listed.jobs_size(), 1);
  EXPECT_EQ(listed.jobs(0).spec().name(), "from-json");
  EXPECT_EQ(listed.jobs(0).spec().steps(0).timeout_ms(), 30'000);
  ASSERT_OK_AND_ASSIGN(std::string logs, farm_->Logs(listed.jobs(0).id()));
  EXPECT_EQ(logs, "hi from json\n");
}

TEST_F(FarmctlTest, UnknownJobIsNotFound) {
  for (const char* command : {"get", "cancel", "logs", "wait"}) {
    SCOPED_TRACE(command);
    ASSERT_OK_AND_ASSIGN(CommandResult result, farm_->RunFarmctl({command, "no-such-job"}));
    EXPECT_NE(result.exit_code, 0) << result.DebugString();
    EXPECT_THAT(Lower(result.err), HasSubstr("not found")) << result.DebugString();
  }
}

TEST_F(FarmctlTest, AgentsListsTheAgentWithItsLabels) {
  ASSERT_OK(StartAgent("builder-1", {{"pool", "x"}, {"team", "y"}}, 3));
  ASSERT_OK_AND_ASSIGN(farm::v1::ListAgentsResponse listed, farm_->ListAgents());
  ASSERT_EQ(listed.agents_size(), 1) << listed.ShortDebugString();
  const farm::v1::AgentInfo& agent = listed.agents(0);
  EXPECT_EQ(agent.name(), "builder-1");
  EXPECT_EQ(agent.slots(), 3u);
  EXPECT_EQ(agent.labels().count("pool") ? agent.labels().at("pool") : "", "x");
  EXPECT_EQ(agent.labels().count("team") ? agent.labels().at("team") : "", "y");
  EXPECT_EQ(agent.labels().count("os") ? agent.labels().at("os") : "", "linux")
      << "the agent reports its os label itself";
  EXPECT_TRUE(agent.labels().count("arch")) << "the agent reports its arch label itself";
  EXPECT_EQ(agent.state(), "idle");

  ASSERT_OK_AND_ASSIGN(CommandResult text, farm_->RunFarmctl({"agents"}));
  EXPECT_EQ(text.exit_code, 0) << text.DebugString();
  EXPECT_THAT(text.out, HasSubstr("builder-1"));
  EXPECT_THAT(text.out, HasSubstr("pool=x"));
  EXPECT_THAT(text.out, HasSubstr("team=y"));
}

TEST_F(FarmctlTest, WaitAndSubmitWaitExitCodesFollowTheOutcome) {
  ASSERT_OK(StartAgent("a1", {}, 2));
  ASSERT_OK_AND_ASSIGN(std::string ok_path, farm_->WriteJobFile("steps: [{run: 'true'}]\n"));
  ASSERT_OK_AND_ASSIGN(std::string bad_path, farm_->WriteJobFile("steps: [{run: 'exit 4'}]\n"));

  ASSERT_OK_AND_ASSIGN(CommandResult ok, farm_->RunFarmctl({"submit", ok_path, "--wait"}));
  EXPECT_EQ(ok.exit_code, 0) << ok.DebugString();
  ASSERT_OK_AND_ASSIGN(CommandResult bad, farm_->RunFarmctl({"submit", bad_path, "--wait"}));
  EXPECT_EQ(bad.exit_code, 1) << bad.DebugString();

  ASSERT_OK_AND_ASSIGN(std::string ok_id, farm_->SubmitJobFile("steps: [{run: 'true'}]\n"));
  ASSERT_OK_AND_ASSIGN(CommandResult wait_ok, farm_->RunFarmctl({"wait", ok_id, "--timeout=20s"}));
  EXPECT_EQ(wait_ok.exit_code, 0) << wait_ok.DebugString();

  ASSERT_OK_AND_ASSIGN(std::string bad_id, farm_->SubmitJobFile("steps: [{run: 'exit 4'}]\n"));
  ASSERT_OK_AND_ASSIGN(CommandResult wait_bad,
                       farm_->RunFarmctl({"wait", bad_id, "--timeout=20s"}));
  EXPECT_EQ(wait_bad.exit_code, 1) << wait_bad.DebugString();

  ASSERT_OK_AND_ASSIGN(std::string stuck, farm_->SubmitJobFile(JobFile(R"job(
env: {MARK: "@DIR@"}
steps:
  - run: while [ ! -e "$MARK/never" ]; do sleep 0.05; done
)job",
                                                                       {{"DIR", farm_->root()}})));
  ASSERT_OK_AND_ASSIGN(CommandResult timed_out, farm_->RunFarmctl({"wait", stuck, "--timeout=1s"}));
  EXPECT_EQ(timed_out.exit_code, 3) << timed_out.DebugString();
  ASSERT_OK_AND_ASSIGN(CommandResult cancel, farm_->RunFarmctl({"cancel", stuck}));
  EXPECT_EQ(cancel.exit_code, 0) << cancel.DebugString();
  ASSERT_OK_AND_ASSIGN(CommandResult wait_cancelled,
                       farm_->RunFarmctl({"wait", stuck, "--timeout=20s"}));
  EXPECT_EQ(wait_cancelled.exit_code, 2) << wait_cancelled.DebugString();
}

TEST_F(FarmctlTest, ListShowsNewestFirstAndFiltersByState) {
  ASSERT_OK(StartAgent("a1", {{"pool", "here"}}));
  ASSERT_OK_AND_ASSIGN(std::string done_id,
                       farm_->SubmitJobFile("name: done\nsteps: [{run: 'true'}]\n"));
  ASSERT_OK(farm_->WaitForJobState(done_id, farm::v1::SUCCEEDED).status());
  ASSERT_OK_AND_ASSIGN(std::string queued_id,
                       farm_->SubmitJobFile("name: queued\nlabels: {pool: elsewhere}\n"
                                            "steps: [{run: 'true'}]\n"));

  ASSERT_OK_AND_ASSIGN(farm::v1::ListJobsResponse all, farm_->ListJobs());
  ASSERT_EQ(all.jobs_size(), 2) << all.ShortDebugString();
  EXPECT_EQ(all.jobs(0).id(), queued_id);
  EXPECT_EQ(all.jobs(1).id(), done_id);

  ASSERT_OK_AND_ASSIGN(farm::v1::ListJobsResponse queued, farm_->ListJobs({"--state=QUEUED"}));
  ASSERT_EQ(queued.jobs_size(), 1) << queued.ShortDebugString();
  EXPECT_EQ(queued.jobs(0).id(), queued_id);
  ASSERT_OK_AND_ASSIGN(farm::v1::ListJobsResponse succeeded,
                       farm_->ListJobs({"--state=SUCCEEDED"}));
  ASSERT_EQ(succeeded.jobs_size(), 1) << succeeded.ShortDebugString();
  EXPECT_EQ(succeeded.jobs(0).id(), done_id);
  ASSERT_OK_AND_ASSIGN(farm::v1::ListJobsResponse one, farm_->ListJobs({"--limit=1"}));
  ASSERT_EQ(one.jobs_size(), 1) << one.ShortDebugString();
  EXPECT_EQ(one.jobs(0).id(), queued_id);

  ASSERT_OK_AND_ASSIGN(CommandResult text, farm_->RunFarmctl({"list"}));
  EXPECT_EQ(text.exit_code, 0) << text.DebugString();
  EXPECT_THAT(text.out, HasSubstr(done_id));
  EXPECT_THAT(text.out, HasSubstr(queued_id));
  EXPECT_THAT(text.out, HasSubstr("QUEUED"));
  EXPECT_THAT(text.out, HasSubstr("SUCCEEDED"));
}

}  // namespace
}  // namespace farm::testing
