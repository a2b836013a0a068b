// Secrets end to end, with the real binaries over TLS: a canary secret reaches the job that
// names it (the job prints its SHA-256), and its bytes appear nowhere a user or an operator can
// look: `farmctl logs` (whole, split across chunks, a multi-line value line by line), `get`
// (text and JSON), `list`, `events`, the job record, and every file of the farm's directory,
// the coordinator's data (encrypted at rest) included, after a clean stop.
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/certs.h"
#include "common/digest.h"
#include "farm/v1/farm.grpc.pb.h"
#include "tests/integration/farm_test_base.h"

namespace farm::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Random-looking, so that nothing else in the farm's files contains it by chance.
constexpr char kCanary[] = "cnry-7Qx9vKp2-W4mZt8Lr-5bNc";
constexpr char kMultiLine[] =
    "-----BEGIN FARM TEST KEY-----\n"
    "MIIEvgIBADANBgkqhkiG9w0BAQ-line1\n"
    "Qx7vLm2PzR8sW3nK5tY9uH4jG6-line2\n"
    "-----END FARM TEST KEY-----";

// The searched strings of kMultiLine: the whole and each line of 6 bytes or more.
std::vector<std::string> Needles() {
  std::vector<std::string> out = {kCanary, kMultiLine};
  for (absl::string_view line : absl::StrSplit(kMultiLine, '\n')) out.emplace_back(line);
  return out;
}

// Files under `dir` (recursively) whose bytes contain `needle`.
std::vector<std::string> FilesContaining(const std::string& dir, const std::string& needle) {
  std::vector<std::string> found;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (ec || !it->is_regular_file(ec)) continue;
    std::ifstream in(it->path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (bytes.find(needle) != std::string::npos) found.push_back(it->path().string());
  }
  return found;
}

class SecretsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MiniFarmOptions options;
    options.tls = true;
    ASSERT_OK_AND_ASSIGN(farm_, MiniFarm::Create(options));
    ASSERT_OK_AND_ASSIGN(std::string key, common::NewSecretsKey());
    key_file_ = farm_->Path("secrets.key");
    std::ofstream(key_file_) << key;
    std::filesystem::permissions(
        key_file_, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    ASSERT_OK(farm_->StartCoordinator({"--secrets_key_file=" + key_file_}));
  }

  // `farmctl secret set NAME` with `input` on stdin.
  void SetSecret(const std::string& name, const std::string& input) {
    ASSERT_OK_AND_ASSIGN(CommandResult r,
                         farm_->RunFarmctlWithInput({"secret", "set", name}, input));
    ASSERT_EQ(r.exit_code, 0) << r.DebugString();
  }

  void ExpectNoNeedle(const std::string& text, const std::string& where) {
    for (const std::string& needle : Needles()) {
      EXPECT_THAT(text, Not(HasSubstr(needle))) << where << " shows a secret";
    }
  }

  std::unique_ptr<MiniFarm> farm_;
  std::string key_file_;
};

TEST_F(SecretsTest, ACanaryReachesItsJobAndShowsNowhere) {
  SetSecret("CANARY_SECRET", absl::StrCat(kCanary, "\n"));  // echo's newline is dropped
  SetSecret("MULTI_LINE_SECRET", absl::StrCat(kMultiLine, "\n"));
  ASSERT_OK_AND_ASSIGN(CommandResult list, farm_->RunFarmctl({"secret", "list"}));
  ASSERT_EQ(list.exit_code, 0) << list.DebugString();
  EXPECT_THAT(list.out, HasSubstr("CANARY_SECRET"));
  ExpectNoNeedle(list.out, "secret list");

  ASSERT_OK(farm_->StartAgent(AgentOptions{"a1", {}, 1, {}}));
  ASSERT_OK(farm_->WaitForAgents({"a1"}));
  // Each step proves it got the value (its SHA-256 is not a secret) and then prints it: whole;
  // in two writes a second apart, so that the halves travel in different chunks; and the
  // multi-line value whole and re-indented line by line, as tools print PEM keys.
  ASSERT_OK_AND_ASSIGN(std::string id, farm_->SubmitJobFile(R"yaml(
name: canary
secrets: [CANARY_SECRET, MULTI_LINE_SECRET]
steps:
  - name: whole
    run: |
      printf 'sha=%s\n' "$(printf '%s' "$CANARY_SECRET" | sha256sum | cut -c1-64)"
      printf 'multi-sha=%s\n' "$(printf '%s' "$MULTI_LINE_SECRET" | sha256sum | cut -c1-64)"
      echo "whole: $CANARY_SECRET."
  - name: split
    run: |
      half=$(( ${#CANARY_SECRET} / 2 ))
      printf 'split: %s' "$(printf '%s' "$CANARY_SECRET" | cut -c1-$half)"
      sleep 1
      printf '%s (end)\n' "$(printf '%s' "$CANARY_SECRET" | cut -c$((half + 1))-)"
  - name: multi
    run: |
      printf '%s\n' "$MULTI_LINE_SECRET"
      printf '%s\n' "$MULTI_LINE_SECRET" | sed 's/^/    > /'
)yaml"));
  ASSERT_OK_AND_ASSIGN(farm::v1::Job job, farm_->WaitForJobDone(id, absl::Seconds(60)));
  ASSERT_EQ(job.state(), farm::v1::SUCCEEDED) << job.DebugString();

  ASSERT_OK_AND_ASSIGN(std::string logs, farm_->Logs(id));
  EXPECT_THAT(logs, HasSubstr(absl::StrCat("sha=", common::DigestOf(kCanary).hash)));
  EXPECT_THAT(logs, HasSubstr(absl::StrCat("multi-sha=", common::DigestOf(kMultiLine).hash)));
  EXPECT_THAT(logs, HasSubstr("whole: [REDACTED]."));
  EXPECT_THAT(logs, HasSubstr("split: [REDACTED] (end)"));
  EXPECT_THAT(logs, HasSubstr("    > [REDACTED]"));
  ExpectNoNeedle(logs, "farmctl logs");
  ASSERT_OK_AND_ASSIGN(std::string raw, farm_->Logs(id, {"--raw"}));
  ExpectNoNeedle(raw, "farmctl logs --raw");

  ASSERT_OK_AND_ASSIGN(std::string json, farm_->GetJobJson(id));
  EXPECT_THAT(json, HasSubstr("CANARY_SECRET"));  // the name is part of the job
  ExpectNoNeedle(json, "farmctl get --output=json");
  ExpectNoNeedle(job.DebugString(), "the job record");
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"get", id},
                                             {"list", "--output=json"},
                                             {"events", "--job=" + id, "--output=json"},
                                             {"events"},
                                             {"agents", "--output=json"}}) {
    ASSERT_OK_AND_ASSIGN(CommandResult r, farm_->RunFarmctl(args));
    EXPECT_EQ(r.exit_code, 0) << r.DebugString();
    ExpectNoNeedle(r.out + r.err, absl::StrCat("farmctl ", absl::StrJoin(args, " ")));
  }

  // Every file of the farm: the coordinator's store (after a clean stop), its and the agent's
  // logs, the agent's work dir. The control: what the job printed, and the secret's name, are
  // found there, so the search would find a value stored in the clear.
  ASSERT_OK(farm_->StopAgent("a1").status());
  ASSERT_OK_AND_ASSIGN(int code, farm_->StopCoordinator());
  EXPECT_EQ(code, 0);
  EXPECT_THAT(FilesContaining(farm_->coordinator_data_dir(), common::DigestOf(kCanary).hash),
              Not(::testing::IsEmpty()));
  EXPECT_THAT(FilesContaining(farm_->coordinator_data_dir(), "CANARY_SECRET"),
              Not(::testing::IsEmpty()));
  for (const std::string& needle : Needles()) {
    EXPECT_THAT(FilesContaining(farm_->root(), needle), ::testing::IsEmpty()) << needle;
  }
}

TEST_F(SecretsTest, TheCoordinatorRedactsWhatAnAgentSendsUnredacted) {
  SetSecret("CANARY_SECRET", kCanary);
  ASSERT_OK_AND_ASSIGN(std::string id, farm_->SubmitJobFile(R"(
secrets: [CANARY_SECRET]
steps: [{name: only, run: "true"}]
)"));
  // An agent of our own that leases the job and uploads its value raw, split across two
  // uploads: the coordinator must redact it (an old or broken agent).
  ASSERT_OK_AND_ASSIGN(common::ClientSecurity security, farm_->AgentSecurity("raw"));
  ASSERT_OK_AND_ASSIGN(std::shared_ptr<grpc::Channel> channel,
                       common::MakeChannel(farm_->coordinator_address(), security));
  auto agent = farm::v1::AgentService::NewStub(channel);
  auto call = [](absl::Duration timeout = absl::Seconds(20)) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    return ctx;
  };
  farm::v1::RegisterRequest reg;
  reg.set_name("raw");
  reg.set_slots(1);
  reg.set_session_id("s1");
  farm::v1::RegisterResponse registered;
  ASSERT_TRUE(agent->Register(call().get(), reg, &registered).ok());
  farm::v1::LeaseRequest lease_req;
  lease_req.set_agent("raw");
  lease_req.set_session_id("s1");
  lease_req.set_wait_ms(10'000);
  farm::v1::LeaseResponse lease;
  ASSERT_TRUE(agent->Lease(call().get(), lease_req, &lease).ok());
  ASSERT_TRUE(lease.has_job());
  ASSERT_EQ(lease.secrets_size(), 1);
  EXPECT_EQ(lease.secrets(0).name(), "CANARY_SECRET");
  EXPECT_EQ(lease.secrets(0).value(), kCanary);  // the lease holder, and only it, gets it
  ExpectNoNeedle(lease.job().DebugString(), "the leased job");

  const std::string text = absl::StrCat("before ", kCanary, " after\n");
  const size_t cut = 7 + 10;  // inside the value
  int64_t offset = 0;
  for (const std::string& part : {text.substr(0, cut), text.substr(cut)}) {
    farm::v1::LogUploadResponse uploaded;
    auto ctx = call();
    auto writer = agent->UploadLogs(ctx.get(), &uploaded);
    farm::v1::LogUploadChunk chunk;
    *chunk.mutable_lease() = lease.lease();
    chunk.set_step_index(0);
    chunk.set_offset(offset);
    chunk.set_data(part);
    ASSERT_TRUE(writer->Write(chunk));
    writer->WritesDone();
    ASSERT_TRUE(writer->Finish().ok());
    offset += static_cast<int64_t>(part.size());
    EXPECT_EQ(uploaded.committed().at(0), offset);  // the agent's own offsets
  }
  farm::v1::CompleteJobRequest complete;
  *complete.mutable_lease() = lease.lease();
  complete.set_outcome(farm::v1::ATTEMPT_SUCCEEDED);
  farm::v1::StepReport* last = complete.mutable_last_step();
  last->set_step_index(0);
  last->mutable_result()->set_state(farm::v1::STEP_SUCCEEDED);
  farm::v1::CompleteJobResponse completed;
  ASSERT_TRUE(agent->CompleteJob(call().get(), complete, &completed).ok());
  ASSERT_OK_AND_ASSIGN(farm::v1::Job job, farm_->WaitForJobDone(id));
  EXPECT_EQ(job.state(), farm::v1::SUCCEEDED);
  ASSERT_OK_AND_ASSIGN(std::string logs, farm_->Logs(id, {"--raw"}));
  EXPECT_THAT(logs, HasSubstr("before [REDACTED] after"));
  ExpectNoNeedle(logs, "farmctl logs");
}

TEST_F(SecretsTest, ASubmitNamingAMissingSecretIsRefusedWithItsName) {
  ASSERT_OK_AND_ASSIGN(std::string file, farm_->WriteJobFile(R"(
secrets: [NOT_SET_ANYWHERE]
steps: [{run: "true"}]
)"));
  ASSERT_OK_AND_ASSIGN(CommandResult r, farm_->RunFarmctl({"submit", file}));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("NOT_SET_ANYWHERE"));
  ASSERT_OK_AND_ASSIGN(CommandResult rm, farm_->RunFarmctl({"secret", "rm", "NOT_SET_ANYWHERE"}));
  EXPECT_NE(rm.exit_code, 0);
  EXPECT_THAT(rm.err, HasSubstr("NOT_SET_ANYWHERE"));
  ASSERT_OK_AND_ASSIGN(CommandResult short_value,
                       farm_->RunFarmctlWithInput({"secret", "set", "TOO_SHORT"}, "12345\n"));
  EXPECT_NE(short_value.exit_code, 0);
  EXPECT_THAT(short_value.err, HasSubstr("6 bytes"));
}

TEST(SecretsWithoutKeyTest, SecretRpcsAndSubmitsSayTheCoordinatorHasNoKey) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<MiniFarm> farm, MiniFarm::Create());
  ASSERT_OK(farm->StartCoordinator());
  ASSERT_OK_AND_ASSIGN(CommandResult set,
                       farm->RunFarmctlWithInput({"secret", "set", "DEPLOY_KEY"}, "abcdefgh"));
  EXPECT_NE(set.exit_code, 0);
  EXPECT_THAT(set.err, HasSubstr("--secrets_key_file"));
  ASSERT_OK_AND_ASSIGN(std::string file,
                       farm->WriteJobFile("secrets: [DEPLOY_KEY]\nsteps: [{run: 'true'}]\n"));
  ASSERT_OK_AND_ASSIGN(CommandResult submit, farm->RunFarmctl({"submit", file}));
  EXPECT_NE(submit.exit_code, 0);
  EXPECT_THAT(submit.err, HasSubstr("--secrets_key_file"));
}

TEST(SecretsKeyFileTest, ABadKeyFileStopsTheStartNamingTheFile) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<MiniFarm> farm, MiniFarm::Create());
  const std::string bad = farm->Path("bad.key");
  std::ofstream(bad) << "dG9vIHNob3J0\n";  // 9 bytes
  absl::Status started = farm->StartCoordinator({"--secrets_key_file=" + bad});
  EXPECT_FALSE(started.ok());
  EXPECT_THAT(started.message(), HasSubstr(bad));
}

}  // namespace
}  // namespace farm::testing
