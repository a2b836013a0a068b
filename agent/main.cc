// farm-agent: flags → AgentOptions → Agent. SIGTERM/SIGINT drain the agent (no new jobs,
// running jobs finish, bounded by --drain_timeout); a second signal cancels running jobs.
// Exit code: 0 after a drain, 1 when the agent stopped itself (its step supervisor died, or the
// coordinator refused its identity or another agent took its name), 2 on bad flags or a failed
// start (an enrollment token refused among them).
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "agent/agent.h"
#include "agent/enrollment.h"
#include "agent/options.h"
#include "agent/step_supervisor.h"
#include "common/channel.h"
#include "common/config_file.h"
#include "common/daemon_config.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/tls_material.h"
#include "common/version.h"

ABSL_FLAG(std::string, coordinator, "", "Coordinator address, HOST:PORT (required).");
ABSL_FLAG(std::string, tls_ca, "",
          "CA certificate (PEM) that verifies the coordinator (or FARM_TLS_CA).");
ABSL_FLAG(std::string, tls_cert, "",
          "This agent's client certificate (PEM, SAN URI farm://agent/NAME); with --tls_key.");
ABSL_FLAG(std::string, tls_key, "", "The private key of --tls_cert (PEM).");
ABSL_FLAG(std::string, token_file, "",
          "File holding this agent's token (role agent; or FARM_TOKEN holds the token).");
ABSL_FLAG(std::string, enroll_token, "",
          "An enrollment token (farmctl agent enroll-token), exchanged once for this agent's own "
          "credential, kept in WORK_DIR/credential and used from then on. Visible to ps: prefer "
          "--enroll_token_file.");
ABSL_FLAG(std::string, enroll_token_file, "", "A file holding the enrollment token.");
ABSL_FLAG(bool, insecure, false,
          "Plaintext, no credentials: only for a coordinator started with --insecure.");
ABSL_FLAG(std::string, name, "", "Agent name, unique per machine (default: the host name).");
ABSL_FLAG(std::string, labels, "",
          "Agent labels, k=v,k2=v2. os and arch are added unless given explicitly.");
ABSL_FLAG(int32_t, slots, 1, "How many jobs run at once.");
ABSL_FLAG(std::string, work_dir, "", "Directory for job workspaces (required; created).");
ABSL_FLAG(bool, keep_failed, false, "Keep the workspace of a failed attempt.");
ABSL_FLAG(std::string, drain_timeout, "10m",
          "After SIGTERM, how long running jobs may take before they are cancelled.");
ABSL_FLAG(std::string, lease_wait, "20s",
          "How long one Lease call may wait at the coordinator for work.");
ABSL_FLAG(int64_t, cache_max_bytes, farm::agent::kDefaultCacheMaxBytes,
          "Bound of the local cache of job inputs (WORK_DIR/cache/blobs), least recently used "
          "blobs evicted first; 0 disables the cache.");
// Step isolation (README, "Step isolation"; agent/isolation.h).
ABSL_FLAG(std::string, run_as, "",
          "The user steps run as. Default: when the agent runs as root, farm-build if that user "
          "exists, else nobody; otherwise the agent's own user (the only one allowed then). "
          "--run_as=root keeps steps as root (not recommended).");
ABSL_FLAG(std::string, step_rlimits, "",
          "Resource limits of every step, NAME=VALUE,...: nofile, nproc, as, fsize, core, cpu, "
          "stack, memlock; bytes may end in K/M/G/T; \"unlimited\". Default: none.");
ABSL_FLAG(std::string, sandbox, "none",
          "none, or bwrap: each step in bubblewrap (read-only system, writable workspace, private "
          "/tmp, no access to the agent's files, no network for jobs with network: false).");
ABSL_FLAG(std::string, cgroup_root, "",
          "A cgroup v2 directory under which each step gets its own cgroup (default: the "
          "agent's own cgroup). Without cgroup v2 the agent falls back to process groups.");

ABSL_FLAG(std::string, http_listen, "",
          "HOST:PORT of the agent's HTTP port: /metrics (Prometheus) and /healthz, plain HTTP "
          "without credentials; port 0 picks a free port; empty: none.");
ABSL_FLAG(std::string, http_port_file, "",
          "Write the HTTP port's bound HOST:PORT to this file once serving.");

// Configuration, logs, version (README, "Configuration files and reload").
ABSL_FLAG(std::string, config, "",
          "A YAML file of settings, keys the flag names (deploy/config/agent.yaml); flags on the "
          "command line win; SIGHUP reads it again.");
ABSL_FLAG(bool, check_config, false,
          "Check the configuration (file and flags) and exit: 0 and \"OK\" when it is valid; "
          "the files it names are not read.");
ABSL_FLAG(std::string, log_level, "",
          "debug, info, warning or error (default: $FARM_LOG_LEVEL, else info); SIGHUP applies "
          "a new value.");
ABSL_FLAG(std::string, log_format, "text",
          "text (one line per event: level, time, file:line, message) or json (one JSON object "
          "per line, for log shippers); SIGHUP applies a new value.");

namespace {

constexpr char kProgram[] = "farm-agent";

int Fail(const std::string& message) {
  std::cerr << "farm-agent: " << message << "\n";
  return 2;
}

// Step isolation's flags into `options` (README, "Step isolation").
absl::Status IsolationFromFlags(farm::agent::AgentOptions* options) {
  options->isolation.run_as = absl::GetFlag(FLAGS_run_as);
  if (options->isolation.run_as.empty() && ::geteuid() == 0) {
    options->isolation.run_as = farm::agent::DefaultStepUser();
  }
  FARM_ASSIGN_OR_RETURN(options->isolation.rlimits,
                        farm::agent::ParseStepRlimits(absl::GetFlag(FLAGS_step_rlimits)));
  FARM_ASSIGN_OR_RETURN(options->isolation.sandbox,
                        farm::agent::ParseSandbox(absl::GetFlag(FLAGS_sandbox)));
  options->isolation.cgroup_root = absl::GetFlag(FLAGS_cgroup_root);
  // The agent's own credentials, which no step may read: its token or key, and the credential
  // an enrollment left in the work dir (agent/enrollment.h).
  const std::string enrolled =
      absl::StrCat(options->work_dir, "/", farm::agent::kCredentialFileName);
  for (const std::string& file :
       {absl::GetFlag(FLAGS_token_file), absl::GetFlag(FLAGS_tls_key), enrolled}) {
    if (!file.empty()) options->isolation.secret_files.push_back(file);
  }
  return absl::OkStatus();
}

// The credentials' flags, as given.
farm::common::ClientSecurityFlags SecurityFlags() {
  farm::common::ClientSecurityFlags security;
  security.insecure = absl::GetFlag(FLAGS_insecure);
  security.tls_ca = absl::GetFlag(FLAGS_tls_ca);
  security.tls_cert = absl::GetFlag(FLAGS_tls_cert);
  security.tls_key = absl::GetFlag(FLAGS_tls_key);
  security.token_file = absl::GetFlag(FLAGS_token_file);
  return security;
}

// The CA and client certificate the flags name, read and checked, as TlsMaterial holds them:
// {identity, roots}.
absl::StatusOr<std::pair<std::string, std::string>> TlsPems(
    const farm::common::ClientSecurity& security) {
  std::string identity;
  if (!security.cert_pem.empty()) {
    FARM_RETURN_IF_ERROR(farm::common::CheckKeyPair(security.cert_pem, security.key_pem,
                                                    "--tls_cert", absl::GetFlag(FLAGS_tls_cert),
                                                    "--tls_key", absl::GetFlag(FLAGS_tls_key)));
    identity = farm::common::IdentityPem(security.key_pem, security.cert_pem);
  }
  const std::string ca = absl::GetFlag(FLAGS_tls_ca);
  FARM_RETURN_IF_ERROR(farm::common::CheckCertificates(security.ca_pem, "--tls_ca",
                                                       ca.empty() ? "$FARM_TLS_CA" : ca));
  return std::make_pair(identity, security.ca_pem);
}

// The credentials' flags into `options`, reading and checking their files.
absl::Status SecurityFromFlags(farm::agent::AgentOptions* options) {
  const farm::common::ClientSecurityFlags security = SecurityFlags();
  FARM_ASSIGN_OR_RETURN(options->security, farm::common::LoadClientSecurity(security));
  if (!options->security.insecure) FARM_RETURN_IF_ERROR(TlsPems(options->security).status());
  const std::string enroll_file = absl::GetFlag(FLAGS_enroll_token_file);
  options->enroll_token = absl::GetFlag(FLAGS_enroll_token);
  if (!enroll_file.empty()) {
    if (!options->enroll_token.empty()) {
      return absl::InvalidArgumentError("give --enroll_token or --enroll_token_file, not both");
    }
    FARM_ASSIGN_OR_RETURN(options->enroll_token,
                          farm::common::ReadTokenFile(enroll_file, "--enroll_token_file"));
  }
  return absl::OkStatus();
}

// The flags as options; INVALID_ARGUMENT naming the flag when one cannot be parsed. Without
// `read_files` (--check_config) the credentials' files are not read.
absl::StatusOr<farm::agent::AgentOptions> OptionsFromFlags(bool read_files) {
  farm::agent::AgentOptions options;
  options.coordinator = absl::GetFlag(FLAGS_coordinator);
  options.name = absl::GetFlag(FLAGS_name);
  absl::StatusOr<std::map<std::string, std::string>> labels =
      farm::agent::ParseLabels(absl::GetFlag(FLAGS_labels));
  if (!labels.ok()) return labels.status();
  options.labels = *labels;
  options.slots = absl::GetFlag(FLAGS_slots);
  options.work_dir = absl::GetFlag(FLAGS_work_dir);
  options.keep_failed = absl::GetFlag(FLAGS_keep_failed);
  FARM_RETURN_IF_ERROR(farm::common::ReadDurationFlags({
      {&FLAGS_drain_timeout, "--drain_timeout", &options.drain_timeout_ms},
      {&FLAGS_lease_wait, "--lease_wait", &options.lease_wait_ms},
  }));
  options.cache_max_bytes = absl::GetFlag(FLAGS_cache_max_bytes);
  options.http_listen = absl::GetFlag(FLAGS_http_listen);
  options.http_port_file = absl::GetFlag(FLAGS_http_port_file);
  options.version = farm::common::FarmVersion();
  FARM_RETURN_IF_ERROR(IsolationFromFlags(&options));
  if (read_files) FARM_RETURN_IF_ERROR(SecurityFromFlags(&options));
  return options;
}

// What Agent::Init checks of `options`, for --check_config.
absl::StatusOr<farm::agent::AgentOptions> ValidOptions(farm::agent::AgentOptions options) {
  options = farm::agent::WithDefaults(std::move(options));
  FARM_RETURN_IF_ERROR(options.Validate());
  return options;
}

farm::common::ConfigFileOptions ConfigFileOptions(int argc, char** argv) {
  farm::common::ConfigFileOptions options;
  options.command_line = farm::common::CommandLineFlagNames(argc, argv);
  options.command_line_only = {"config", "check_config"};
  options.secret = {{"enroll_token", "enroll_token_file"}};
  return options;
}

// The settings a SIGHUP changes in a running agent; every other one (the coordinator, the
// name, slots, credentials, isolation) needs a restart.
const absl::flat_hash_set<std::string>& LiveFlags() {
  static const auto* live = new absl::flat_hash_set<std::string>{"log_level", "log_format",
                                                                 "tls_ca", "tls_cert", "tls_key"};
  return *live;
}

// The TLS files of `security` as TlsMaterial, which the agent's channels take them from and
// SIGHUP updates; null with --insecure. Its file watcher is a thread: only after the step
// supervisor has forked.
absl::StatusOr<std::shared_ptr<farm::common::TlsMaterial>> MakeTlsMaterial(
    farm::common::ClientSecurity* security) {
  if (security->insecure) return nullptr;
  FARM_ASSIGN_OR_RETURN(auto pems, TlsPems(*security));
  FARM_ASSIGN_OR_RETURN(security->material,
                        farm::common::TlsMaterial::Create(pems.first, pems.second));
  return security->material;
}

// After a reload: the TLS files read again into `material` (null with --insecure), whether or
// not their names changed, for the agent's new connections; then the log settings applied.
absl::Status ApplyLiveFlags(farm::common::TlsMaterial* material) {
  const std::string level = absl::GetFlag(FLAGS_log_level);
  const std::string format = absl::GetFlag(FLAGS_log_format);
  FARM_RETURN_IF_ERROR(farm::common::CheckLogFlags(level, format));
  if (material != nullptr) {
    FARM_ASSIGN_OR_RETURN(farm::common::ClientSecurity fresh,
                          farm::common::LoadClientSecurity(SecurityFlags()));
    FARM_ASSIGN_OR_RETURN(auto pems, TlsPems(fresh));
    FARM_RETURN_IF_ERROR(material->Update(pems.first, pems.second));
    FARM_LOG(INFO) << "reload: TLS files in use for new connections";
  }
  return farm::common::ApplyLogFlags(level, format);
}

// The signal thread: SIGTERM or SIGINT drains the agent, a second one cancels its running jobs;
// SIGHUP reloads the configuration; SIGUSR1 (sent by main at exit) ends the thread.
void HandleSignals(farm::agent::Agent& agent, const sigset_t& signals,
                   farm::common::ConfigFile* config, farm::common::TlsMaterial* material) {
  int received = 0;
  while (true) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGUSR1) return;
    if (sig == SIGHUP) {
      FARM_LOG(INFO) << "received SIGHUP: reloading the configuration and the TLS files";
      farm::common::ReloadConfig(config, LiveFlags(),
                                 [material] { return ApplyLiveFlags(material); });
      continue;
    }
    ++received;
    if (received == 1) {
      FARM_LOG(INFO) << "received " << strsignal(sig) << ": draining";
      agent.Drain();
    } else {
      FARM_LOG(INFO) << "received " << strsignal(sig) << " again: cancelling running jobs";
      agent.CancelRunningJobs("agent shutting down: cancelled by a second signal");
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Runs build jobs for a farm coordinator.\n"
      "  farm-agent --coordinator=HOST:PORT --work_dir=DIR (--tls_ca=FILE (--token_file=FILE |\n"
      "             --tls_cert=FILE --tls_key=FILE | --enroll_token_file=FILE) | --insecure)\n"
      "             [--name=NAME] [--labels=k=v,...]\n"
      "             [--slots=N] [--keep_failed] [--drain_timeout=10m] [--lease_wait=20s]\n"
      "             [--cache_max_bytes=10737418240] [--run_as=USER] [--step_rlimits=nofile=N,...]\n"
      "             [--sandbox=none|bwrap] [--cgroup_root=DIR] [--config=FILE]\n"
      "Every flag is also a setting of the --config file (deploy/config/agent.yaml).");
  // Debian builds Abseil without NDEBUG, which leaves absl::Mutex's deadlock detection on: a
  // lock-order graph updated on every lock, gRPC's included (measured: ~3% of the
  // coordinator's CPU under load). The tests keep it on; the binaries turn it off.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // Log chunks (64 KiB) and upload messages would otherwise be served by mmap and given back
  // by trimming one by one, each page faulted in again (measured: the agent's CPU per GB of
  // step output fell to about a third with these settings, as in the coordinator).
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
  farm::common::UseFarmVersionFlag(kProgram);
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (rest.size() > 1) {
    return Fail(absl::StrCat("unexpected argument \"", rest[1], "\" (flags only)"));
  }

  absl::StatusOr<std::unique_ptr<farm::common::ConfigFile>> loaded = farm::common::LoadDaemonConfig(
      absl::GetFlag(FLAGS_config), ConfigFileOptions(argc, argv), [] {
        return std::make_pair(absl::GetFlag(FLAGS_log_level), absl::GetFlag(FLAGS_log_format));
      });
  if (!loaded.ok()) return Fail(std::string(loaded.status().message()));
  const std::unique_ptr<farm::common::ConfigFile> config = *std::move(loaded);
  const bool check_only = absl::GetFlag(FLAGS_check_config);
  absl::StatusOr<farm::agent::AgentOptions> options = OptionsFromFlags(!check_only);
  if (options.ok() && check_only) options = ValidOptions(*std::move(options));
  if (!options.ok()) return Fail(farm::common::AttributedMessage(config.get(), options.status()));
  if (check_only) {
    std::cout << (config != nullptr ? config->path() : std::string("flags")) << ": OK\n";
    return 0;
  }

  // Forked while this is the only thread (see step_supervisor.h): before the signal thread,
  // before gRPC starts any.
  absl::StatusOr<std::unique_ptr<farm::agent::StepSupervisor>> supervisor =
      farm::agent::StepSupervisor::Start();
  if (!supervisor.ok()) return Fail(std::string(supervisor.status().message()));

  // Signals are taken synchronously by one thread; every other thread (and so gRPC's) has
  // them blocked. The step runner unblocks them in each step's process.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  sigaddset(&signals, SIGUSR1);  // internal: ends the signal thread at exit
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // Shared with the agent's channels; the signal thread updates it.
  absl::StatusOr<std::shared_ptr<farm::common::TlsMaterial>> material =
      MakeTlsMaterial(&options->security);
  if (!material.ok()) return Fail(std::string(material.status().message()));
  farm::agent::Agent agent(*std::move(options), *std::move(supervisor));
  if (absl::Status s = agent.Init(); !s.ok()) return Fail(std::string(s.message()));
  if (absl::Status s = agent.Start(); !s.ok()) return Fail(std::string(s.message()));

  std::thread signal_thread([&agent, &signals, &config, &material] {
    HandleSignals(agent, signals, config.get(), material->get());
  });
  agent.WaitUntilDrained();
  agent.Shutdown();
  pthread_kill(signal_thread.native_handle(), SIGUSR1);
  signal_thread.join();
  if (absl::Status error = agent.error(); !error.ok()) {
    std::cerr << "farm-agent: " << error.message() << "\n";
    return 1;
  }
  return 0;
}
