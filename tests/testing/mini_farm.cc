#include "tests/testing/mini_farm.h"

#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/certs.h"
#include "common/job_state.h"
#include "common/status_macros.h"

#ifndef FARM_DEFAULT_BIN_DIR
#define FARM_DEFAULT_BIN_DIR ""
#endif

namespace farm::testing {
namespace {

// Job polling spawns a farmctl per poll; this keeps a waiting test from eating a core.
constexpr absl::Duration kJobPoll = absl::Milliseconds(50);

template <typename Message>
absl::StatusOr<Message> ParseJson(const std::string& json, absl::string_view what) {
  Message message;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;  // an unknown field is farmctl breaking the contract
  auto status = google::protobuf::util::JsonStringToMessage(json, &message, options);
  if (!status.ok()) {
    return absl::InternalError(absl::StrCat("farmctl ", what, " --output=json did not print a ",
                                            Message::descriptor()->full_name(), ": ",
                                            status.ToString(), "\noutput:\n", json));
  }
  return message;
}

}  // namespace

absl::Status WaitFor(const std::function<bool()>& condition, absl::Duration timeout,
                     absl::string_view what, absl::Duration poll) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("timed out after ", absl::FormatDuration(timeout), " waiting for ", what));
    }
    absl::SleepFor(poll);
  }
  return absl::OkStatus();
}

std::string CommandResult::DebugString() const {
  return absl::StrCat("exit code ", exit_code, "\n--- stdout ---\n", out, "\n--- stderr ---\n", err,
                      "\n---");
}

bool IsTerminal(farm::v1::JobState state) { return common::IsTerminal(state); }

absl::StatusOr<std::unique_ptr<MiniFarm>> MiniFarm::Create(MiniFarmOptions options) {
  if (options.bin_dir.empty()) {
    const char* env = getenv("FARM_BIN_DIR");
    options.bin_dir = (env != nullptr && *env != '\0') ? env : FARM_DEFAULT_BIN_DIR;
  }
  if (options.bin_dir.empty()) {
    return absl::FailedPreconditionError("MiniFarm: no bin dir (set FARM_BIN_DIR)");
  }
  FARM_ASSIGN_OR_RETURN(TempDir root, TempDir::Create("minifarm"));
  std::unique_ptr<MiniFarm> farm(new MiniFarm(std::move(options), std::move(root)));
  if (farm->options_.tls) FARM_RETURN_IF_ERROR(farm->MakeCertificates());
  return farm;
}

MiniFarm::MiniFarm(MiniFarmOptions options, TempDir root)
    : options_(std::move(options)), root_(std::move(root)) {
  admin_security_.insecure = true;
}

absl::Status MiniFarm::MakeCertificates() {
  const std::string dir = Path("certs");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("mkdir ", dir, ": ", ec.message()));
  FARM_ASSIGN_OR_RETURN(common::CertAndKey ca, common::CreateCa("minifarm CA"));
  std::vector<std::string> hosts = {"127.0.0.1", "localhost"};
  hosts.insert(hosts.end(), options_.tls_hosts.begin(), options_.tls_hosts.end());
  FARM_ASSIGN_OR_RETURN(common::CertAndKey server,
                        common::IssueServerCert(ca.cert_pem, ca.key_pem, hosts));
  FARM_ASSIGN_OR_RETURN(common::CertAndKey admin,
                        common::IssueClientCert(ca.cert_pem, ca.key_pem, "admin", "admin"));
  for (const auto& [name, text] :
       std::vector<std::pair<std::string, std::string>>{{"ca.crt", ca.cert_pem},
                                                        {"ca.key", ca.key_pem},
                                                        {"coordinator.crt", server.cert_pem},
                                                        {"coordinator.key", server.key_pem},
                                                        {"admin.crt", admin.cert_pem},
                                                        {"admin.key", admin.key_pem}}) {
    FARM_RETURN_IF_ERROR(WriteFile(Path("certs/" + name), text));
  }
  coordinator_security_ = {absl::StrCat("--tls_cert=", Path("certs/coordinator.crt")),
                           absl::StrCat("--tls_key=", Path("certs/coordinator.key")),
                           absl::StrCat("--tls_client_ca=", Path("certs/ca.crt"))};
  farmctl_security_ = {absl::StrCat("--tls_ca=", Path("certs/ca.crt")),
                       absl::StrCat("--tls_cert=", Path("certs/admin.crt")),
                       absl::StrCat("--tls_key=", Path("certs/admin.key"))};
  admin_security_.insecure = false;
  admin_security_.ca_pem = ca.cert_pem;
  admin_security_.cert_pem = admin.cert_pem;
  admin_security_.key_pem = admin.key_pem;
  return absl::OkStatus();
}

absl::StatusOr<common::ClientSecurity> MiniFarm::AgentSecurity(const std::string& name) {
  if (!options_.tls) return admin_security_;
  FARM_RETURN_IF_ERROR(AgentSecurityFlags(name).status());
  common::ClientSecurity security = admin_security_;
  FARM_ASSIGN_OR_RETURN(security.cert_pem,
                        ReadFile(Path(absl::StrCat("certs/agent-", name, ".crt"))));
  FARM_ASSIGN_OR_RETURN(security.key_pem,
                        ReadFile(Path(absl::StrCat("certs/agent-", name, ".key"))));
  return security;
}

absl::StatusOr<std::vector<std::string>> MiniFarm::AgentSecurityFlags(const std::string& name) {
  if (!options_.tls) return std::vector<std::string>{"--insecure"};
  const std::string cert = Path(absl::StrCat("certs/agent-", name, ".crt"));
  const std::string key = Path(absl::StrCat("certs/agent-", name, ".key"));
  if (!FileExists(cert)) {
    FARM_ASSIGN_OR_RETURN(std::string ca_cert, ReadFile(Path("certs/ca.crt")));
    FARM_ASSIGN_OR_RETURN(std::string ca_key, ReadFile(Path("certs/ca.key")));
    FARM_ASSIGN_OR_RETURN(common::CertAndKey issued,
                          common::IssueClientCert(ca_cert, ca_key, "agent", name));
    FARM_RETURN_IF_ERROR(WriteFile(key, issued.key_pem));
    FARM_RETURN_IF_ERROR(WriteFile(cert, issued.cert_pem));
  }
  return std::vector<std::string>{absl::StrCat("--tls_ca=", Path("certs/ca.crt")),
                                  absl::StrCat("--tls_cert=", cert),
                                  absl::StrCat("--tls_key=", key)};
}

std::string RunAsSelfFlag() {
  const struct passwd* self = ::getpwuid(::geteuid());
  return absl::StrCat("--run_as=", self != nullptr ? self->pw_name : std::to_string(::geteuid()));
}

MiniFarm::~MiniFarm() {
  // Agents first: a draining agent still reports to the coordinator.
  for (auto& [name, agent] : agents_) {
    if (agent != nullptr && agent->IsRunning()) (void)agent->Terminate(options_.stop_timeout);
  }
  if (coordinator_ != nullptr && coordinator_->IsRunning()) {
    (void)coordinator_->Terminate(options_.stop_timeout);
  }
  if (::testing::Test::HasFailure()) DumpLogs();
  const char* keep = getenv("FARM_TEST_KEEP");
  if (keep != nullptr && std::string(keep) == "1") {
    root_.Keep();
    fprintf(stderr, "MiniFarm: kept %s\n", root_.path().c_str());
  }
}

void MiniFarm::DumpLogs() {
  std::error_code ec;
  std::vector<std::string> logs;
  for (auto it = std::filesystem::directory_iterator(root_.path(), ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    const std::string path = it->path().string();
    if (absl::EndsWith(path, ".stderr") || absl::EndsWith(path, ".stdout")) logs.push_back(path);
  }
  std::sort(logs.begin(), logs.end());
  for (const std::string& path : logs) {
    // farmctl output is in the assertion messages already.
    if (absl::StrContains(path, "/farmctl-")) continue;
    std::string text = ReadFileOrEmpty(path);
    if (text.empty()) continue;
    fprintf(stderr, "===== MiniFarm log %s (last lines) =====\n%s\n", path.c_str(),
            TailLines(text, 60).c_str());
  }
}

std::string MiniFarm::BinaryPath(const std::string& name) const {
  return absl::StrCat(options_.bin_dir, "/", name);
}

// ---------------------------------------------------------------------------------------------
// Coordinator

absl::Status MiniFarm::StartCoordinator(std::vector<std::string> extra_flags) {
  if (coordinator_ != nullptr && coordinator_->IsRunning()) {
    return absl::FailedPreconditionError("the coordinator is already running");
  }
  coordinator_flags_ = std::move(extra_flags);
  return LaunchCoordinator("127.0.0.1:0");
}

absl::Status MiniFarm::RestartCoordinator() {
  if (coordinator_address_.empty()) {
    return absl::FailedPreconditionError("RestartCoordinator before StartCoordinator");
  }
  if (coordinator_ != nullptr && coordinator_->IsRunning()) {
    return absl::FailedPreconditionError("the coordinator is still running");
  }
  return LaunchCoordinator(coordinator_address_);
}

absl::Status MiniFarm::LaunchCoordinator(const std::string& listen) {
  const std::string port_file = Path("coordinator.port");
  std::error_code ec;
  std::filesystem::remove(port_file, ec);
  std::filesystem::create_directories(coordinator_data_dir(), ec);

  const int n = ++coordinator_starts_;
  SubprocessOptions options;
  options.binary = BinaryPath("farm-coordinator");
  options.args = {absl::StrCat("--listen=", listen),
                  absl::StrCat("--data_dir=", coordinator_data_dir()),
                  absl::StrCat("--port_file=", port_file)};
  for (const std::string& flag : coordinator_security_) options.args.push_back(flag);
  for (const std::string& flag : coordinator_flags_) options.args.push_back(flag);
  options.stdout_path = Path(absl::StrCat("coordinator-", n, ".stdout"));
  options.stderr_path = Path(absl::StrCat("coordinator-", n, ".stderr"));
  FARM_ASSIGN_OR_RETURN(coordinator_, Subprocess::Start(options));

  FARM_ASSIGN_OR_RETURN(
      std::string address,
      WaitForAddressFile(*coordinator_, port_file, options_.start_timeout, options.stderr_path));
  coordinator_address_ = address;
  return absl::OkStatus();
}

absl::StatusOr<int> MiniFarm::StopCoordinator(absl::Duration timeout) {
  if (coordinator_ == nullptr) return absl::FailedPreconditionError("no coordinator");
  return coordinator_->Terminate(timeout);
}

absl::Status MiniFarm::KillCoordinator() {
  if (coordinator_ == nullptr) return absl::FailedPreconditionError("no coordinator");
  return coordinator_->Kill9();
}

// ---------------------------------------------------------------------------------------------
// Agents

absl::Status MiniFarm::StartAgent(AgentOptions agent) {
  if (coordinator_address_.empty()) {
    return absl::FailedPreconditionError("StartAgent before StartCoordinator");
  }
  if (agent.name.empty()) return absl::InvalidArgumentError("StartAgent: empty name");
  auto it = agents_.find(agent.name);
  if (it != agents_.end() && it->second->IsRunning()) {
    return absl::FailedPreconditionError(absl::StrCat("agent ", agent.name, " is running"));
  }
  const std::string work_dir = agent_work_dir(agent.name);
  std::error_code ec;
  std::filesystem::create_directories(work_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("mkdir ", work_dir, ": ", ec.message()));

  std::vector<std::string> labels;
  for (const auto& [k, v] : agent.labels) labels.push_back(absl::StrCat(k, "=", v));
  SubprocessOptions options;
  options.binary = BinaryPath("farm-agent");
  options.args = {absl::StrCat("--coordinator=", coordinator_address_),
                  absl::StrCat("--name=", agent.name), absl::StrCat("--slots=", agent.slots),
                  absl::StrCat("--work_dir=", work_dir)};
  if (!labels.empty())
    options.args.push_back(absl::StrCat("--labels=", absl::StrJoin(labels, ",")));
  FARM_ASSIGN_OR_RETURN(std::vector<std::string> security, AgentSecurityFlags(agent.name));
  for (const std::string& flag : security) options.args.push_back(flag);
  for (const std::string& flag : agent.extra_flags) options.args.push_back(flag);
  const bool run_as_given = absl::c_any_of(agent.extra_flags, [](const std::string& flag) {
    return absl::StartsWith(flag, "--run_as");
  });
  if (!run_as_given) options.args.push_back(RunAsSelfFlag());
  // Numbered, so that a restarted agent does not truncate the log of its predecessor.
  int n = 1;
  while (FileExists(Path(absl::StrCat("agent-", agent.name, "-", n, ".stderr")))) ++n;
  options.stdout_path = Path(absl::StrCat("agent-", agent.name, "-", n, ".stdout"));
  options.stderr_path = Path(absl::StrCat("agent-", agent.name, "-", n, ".stderr"));
  FARM_ASSIGN_OR_RETURN(agents_[agent.name], Subprocess::Start(options));
  return absl::OkStatus();
}

absl::Status MiniFarm::WaitForAgents(const std::vector<std::string>& names,
                                     absl::Duration timeout) {
  absl::Status last = absl::OkStatus();
  absl::Status waited = WaitFor(
      [&] {
        for (const std::string& name : names) {
          Subprocess* process = agent(name);
          if (process != nullptr && !process->IsRunning()) {
            last = absl::UnavailableError(absl::StrCat("agent ", name, " exited"));
            return true;
          }
        }
        absl::StatusOr<farm::v1::ListAgentsResponse> listed = ListAgents();
        if (!listed.ok()) {
          last = listed.status();
          return false;
        }
        for (const std::string& name : names) {
          bool found = false;
          for (const farm::v1::AgentInfo& info : listed->agents()) {
            if (info.name() == name && info.state() != "offline") found = true;
          }
          if (!found) {
            last = absl::NotFoundError(absl::StrCat("agent ", name, " not listed"));
            return false;
          }
        }
        last = absl::OkStatus();
        return true;
      },
      timeout, "agents to register", kJobPoll);
  if (!last.ok()) return last;
  return waited;
}

Subprocess* MiniFarm::agent(const std::string& name) {
  auto it = agents_.find(name);
  return it == agents_.end() ? nullptr : it->second.get();
}

std::string MiniFarm::agent_work_dir(const std::string& name) const {
  return Path(absl::StrCat("agents/", name));
}

absl::StatusOr<int> MiniFarm::StopAgent(const std::string& name, absl::Duration timeout) {
  Subprocess* process = agent(name);
  if (process == nullptr) return absl::NotFoundError(absl::StrCat("no agent ", name));
  return process->Terminate(timeout);
}

absl::Status MiniFarm::KillAgent(const std::string& name) {
  Subprocess* process = agent(name);
  if (process == nullptr) return absl::NotFoundError(absl::StrCat("no agent ", name));
  return process->Kill9();
}

// ---------------------------------------------------------------------------------------------
// farmctl

absl::StatusOr<MiniFarm::Background> MiniFarm::StartFarmctl(std::vector<std::string> args,
                                                            const std::string& stdin_path) {
  const int n = ++farmctl_runs_;
  SubprocessOptions options;
  options.binary = BinaryPath("farmctl");
  if (args.empty() || !absl::StartsWith(args[0], "--coordinator")) {
    if (coordinator_address_.empty()) {
      return absl::FailedPreconditionError("farmctl before StartCoordinator");
    }
    options.args.push_back(absl::StrCat("--coordinator=", coordinator_address_));
  }
  for (const std::string& flag : farmctl_security_) options.args.push_back(flag);
  for (std::string& arg : args) options.args.push_back(std::move(arg));
  options.stdout_path = Path(absl::StrCat("farmctl-", n, ".stdout"));
  options.stderr_path = Path(absl::StrCat("farmctl-", n, ".stderr"));
  options.stdin_path = stdin_path;
  Background background;
  background.stdout_path = options.stdout_path;
  background.stderr_path = options.stderr_path;
  FARM_ASSIGN_OR_RETURN(background.process, Subprocess::Start(std::move(options)));
  return background;
}

absl::StatusOr<CommandResult> MiniFarm::RunFarmctl(std::vector<std::string> args) {
  return RunFarmctl(std::move(args), options_.command_timeout);
}

absl::StatusOr<CommandResult> MiniFarm::RunFarmctlWithInput(std::vector<std::string> args,
                                                            const std::string& input) {
  const std::string path = Path(absl::StrCat("farmctl-", farmctl_runs_ + 1, ".stdin"));
  FARM_RETURN_IF_ERROR(WriteFile(path, input));
  absl::StatusOr<CommandResult> result =
      RunFarmctl(std::move(args), options_.command_timeout, path);
  std::error_code ec;
  std::filesystem::remove(path, ec);
  return result;
}

absl::StatusOr<CommandResult> MiniFarm::RunFarmctl(std::vector<std::string> args,
                                                   absl::Duration timeout,
                                                   const std::string& stdin_path) {
  const std::string command = absl::StrJoin(args, " ");
  FARM_ASSIGN_OR_RETURN(Background run, StartFarmctl(std::move(args), stdin_path));
  absl::StatusOr<int> code = run.process->Wait(timeout);
  if (!code.ok()) (void)run.process->Kill9();
  CommandResult result;
  result.out = ReadFileOrEmpty(run.stdout_path);
  result.err = ReadFileOrEmpty(run.stderr_path);
  // The files are evidence only while a command runs; keep the farm's directory small.
  std::error_code ec;
  std::filesystem::remove(run.stdout_path, ec);
  std::filesystem::remove(run.stderr_path, ec);
  if (!code.ok()) {
    return absl::DeadlineExceededError(absl::StrCat(
        "farmctl ", command, ": ", code.status().message(), "\n", result.DebugString()));
  }
  result.exit_code = *code;
  return result;
}

absl::StatusOr<std::string> MiniFarm::WriteJobFile(const std::string& text,
                                                   const std::string& extension) {
  const std::string path = Path(absl::StrCat("job-", ++job_files_, ".", extension));
  FARM_RETURN_IF_ERROR(WriteFile(path, text));
  return path;
}

absl::StatusOr<std::string> MiniFarm::SubmitJobFile(const std::string& text,
                                                    std::vector<std::string> extra_args) {
  FARM_ASSIGN_OR_RETURN(std::string path, WriteJobFile(text));
  std::vector<std::string> args = {"submit", path};
  for (std::string& arg : extra_args) args.push_back(std::move(arg));
  FARM_ASSIGN_OR_RETURN(CommandResult result, RunFarmctl(args));
  if (result.exit_code != 0) {
    return absl::InternalError(absl::StrCat("farmctl submit failed: ", result.DebugString()));
  }
  std::string id;
  for (absl::string_view line : absl::StrSplit(result.out, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (!line.empty()) id = std::string(line);
  }
  if (id.empty()) {
    return absl::InternalError(
        absl::StrCat("farmctl submit printed no id: ", result.DebugString()));
  }
  return id;
}

absl::StatusOr<std::string> MiniFarm::GetJobJson(const std::string& id) {
  FARM_ASSIGN_OR_RETURN(CommandResult result, RunFarmctl({"get", id, "--output=json"}));
  if (result.exit_code != 0) {
    std::string message = absl::StrCat("farmctl get ", id, ": ", result.DebugString());
    if (absl::StrContains(absl::AsciiStrToLower(result.err), "not found")) {
      return absl::NotFoundError(message);
    }
    return absl::InternalError(message);
  }
  return result.out;
}

absl::StatusOr<farm::v1::Job> MiniFarm::GetJob(const std::string& id) {
  FARM_ASSIGN_OR_RETURN(std::string json, GetJobJson(id));
  return ParseJson<farm::v1::Job>(json, "get");
}

absl::StatusOr<farm::v1::Job> MiniFarm::WaitForJob(
    const std::string& id, const std::function<bool(const farm::v1::Job&)>& done,
    absl::Duration timeout) {
  farm::v1::Job last;
  absl::Status error = absl::OkStatus();
  absl::Status waited = WaitFor(
      [&] {
        absl::StatusOr<farm::v1::Job> job = GetJob(id);
        if (!job.ok()) {
          error = job.status();
          return false;
        }
        error = absl::OkStatus();
        last = *std::move(job);
        return done(last);
      },
      timeout, absl::StrCat("job ", id), kJobPoll);
  if (!waited.ok()) {
    return absl::DeadlineExceededError(
        absl::StrCat(waited.message(), "; last state ", farm::v1::JobState_Name(last.state()),
                     error.ok() ? "" : absl::StrCat("; last error: ", error.ToString()),
                     "\nlast job: ", last.ShortDebugString()));
  }
  return last;
}

absl::StatusOr<farm::v1::Job> MiniFarm::WaitForJobState(const std::string& id,
                                                        farm::v1::JobState state,
                                                        absl::Duration timeout) {
  return WaitForJob(
      id, [state](const farm::v1::Job& job) { return job.state() == state; }, timeout);
}

absl::StatusOr<farm::v1::Job> MiniFarm::WaitForJobDone(const std::string& id,
                                                       absl::Duration timeout) {
  return WaitForJob(
      id, [](const farm::v1::Job& job) { return IsTerminal(job.state()); }, timeout);
}

absl::StatusOr<farm::v1::Pipeline> MiniFarm::GetPipeline(const std::string& id) {
  FARM_ASSIGN_OR_RETURN(std::string json, GetJobJson(id));
  return ParseJson<farm::v1::Pipeline>(json, "get");
}

absl::StatusOr<farm::v1::Pipeline> MiniFarm::WaitForPipelineDone(const std::string& id,
                                                                 absl::Duration timeout) {
  farm::v1::Pipeline last;
  absl::Status error = absl::OkStatus();
  absl::Status waited = WaitFor(
      [&] {
        absl::StatusOr<farm::v1::Pipeline> pipeline = GetPipeline(id);
        error = pipeline.status();
        if (!pipeline.ok()) return false;
        last = *std::move(pipeline);
        return IsTerminal(last.state());
      },
      timeout, absl::StrCat("pipeline ", id), kJobPoll);
  if (!waited.ok()) {
    return absl::DeadlineExceededError(absl::StrCat(
        waited.message(), error.ok() ? "" : absl::StrCat("; last error: ", error.ToString()),
        "\nlast pipeline: ", last.ShortDebugString()));
  }
  return last;
}

absl::StatusOr<farm::v1::ListJobsResponse> MiniFarm::ListJobs(std::vector<std::string> extra_args) {
  std::vector<std::string> args = {"list", "--output=json"};
  for (std::string& arg : extra_args) args.push_back(std::move(arg));
  FARM_ASSIGN_OR_RETURN(CommandResult result, RunFarmctl(args));
  if (result.exit_code != 0) {
    return absl::InternalError(absl::StrCat("farmctl list: ", result.DebugString()));
  }
  return ParseJson<farm::v1::ListJobsResponse>(result.out, "list");
}

absl::StatusOr<farm::v1::ListAgentsResponse> MiniFarm::ListAgents() {
  FARM_ASSIGN_OR_RETURN(CommandResult result, RunFarmctl({"agents", "--output=json"}));
  if (result.exit_code != 0) {
    return absl::InternalError(absl::StrCat("farmctl agents: ", result.DebugString()));
  }
  return ParseJson<farm::v1::ListAgentsResponse>(result.out, "agents");
}

absl::StatusOr<std::string> MiniFarm::Logs(const std::string& id,
                                           std::vector<std::string> extra_args) {
  std::vector<std::string> args = {"logs", id};
  for (std::string& arg : extra_args) args.push_back(std::move(arg));
  FARM_ASSIGN_OR_RETURN(CommandResult result, RunFarmctl(args));
  if (result.exit_code != 0) {
    return absl::InternalError(absl::StrCat("farmctl logs: ", result.DebugString()));
  }
  return result.out;
}

}  // namespace farm::testing
