// The binaries' configuration files, --version, log formats and SIGHUP reload (README,
// "Configuration files and reload"), on the real binaries.
#include <signal.h>

#include <cstdio>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/certs.h"
#include "common/status_macros.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "tests/testing/mini_farm.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/tls_probe.h"

namespace farm::testing {
namespace {

using ::testing::HasSubstr;

// Runs one of the farm's binaries to completion (stdout and stderr kept in the farm's dir).
absl::StatusOr<CommandResult> RunBinary(MiniFarm& farm, const std::string& binary,
                                        std::vector<std::string> args) {
  static int runs = 0;
  ++runs;
  SubprocessOptions options;
  options.binary = farm.BinaryPath(binary);
  options.args = std::move(args);
  options.stdout_path = farm.Path(absl::StrCat("run-", runs, ".stdout"));
  options.stderr_path = farm.Path(absl::StrCat("run-", runs, ".stderr"));
  FARM_ASSIGN_OR_RETURN(std::unique_ptr<Subprocess> process, Subprocess::Start(options));
  CommandResult result;
  FARM_ASSIGN_OR_RETURN(result.exit_code, process->Wait(absl::Seconds(30)));
  result.out = ReadFileOrEmpty(options.stdout_path);
  result.err = ReadFileOrEmpty(options.stderr_path);
  return result;
}

// Writes `text` to `path` the way an operator's tooling should: a new file renamed into place.
absl::Status Replace(const std::string& path, const std::string& text) {
  FARM_RETURN_IF_ERROR(WriteFile(path + ".new", text));
  if (std::rename((path + ".new").c_str(), path.c_str()) != 0) {
    return absl::InternalError("rename " + path);
  }
  return absl::OkStatus();
}

int CountLines(const std::string& text, absl::string_view needle) {
  int n = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) n += absl::StrContains(line, needle);
  return n;
}

const std::regex kVersionLine(
    R"(^(farm-coordinator|farm-agent|farmctl) ([0-9]+\.[0-9]+\.[0-9]+( \(git [0-9a-f]{7,}\))?)\n$)");

TEST(VersionTest, EveryBinaryPrintsTheVersionTheAgentRegistersWith) {
  ASSERT_OK_AND_ASSIGN(auto farm, MiniFarm::Create());
  std::set<std::string> versions;
  const std::vector<std::pair<std::string, std::vector<std::string>>> runs = {
      {"farm-coordinator", {"--version"}},
      {"farm-agent", {"--version"}},
      {"farmctl", {"--version"}},
      {"farmctl", {"version"}}};
  for (const auto& [binary, args] : runs) {
    ASSERT_OK_AND_ASSIGN(CommandResult r, RunBinary(*farm, binary, args));
    EXPECT_EQ(r.exit_code, 0) << r.DebugString();
    std::smatch match;
    ASSERT_TRUE(std::regex_match(r.out, match, kVersionLine)) << binary << ": " << r.out;
    EXPECT_EQ(match[1].str(), binary);
    versions.insert(match[2].str());
  }
  ASSERT_EQ(versions.size(), 1u) << "every binary prints one version";

  ASSERT_OK(farm->StartCoordinator());
  ASSERT_OK(farm->StartAgent({"a1"}));
  ASSERT_OK(farm->WaitForAgents({"a1"}));
  ASSERT_OK_AND_ASSIGN(farm::v1::ListAgentsResponse agents, farm->ListAgents());
  ASSERT_EQ(agents.agents_size(), 1);
  EXPECT_EQ(agents.agents(0).version(), *versions.begin());
}

// The flags a binary's --helpfull lists from its own sources (not Abseil's).
absl::StatusOr<std::set<std::string>> OwnFlags(MiniFarm& farm, const std::string& binary) {
  FARM_ASSIGN_OR_RETURN(CommandResult r, RunBinary(farm, binary, {"--helpfull"}));
  std::set<std::string> flags;
  bool own = false;
  const std::regex flag_line(R"(^    --([a-z0-9_]+) )");
  for (const std::string& line : std::vector<std::string>(absl::StrSplit(r.out, '\n'))) {
    if (absl::StartsWith(line, "  Flags from ")) own = !absl::StrContains(line, "absl/");
    std::smatch match;
    if (own && std::regex_search(line, match, flag_line)) flags.insert(match[1].str());
  }
  if (flags.empty()) return absl::InternalError(binary + " --helpfull listed no flags: " + r.out);
  return flags;
}

TEST(ConfigExampleTest, EveryFlagHasALineInItsExampleAndTheExampleLoads) {
  ASSERT_OK_AND_ASSIGN(auto farm, MiniFarm::Create());
  for (const std::string binary : {"farm-coordinator", "farm-agent"}) {
    const std::string example =
        absl::StrCat(FARM_SOURCE_DIR, "/deploy/config/", binary.substr(5), ".yaml");
    const std::string text = ReadFileOrEmpty(example);
    ASSERT_FALSE(text.empty()) << example;
    std::set<std::string> keys;  // "key:" or "# key:" at the start of a line
    const std::regex key_line(R"(^(# )?([a-z0-9_]+):)");
    for (const std::string& line : std::vector<std::string>(absl::StrSplit(text, '\n'))) {
      std::smatch match;
      if (std::regex_search(line, match, key_line)) keys.insert(match[2].str());
    }
    ASSERT_OK_AND_ASSIGN(std::set<std::string> flags, OwnFlags(*farm, binary));
    for (const std::string& flag : flags) {
      if (flag == "config" || flag == "check_config" || flag == "enroll_token" ||
          flag == "restore_from") {
        continue;  // command line only
      }
      EXPECT_TRUE(keys.count(flag))
          << example << " has no line for --" << flag << " (add it with its default and a comment)";
    }
    for (const std::string& key : keys) {
      EXPECT_TRUE(flags.count(key)) << example << " names " << key << ", no flag of " << binary;
    }
    ASSERT_OK_AND_ASSIGN(CommandResult r,
                         RunBinary(*farm, binary, {"--config=" + example, "--check_config"}));
    EXPECT_EQ(r.exit_code, 0) << r.DebugString();
    EXPECT_EQ(r.out, example + ": OK\n");
  }
}

TEST(ConfigFileTest, AWrongSettingStopsTheStartNamingFileLineAndKey) {
  ASSERT_OK_AND_ASSIGN(auto farm, MiniFarm::Create());
  const std::string config = farm->Path("coordinator.yaml");
  const std::string base = absl::StrCat("data_dir: ", farm->Path("data"), "\ninsecure: true\n");
  struct Case {
    std::string text;
    std::string error;
  };
  const std::vector<Case> cases = {
      {base + "lease_tll: 1m\n", ":3: key 'lease_tll': unknown setting"},
      {base + "agent_loss_retries: two\n",
       ":3: key 'agent_loss_retries': expected a 32-bit integer, not \"two\""},
      {base + "lease_ttl: soon\n", ":3: key 'lease_ttl': "},
      {base + "\nlease_ttl: 1ms\n", ":4: key 'lease_ttl': must be between 300ms and 1h"},
      {base + "log_format: xml\n", ":3: key 'log_format': \"xml\" is not a log format"},
      {base + "config: other.yaml\n", ":3: key 'config': can be given on the command line only"},
  };
  for (const Case& c : cases) {
    ASSERT_OK(WriteFile(config, c.text));
    ASSERT_OK_AND_ASSIGN(CommandResult r,
                         RunBinary(*farm, "farm-coordinator", {"--config=" + config}));
    EXPECT_EQ(r.exit_code, 2) << r.DebugString();
    EXPECT_THAT(r.err, HasSubstr("farm-coordinator: " + config + c.error)) << c.text;
  }
  // The command line wins over the file.
  ASSERT_OK(WriteFile(config, base + "lease_ttl: soon\nagent_loss_retries: two\n"));
  ASSERT_OK_AND_ASSIGN(CommandResult r, RunBinary(*farm, "farm-coordinator",
                                                  {"--config=" + config, "--lease_ttl=1m",
                                                   "--agent_loss_retries=3", "--check_config"}));
  EXPECT_EQ(r.exit_code, 0) << r.DebugString();

  // The agent keeps secrets out of its file.
  const std::string agent_config = farm->Path("agent.yaml");
  ASSERT_OK(WriteFile(agent_config, "coordinator: 127.0.0.1:1\nenroll_token: abc\n"));
  ASSERT_OK_AND_ASSIGN(r, RunBinary(*farm, "farm-agent", {"--config=" + agent_config}));
  EXPECT_EQ(r.exit_code, 2) << r.DebugString();
  EXPECT_THAT(r.err, HasSubstr(agent_config + ":2: key 'enroll_token': a secret is never written "
                                              "in a config file: use enroll_token_file"));
}

TEST(LogFormatTest, JsonLogsAreOneObjectPerLine) {
  ASSERT_OK_AND_ASSIGN(auto farm, MiniFarm::Create());
  ASSERT_OK(farm->StartCoordinator({"--log_format=json"}));
  ASSERT_OK(farm->StartAgent({"a1", {}, 1, {"--log_format=json"}}));
  ASSERT_OK(farm->WaitForAgents({"a1"}));
  ASSERT_OK_AND_ASSIGN(std::string id, farm->SubmitJobFile("steps: [{run: 'true'}]"));
  ASSERT_OK(farm->WaitForJobDone(id).status());
  ASSERT_OK(farm->StopAgent("a1").status());
  ASSERT_OK(farm->StopCoordinator().status());
  bool saw_context = false;
  for (const std::string log : {"coordinator-1.stderr", "agent-a1-1.stderr"}) {
    const std::string text = ReadFileOrEmpty(farm->Path(log));
    int lines = 0;
    for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
      ++lines;
      google::protobuf::Struct parsed;
      ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(std::string(line), &parsed).ok())
          << log << ": not JSON: " << line;
      for (const char* field : {"time", "level", "source", "msg"}) {
        EXPECT_TRUE(parsed.fields().count(field)) << log << ": no " << field << ": " << line;
      }
      EXPECT_TRUE(std::regex_match(parsed.fields().at("time").string_value(),
                                   std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")))
          << line;
      saw_context |= parsed.fields().count("job") > 0 && parsed.fields().count("agent") > 0;
    }
    EXPECT_GT(lines, 0) << log;
  }
  EXPECT_TRUE(saw_context) << "the [job= agent=] context becomes fields";
}

class ReloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MiniFarmOptions options;
    options.tls = true;
    ASSERT_OK_AND_ASSIGN(farm_, MiniFarm::Create(options));
    config_ = farm_->Path("coordinator.yaml");
    ASSERT_OK(WriteFile(config_, "log_level: info\n"));
    ASSERT_OK(farm_->StartCoordinator({"--config=" + config_}));
  }

  std::string CoordinatorLog() { return ReadFileOrEmpty(farm_->Path("coordinator-1.stderr")); }

  // Sends SIGHUP and waits for the coordinator to log the reload's outcome (the n-th one).
  void Reload(int n) {
    ASSERT_OK(farm_->coordinator()->Signal(SIGHUP));
    ASSERT_OK(WaitFor(
        [&] {
          const std::string log = CoordinatorLog();
          return CountLines(log, "reload: done") + CountLines(log, "configuration in use stays") >=
                 n;
        },
        absl::Seconds(10), "the reload's outcome in the log"));
  }

  std::unique_ptr<MiniFarm> farm_;
  std::string config_;
};

TEST_F(ReloadTest, NewCertificateForNewConnectionsWhileTheAgentStays) {
  ASSERT_OK(farm_->StartAgent({"a1"}));
  ASSERT_OK(farm_->WaitForAgents({"a1"}));
  const std::string address = farm_->coordinator_address();
  ASSERT_OK_AND_ASSIGN(std::string old_serial, ServedCertificateSerial(address));

  // A renewed certificate from the same CA, written over the files the coordinator names.
  ASSERT_OK_AND_ASSIGN(common::CertAndKey renewed,
                       common::IssueServerCert(ReadFileOrEmpty(farm_->Path("certs/ca.crt")),
                                               ReadFileOrEmpty(farm_->Path("certs/ca.key")),
                                               {"localhost", "127.0.0.1"}));
  ASSERT_OK_AND_ASSIGN(std::string new_serial, CertificateSerial(renewed.cert_pem));
  ASSERT_NE(new_serial, old_serial);
  ASSERT_OK(Replace(farm_->Path("certs/coordinator.key"), renewed.key_pem));
  ASSERT_OK(Replace(farm_->Path("certs/coordinator.crt"), renewed.cert_pem));
  // Nothing changes until the operator asks.
  EXPECT_EQ(ServedCertificateSerial(address).value_or(""), old_serial);

  Reload(1);
  ASSERT_OK(WaitFor([&] { return ServedCertificateSerial(address).value_or("") == new_serial; },
                    absl::Seconds(10), "the new certificate on a new connection"));
  // A new farmctl connection verifies it, and the agent is still there on its old one.
  ASSERT_OK_AND_ASSIGN(farm::v1::ListAgentsResponse agents, farm_->ListAgents());
  ASSERT_EQ(agents.agents_size(), 1);
  EXPECT_EQ(agents.agents(0).state(), "idle");
  ASSERT_OK_AND_ASSIGN(std::string id, farm_->SubmitJobFile("steps: [{run: 'echo after'}]"));
  ASSERT_OK_AND_ASSIGN(farm::v1::Job job, farm_->WaitForJobDone(id));
  EXPECT_EQ(job.state(), farm::v1::SUCCEEDED);
  EXPECT_EQ(CountLines(ReadFileOrEmpty(farm_->Path("agent-a1-1.stderr")), "registered with"), 1)
      << "the agent kept its session";
}

TEST_F(ReloadTest, ABrokenReloadKeepsWhatIsInUse) {
  ASSERT_OK_AND_ASSIGN(std::string serial, ServedCertificateSerial(farm_->coordinator_address()));

  // A config file that does not load.
  ASSERT_OK(WriteFile(config_, "log_level: loud\n"));
  Reload(1);
  EXPECT_THAT(CoordinatorLog(), HasSubstr(config_ + ":1: key 'log_level': \"loud\" is not a log "
                                                    "level"));
  // A setting that needs a restart.
  ASSERT_OK(WriteFile(config_, "log_level: info\nlease_ttl: 1m\n"));
  Reload(2);
  EXPECT_THAT(CoordinatorLog(), HasSubstr("reload: lease_ttl changed from \"30s\" to \"1m\": "
                                          "needs a restart"));
  // A certificate file that is not one.
  ASSERT_OK(Replace(farm_->Path("certs/coordinator.crt"), "garbage\n"));
  Reload(3);
  EXPECT_THAT(CoordinatorLog(), HasSubstr("--tls_cert: "));
  EXPECT_EQ(CountLines(CoordinatorLog(), "configuration in use stays"), 2);

  // Still serving, with the certificate it had.
  EXPECT_EQ(ServedCertificateSerial(farm_->coordinator_address()).value_or(""), serial);
  ASSERT_OK_AND_ASSIGN(CommandResult r, farm_->RunFarmctl({"agents"}));
  EXPECT_EQ(r.exit_code, 0) << r.DebugString();
}

// The agent reloads its client certificate on SIGHUP: after the coordinator comes to accept
// only a new CA's certificates, the agent's next connection (the coordinator restarted) gets
// through with the certificate it reloaded; without the reload it would present the old one.
TEST(AgentReloadTest, TheAgentsNextConnectionUsesItsReloadedCertificate) {
  MiniFarmOptions options;
  options.tls = true;
  ASSERT_OK_AND_ASSIGN(auto farm, MiniFarm::Create(options));
  const std::string client_ca = farm->Path("certs/client-ca.crt");
  ASSERT_OK(WriteFile(client_ca, ReadFileOrEmpty(farm->Path("certs/ca.crt"))));
  ASSERT_OK(farm->StartCoordinator({"--tls_client_ca=" + client_ca}));  // the last one wins
  ASSERT_OK(farm->StartAgent({"a1"}));
  ASSERT_OK(farm->WaitForAgents({"a1"}));

  // A second CA; the agent's and the admin's certificates from it.
  ASSERT_OK_AND_ASSIGN(common::CertAndKey ca2, common::CreateCa("farm CA 2"));
  ASSERT_OK_AND_ASSIGN(common::CertAndKey agent,
                       common::IssueClientCert(ca2.cert_pem, ca2.key_pem, "agent", "a1"));
  ASSERT_OK_AND_ASSIGN(common::CertAndKey admin,
                       common::IssueClientCert(ca2.cert_pem, ca2.key_pem, "admin", "admin"));
  ASSERT_OK(Replace(farm->Path("certs/agent-a1.key"), agent.key_pem));
  ASSERT_OK(Replace(farm->Path("certs/agent-a1.crt"), agent.cert_pem));
  ASSERT_OK(farm->agent("a1")->Signal(SIGHUP));
  const std::string agent_log = farm->Path("agent-a1-1.stderr");
  ASSERT_OK(WaitFor([&] { return CountLines(ReadFileOrEmpty(agent_log), "reload: done") == 1; },
                    absl::Seconds(10), "the agent's reload"));

  // The coordinator accepts CA 2's certificates only, from its next start.
  ASSERT_OK(Replace(client_ca, ca2.cert_pem));
  ASSERT_OK(Replace(farm->Path("certs/admin.key"), admin.key_pem));
  ASSERT_OK(Replace(farm->Path("certs/admin.crt"), admin.cert_pem));
  ASSERT_OK(farm->StopCoordinator().status());
  ASSERT_OK(farm->RestartCoordinator());
  ASSERT_OK_AND_ASSIGN(std::string id, farm->SubmitJobFile("steps: [{run: 'echo reloaded'}]"));
  ASSERT_OK_AND_ASSIGN(farm::v1::Job job, farm->WaitForJobDone(id, absl::Seconds(30)));
  EXPECT_EQ(job.state(), farm::v1::SUCCEEDED);
}

}  // namespace
}  // namespace farm::testing
