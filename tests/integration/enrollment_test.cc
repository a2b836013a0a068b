// Agent enrollment with the real binaries on a TLS farm: `farmctl agent enroll-token` as admin,
// `farm-agent --enroll_token_file` exchanging it once for its own credential (kept in its work
// dir, mode 0600, used on every later start), a second use, an expired token and labels the
// token does not pin refused, and agents that stop with a clear message (and a non-zero exit)
// when their identity is revoked or another process takes their name, instead of retrying.
#include <sys/stat.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "farm/v1/farm.pb.h"
#include "google/protobuf/util/json_util.h"
#include "tests/testing/mini_farm.h"
#include "tests/testing/status_matchers.h"

namespace farm::testing {
namespace {

using ::testing::HasSubstr;

constexpr absl::Duration kExitDeadline = absl::Seconds(30);

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class EnrollmentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MiniFarmOptions options;
    options.tls = true;
    ASSERT_OK_AND_ASSIGN(farm_, MiniFarm::Create(options));
    ASSERT_OK(farm_->StartCoordinator());
  }

  // `farmctl agent enroll-token ARGS` as admin: the token (stdout), written to a file; its path.
  std::string EnrollTokenFile(std::vector<std::string> args) {
    args.insert(args.begin(), {"agent", "enroll-token"});
    absl::StatusOr<CommandResult> made = farm_->RunFarmctl(args);
    EXPECT_OK(made);
    if (!made.ok()) return "";
    EXPECT_EQ(made->exit_code, 0) << made->DebugString();
    EXPECT_THAT(made->err, HasSubstr("shown only this once"));
    const std::string path = farm_->Path(absl::StrCat("enroll-", ++files_, ".token"));
    std::ofstream(path) << made->out;
    return path;
  }

  // farm-agent NAME with the CA and `flags` only (no certificate: its credential comes from
  // enrollment), in work dir <root>/agents/WORK.
  std::unique_ptr<Subprocess> StartAgent(const std::string& name, std::vector<std::string> flags,
                                         const std::string& work = "") {
    SubprocessOptions options;
    options.binary = farm_->BinaryPath("farm-agent");
    options.args = {absl::StrCat("--coordinator=", farm_->coordinator_address()),
                    absl::StrCat("--name=", name),
                    absl::StrCat("--work_dir=", WorkDir(work.empty() ? name : work)),
                    absl::StrCat("--tls_ca=", farm_->Path("certs/ca.crt")), RunAsSelfFlag()};
    for (std::string& flag : flags) options.args.push_back(std::move(flag));
    const int n = ++runs_;
    options.stdout_path = farm_->Path(absl::StrCat("agent-", name, "-run", n, ".stdout"));
    options.stderr_path = farm_->Path(absl::StrCat("agent-", name, "-run", n, ".stderr"));
    absl::StatusOr<std::unique_ptr<Subprocess>> started = Subprocess::Start(options);
    EXPECT_OK(started);
    return started.ok() ? *std::move(started) : nullptr;
  }

  std::string WorkDir(const std::string& name) const {
    return farm_->Path(absl::StrCat("agents/", name));
  }

  // Waits for `agent` to exit by itself; its exit code and stderr.
  CommandResult WaitForExit(Subprocess* agent) {
    CommandResult result;
    absl::StatusOr<int> code = agent->Wait(kExitDeadline);
    EXPECT_TRUE(code.ok()) << "the agent did not stop by itself: " << code.status();
    if (!code.ok()) (void)agent->Terminate(absl::Seconds(5));
    result.exit_code = code.value_or(-1);
    result.err = ReadAll(agent->options().stderr_path);
    return result;
  }

  // Submits a job for pool x and waits for it; the agent that ran it.
  std::string RunPoolJob() {
    absl::StatusOr<std::string> id =
        farm_->SubmitJobFile("labels: {pool: x}\nsteps: [{run: 'true'}]\n");
    EXPECT_OK(id);
    if (!id.ok()) return "";
    absl::StatusOr<farm::v1::Job> job = farm_->WaitForJobDone(*id, absl::Seconds(60));
    EXPECT_OK(job);
    if (!job.ok()) return "";
    EXPECT_EQ(job->state(), farm::v1::SUCCEEDED) << job->DebugString();
    return job->attempts_size() > 0 ? job->attempts(job->attempts_size() - 1).agent() : "";
  }

  std::unique_ptr<MiniFarm> farm_;
  int files_ = 0;
  int runs_ = 0;
};

TEST_F(EnrollmentTest, AnEnrollmentTokenWorksOnceAndTheAgentKeepsItsCredential) {
  const std::string token_file = EnrollTokenFile({"--labels=pool=x", "--ttl=15m"});
  std::unique_ptr<Subprocess> b1 =
      StartAgent("b1", {absl::StrCat("--enroll_token_file=", token_file), "--labels=pool=x"});
  ASSERT_OK(farm_->WaitForAgents({"b1"}, absl::Seconds(30)));
  struct stat st;
  ASSERT_EQ(::stat(absl::StrCat(WorkDir("b1"), "/credential").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(RunPoolJob(), "b1");

  // Started again without the enrollment token, it works from its credential.
  ASSERT_OK_AND_ASSIGN(int stopped, b1->Terminate(absl::Seconds(20)));
  EXPECT_EQ(stopped, 0);
  b1 = StartAgent("b1", {"--labels=pool=x"});
  EXPECT_EQ(RunPoolJob(), "b1");

  // A second agent with the same enrollment token is refused, and says so.
  std::unique_ptr<Subprocess> b2 =
      StartAgent("b2", {absl::StrCat("--enroll_token_file=", token_file), "--labels=pool=x"});
  const CommandResult second = WaitForExit(b2.get());
  EXPECT_NE(second.exit_code, 0);
  EXPECT_THAT(second.err, HasSubstr("refused the enrollment token"));
  EXPECT_THAT(second.err, HasSubstr("already used by agent b1"));
  EXPECT_THAT(ReadAll(farm_->Path("coordinator-1.stderr")),
              HasSubstr("enrollment of agent \"b2\""));
}

TEST_F(EnrollmentTest, AnExpiredTokenAndLabelsItDoesNotPinAreRefused) {
  const std::string expired = EnrollTokenFile({"--ttl=1ms"});
  std::unique_ptr<Subprocess> late =
      StartAgent("late", {absl::StrCat("--enroll_token_file=", expired)});
  const CommandResult refused = WaitForExit(late.get());
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_THAT(refused.err, HasSubstr("expired"));

  const std::string pinned = EnrollTokenFile({"--labels=pool=x"});
  std::unique_ptr<Subprocess> greedy =
      StartAgent("greedy", {absl::StrCat("--enroll_token_file=", pinned), "--labels=pool=secure"});
  const CommandResult denied = WaitForExit(greedy.get());
  EXPECT_NE(denied.exit_code, 0);
  EXPECT_THAT(denied.err, HasSubstr("refused this agent's identity"));
  EXPECT_THAT(denied.err, HasSubstr("pool=secure"));
}

TEST_F(EnrollmentTest, AnAgentWhoseCredentialIsRevokedStopsWithAClearMessage) {
  const std::string token_file = EnrollTokenFile({"--labels=pool=x"});
  std::unique_ptr<Subprocess> d1 =
      StartAgent("d1", {absl::StrCat("--enroll_token_file=", token_file), "--labels=pool=x"});
  ASSERT_OK(farm_->WaitForAgents({"d1"}, absl::Seconds(30)));
  ASSERT_OK_AND_ASSIGN(CommandResult listed, farm_->RunFarmctl({"token", "list", "--output=json"}));
  ASSERT_EQ(listed.exit_code, 0) << listed.DebugString();
  farm::v1::ListTokensResponse tokens;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(listed.out, &tokens).ok());
  std::string id;
  for (const farm::v1::TokenInfo& t : tokens.tokens()) {
    if (t.name() == "d1" && t.kind().empty()) id = t.id();
    if (!t.kind().empty()) {
      EXPECT_EQ(t.used_by(), "d1");
    }
  }
  ASSERT_FALSE(id.empty()) << listed.out;
  ASSERT_OK_AND_ASSIGN(CommandResult revoked, farm_->RunFarmctl({"token", "revoke", id}));
  ASSERT_EQ(revoked.exit_code, 0) << revoked.DebugString();

  const CommandResult stopped = WaitForExit(d1.get());
  EXPECT_NE(stopped.exit_code, 0);
  EXPECT_THAT(stopped.err, HasSubstr("the coordinator refused this agent's identity"));
  EXPECT_THAT(stopped.err, HasSubstr("re-enroll"));
}

TEST_F(EnrollmentTest, AnAgentWhoseNameIsTakenByAnotherProcessStops) {
  const std::string token_file = EnrollTokenFile({});
  std::unique_ptr<Subprocess> first =
      StartAgent("e1", {absl::StrCat("--enroll_token_file=", token_file)});
  ASSERT_OK(farm_->WaitForAgents({"e1"}, absl::Seconds(30)));
  // A second process with the same credential (so the same identity) and its own work dir.
  std::unique_ptr<Subprocess> second =
      StartAgent("e1", {absl::StrCat("--token_file=", WorkDir("e1"), "/credential")}, "e1-copy");
  const CommandResult replaced = WaitForExit(first.get());
  EXPECT_NE(replaced.exit_code, 0);
  EXPECT_THAT(replaced.err, HasSubstr("another farm-agent registered as e1"));
  EXPECT_TRUE(second->IsRunning());
}

}  // namespace
}  // namespace farm::testing
