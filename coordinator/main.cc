// farm-coordinator: flags → CoordinatorOptions → Coordinator. See README.md.
#include <malloc.h>

#include <csignal>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/config_file.h"
#include "common/daemon_config.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "coordinator/coordinator.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:7070", "HOST:PORT to serve on; port 0 picks a free port");
ABSL_FLAG(std::string, data_dir, "", "directory for the store (required)");
ABSL_FLAG(std::string, restore_from, "",
          "restore this backup directory (written by `farmctl admin backup`) into --data_dir, "
          "which must be new or empty, then start on it; the backup is validated first (every "
          "file's checksum) and left as it was");
ABSL_FLAG(std::string, port_file, "", "write the bound HOST:PORT to this file once serving");
ABSL_FLAG(std::string, http_listen, "",
          "HOST:PORT of the HTTP port: /metrics (Prometheus) and /healthz, with the gRPC port's "
          "TLS and identities; port 0 picks a free port; empty: none");
ABSL_FLAG(std::string, http_port_file, "",
          "write the HTTP port's bound HOST:PORT to this file once serving");
ABSL_FLAG(std::string, tls_cert, "", "the coordinator's TLS certificate (PEM); with --tls_key");
ABSL_FLAG(std::string, tls_key, "", "the private key of --tls_cert (PEM)");
ABSL_FLAG(std::string, tls_client_ca, "",
          "the CA (PEM) whose client certificates (SAN URI farm://ROLE/NAME) identify callers; "
          "without it, callers identify with tokens");
ABSL_FLAG(bool, insecure, false,
          "development mode: plaintext, no authentication (every caller is admin), loopback "
          "only");
ABSL_FLAG(std::string, secrets_key_file, "",
          "the key secrets are encrypted with at rest: 32 random bytes in base64 (`openssl rand "
          "-base64 32`; `farmctl certs init` writes secrets.key); without it the coordinator "
          "keeps no secrets");
ABSL_FLAG(std::vector<std::string>, secrets_old_key_files, {},
          "comma-separated older key files that still decrypt the secrets written under them "
          "(key rotation); new writes use --secrets_key_file");
ABSL_FLAG(std::string, lease_ttl, "30s", "how long a lease lives without a heartbeat");
ABSL_FLAG(int, agent_loss_retries, 2, "requeues after a lost agent before a job fails");
ABSL_FLAG(int64_t, max_log_bytes_per_job, int64_t{1} << 30,
          "output kept per job; the rest is dropped behind a truncation marker");
ABSL_FLAG(int64_t, min_free_disk, int64_t{128} << 20,
          "bytes that must stay free on the data directory's file system; below that, writes "
          "are refused with RESOURCE_EXHAUSTED and served again once space is back");
ABSL_FLAG(int64_t, cas_max_bytes, int64_t{10} << 30,
          "bytes of blobs the CAS keeps; above that, least recently used blobs are evicted down "
          "to 90%");
ABSL_FLAG(std::string, artifact_retention, "168h",
          "how long a finished job's artifacts are kept safe from CAS eviction");
ABSL_FLAG(std::string, event_retention, "720h",
          "how long the event history (every change of jobs and agents) is kept");
// Retention and garbage collection (issue 13, part 3). 0 turns a limit off.
ABSL_FLAG(std::string, job_retention, "30d",
          "remove a finished job (a pipeline's: once the pipeline has ended), its record and its "
          "output, this long after it ended; 0 keeps jobs forever");
ABSL_FLAG(std::string, log_retention, "14d",
          "remove a finished job's output (its record stays) this long after it ended; 0: as "
          "long as the job");
ABSL_FLAG(int64_t, max_log_bytes, int64_t{50} << 30,
          "output of finished jobs kept in all; past it the oldest jobs' output is removed; 0: "
          "no limit");
ABSL_FLAG(std::string, action_cache_retention, "30d",
          "remove an action-cache result this long after it was stored; 0 keeps them forever");
ABSL_FLAG(std::string, gc_interval, "1h",
          "how often garbage collection expires action results, evicts CAS blobs and compacts "
          "the store so that removed data gives its space back (finished jobs are removed "
          "continuously); 0: nothing is removed but by `farmctl admin gc`");
ABSL_FLAG(std::string, cas_min_age, "10m",
          "never evict a CAS blob used more recently than this (e.g. 10m, 1h)");
ABSL_FLAG(int, max_streams_per_connection, 1024,
          "gRPC streams one client connection may have open at once; the client queues the rest");
ABSL_FLAG(std::string, max_connection_idle, "30m",
          "close a client connection that has had no call for this long");
ABSL_FLAG(std::string, max_connection_age, "1h",
          "retire every client connection after this long (clients reconnect for new calls)");
ABSL_FLAG(std::string, max_connection_age_grace, "5m",
          "how long a retired connection's open calls may still run (longer than a parked "
          "call's 60s)");
ABSL_FLAG(int, max_parked_calls_per_identity, 1024,
          "parked Lease and Heartbeat calls one caller may hold at once (an agent holds one per "
          "idle slot, plus one); with --insecure, per client connection");
ABSL_FLAG(int, max_watch_streams_per_identity, 100,
          "WatchLogs streams (farmctl logs --follow) one caller may hold open at once; with "
          "--insecure, per client connection");

// Configuration, logs, version (README, "Configuration files and reload").
ABSL_FLAG(std::string, config, "",
          "a YAML file of settings, keys the flag names (deploy/config/coordinator.yaml); flags "
          "on the command line win; SIGHUP reads it again");
ABSL_FLAG(bool, check_config, false,
          "check the configuration (file and flags) and exit: 0 and \"OK\" when it is valid; the "
          "files it names are not read");
ABSL_FLAG(std::string, log_level, "",
          "debug, info, warning or error (default: $FARM_LOG_LEVEL, else info); SIGHUP applies a "
          "new value");
ABSL_FLAG(std::string, log_format, "text",
          "text (one line per event: level, time, file:line, message) or json (one JSON object "
          "per line, for log shippers); SIGHUP applies a new value");

namespace {

constexpr char kProgram[] = "farm-coordinator";

int Fail(const std::string& message) {
  std::cerr << "farm-coordinator: " << message << "\n";
  return 2;
}

// The gRPC server limits' flags into `options`; INVALID_ARGUMENT naming a flag that is not a
// duration.
absl::Status ReadLimitFlags(farm::coordinator::CoordinatorOptions* options) {
  options->max_streams_per_connection = absl::GetFlag(FLAGS_max_streams_per_connection);
  FARM_RETURN_IF_ERROR(farm::common::ReadDurationFlags({
      {&FLAGS_max_connection_idle, "--max_connection_idle", &options->max_connection_idle_ms},
      {&FLAGS_max_connection_age, "--max_connection_age", &options->max_connection_age_ms},
      {&FLAGS_max_connection_age_grace, "--max_connection_age_grace",
       &options->max_connection_age_grace_ms},
  }));
  options->max_parked_calls_per_identity = absl::GetFlag(FLAGS_max_parked_calls_per_identity);
  options->max_watch_streams_per_identity = absl::GetFlag(FLAGS_max_watch_streams_per_identity);
  return absl::OkStatus();
}

// The retention flags into `options`; INVALID_ARGUMENT naming a flag that is not a duration.
absl::Status ReadRetentionFlags(farm::coordinator::CoordinatorOptions* options) {
  FARM_RETURN_IF_ERROR(farm::common::ReadDurationFlags({
      {&FLAGS_job_retention, "--job_retention", &options->job_retention_ms},
      {&FLAGS_log_retention, "--log_retention", &options->log_retention_ms},
      {&FLAGS_action_cache_retention, "--action_cache_retention",
       &options->action_cache_retention_ms},
      {&FLAGS_gc_interval, "--gc_interval", &options->gc_interval_ms},
      {&FLAGS_artifact_retention, "--artifact_retention", &options->artifact_retention_ms},
      {&FLAGS_event_retention, "--event_retention", &options->event_retention_ms},
  }));
  options->max_log_bytes = absl::GetFlag(FLAGS_max_log_bytes);
  return absl::OkStatus();
}

// The flags as options, checked (Validate); INVALID_ARGUMENT naming the flag that is wrong.
absl::StatusOr<farm::coordinator::CoordinatorOptions> OptionsFromFlags() {
  farm::coordinator::CoordinatorOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  options.port_file = absl::GetFlag(FLAGS_port_file);
  options.http_listen = absl::GetFlag(FLAGS_http_listen);
  options.http_port_file = absl::GetFlag(FLAGS_http_port_file);
  options.restore_from = absl::GetFlag(FLAGS_restore_from);
  options.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  options.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  options.tls_client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  options.insecure = absl::GetFlag(FLAGS_insecure);
  options.secrets_key_file = absl::GetFlag(FLAGS_secrets_key_file);
  options.secrets_old_key_files = absl::GetFlag(FLAGS_secrets_old_key_files);
  FARM_RETURN_IF_ERROR(farm::common::ReadDurationFlags({
      {&FLAGS_lease_ttl, "--lease_ttl", &options.lease_ttl_ms},
      {&FLAGS_cas_min_age, "--cas_min_age", &options.cas_min_age_ms},
  }));
  options.agent_loss_retries = absl::GetFlag(FLAGS_agent_loss_retries);
  options.max_log_bytes_per_job = absl::GetFlag(FLAGS_max_log_bytes_per_job);
  options.cas_max_bytes = absl::GetFlag(FLAGS_cas_max_bytes);
  options.min_free_disk_bytes = absl::GetFlag(FLAGS_min_free_disk);
  FARM_RETURN_IF_ERROR(ReadLimitFlags(&options));
  FARM_RETURN_IF_ERROR(ReadRetentionFlags(&options));
  FARM_RETURN_IF_ERROR(options.Validate());
  return options;
}

// The settings a SIGHUP changes in a running coordinator. Every other one (the address, the
// data dir, limits the store and scheduler were built with) needs a restart.
const absl::flat_hash_set<std::string>& LiveFlags() {
  static const auto* live = new absl::flat_hash_set<std::string>{
      "log_level", "log_format", "tls_cert", "tls_key", "tls_client_ca"};
  return *live;
}

// After a reload: the TLS files read again (whether or not their names changed: the usual
// renewal replaces the files in place) and the log settings applied.
absl::Status ApplyLiveFlags(bool insecure, farm::coordinator::Coordinator& coordinator) {
  const std::string level = absl::GetFlag(FLAGS_log_level);
  const std::string format = absl::GetFlag(FLAGS_log_format);
  FARM_RETURN_IF_ERROR(farm::common::CheckLogFlags(level, format));
  if (!insecure) {
    FARM_RETURN_IF_ERROR(coordinator.ReloadTls(absl::GetFlag(FLAGS_tls_cert),
                                               absl::GetFlag(FLAGS_tls_key),
                                               absl::GetFlag(FLAGS_tls_client_ca)));
    FARM_LOG(INFO) << "reload: TLS certificate " << absl::GetFlag(FLAGS_tls_cert)
                   << " in use for new connections";
  }
  return farm::common::ApplyLogFlags(level, format);
}

farm::common::ConfigFileOptions ConfigFileOptions(int argc, char** argv) {
  farm::common::ConfigFileOptions options;
  options.command_line = farm::common::CommandLineFlagNames(argc, argv);
  options.command_line_only = {"config", "check_config", "restore_from"};
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "farm-coordinator --listen=HOST:PORT --data_dir=DIR (--tls_cert=FILE --tls_key=FILE "
      "[--tls_client_ca=FILE] | --insecure) [--secrets_key_file=FILE "
      "[--secrets_old_key_files=F1,F2]] [--port_file=FILE] [--lease_ttl=30s] [--config=FILE]\n"
      "[--restore_from=BACKUP_DIR]\n"
      "Every flag is also a setting of the --config file (deploy/config/coordinator.yaml).");
  // ByteStream messages (up to 16 MiB) would otherwise be mmap'ed and unmapped one by one, each
  // page faulted in again: keep them on the heap (measured: 1 GiB uploads ~1.8x faster).
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
  // Debian builds Abseil without NDEBUG, which leaves absl::Mutex's deadlock detection on: a
  // lock-order graph updated on every lock, gRPC's included (measured: ~3% of the
  // coordinator's CPU under load). The tests keep it on; the binaries turn it off.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  farm::common::UseFarmVersionFlag(kProgram);
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (rest.size() > 1) return Fail(std::string("unexpected argument: ") + rest[1]);

  // Block the stop and reload signals before any thread starts, and wait for them on this
  // thread.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  absl::StatusOr<std::unique_ptr<farm::common::ConfigFile>> loaded = farm::common::LoadDaemonConfig(
      absl::GetFlag(FLAGS_config), ConfigFileOptions(argc, argv), [] {
        return std::make_pair(absl::GetFlag(FLAGS_log_level), absl::GetFlag(FLAGS_log_format));
      });
  if (!loaded.ok()) return Fail(std::string(loaded.status().message()));
  const std::unique_ptr<farm::common::ConfigFile> config = *std::move(loaded);
  absl::StatusOr<farm::coordinator::CoordinatorOptions> options = OptionsFromFlags();
  if (!options.ok()) return Fail(farm::common::AttributedMessage(config.get(), options.status()));
  if (absl::GetFlag(FLAGS_check_config)) {
    std::cout << (config != nullptr ? config->path() : std::string("flags")) << ": OK\n";
    return 0;
  }

  farm::coordinator::Coordinator coordinator(*options);
  if (absl::Status s = coordinator.Init(); !s.ok()) return Fail(s.ToString());
  if (absl::Status s = coordinator.Start(); !s.ok()) return Fail(s.ToString());

  while (true) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig != SIGHUP) {
      FARM_LOG(INFO) << "received signal " << sig << ", shutting down";
      break;
    }
    FARM_LOG(INFO) << "received SIGHUP: reloading the configuration and the TLS files";
    farm::common::ReloadConfig(config.get(), LiveFlags(),
                               [&] { return ApplyLiveFlags(options->insecure, coordinator); });
  }
  coordinator.Shutdown();
  return 0;
}
