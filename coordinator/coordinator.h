// The coordinator process: owns the store, the scheduler, the services and the gRPC server,
// with an explicit lifecycle Init → Start → Shutdown (Kudu's Master is the model).
// Not thread-safe except Shutdown, which may be called from any thread once.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "common/io_pool.h"
#include "coordinator/auth/secret_registry.h"
#include "coordinator/auth/token_registry.h"
#include "coordinator/backup/backup.h"
#include "coordinator/cas/action_cache.h"
#include "coordinator/cas/file_blob_store.h"
#include "coordinator/events/event_reader.h"
#include "coordinator/factory/targets.h"
#include "coordinator/http/coordinator_metrics.h"
#include "coordinator/http/http_port.h"
#include "coordinator/logs/follower_hub.h"
#include "coordinator/scheduler/scheduler.h"
#include "coordinator/store/store.h"

namespace grpc {
class Server;
class ServerCredentials;
namespace experimental {
class ServerInterceptorFactoryInterface;
}  // namespace experimental
}  // namespace grpc

namespace farm::coordinator {

class Authenticator;
class CallCap;
class JobServiceImpl;
class AgentServiceImpl;
class AdminServiceImpl;
class GarbageCollector;
class ReapiServices;
class ServerTls;

struct CoordinatorOptions {
  std::string listen = "127.0.0.1:7070";  // HOST:PORT; port 0 picks a free one
  std::string data_dir;
  std::string port_file;  // when set, the bound HOST:PORT is written here once serving
  // The HTTP port (http/http_port.h): /metrics and /healthz, with the gRPC port's TLS and
  // identities. Empty: none (and gRPC calls are not counted). Its bound HOST:PORT goes to
  // http_port_file when set.
  std::string http_listen;
  std::string http_port_file;
  // Issue 13: a backup directory (coordinator/backup/backup.h) that Init validates and restores
  // into data_dir (which must then be missing or empty) before it opens it.
  std::string restore_from;
  // TLS (PEM files): the coordinator's certificate and key, and the CA whose client
  // certificates identify callers (without it, callers present tokens). Either both cert and
  // key, or `insecure`: plaintext, no authentication (every caller is admin), loopback only.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  bool insecure = false;
  // Secrets (auth/secret_keyring.h): the key file new secrets are encrypted under, and older
  // key files that still decrypt what was written under them. Without secrets_key_file the
  // coordinator keeps no secrets (their RPCs and jobs that use them fail).
  std::string secrets_key_file;
  std::vector<std::string> secrets_old_key_files;
  int64_t lease_ttl_ms = 30'000;
  int agent_loss_retries = 2;
  int64_t max_log_bytes_per_job = int64_t{1} << 30;
  // The content-addressed store (REAPI CAS) under data_dir/cas: evicts least recently used
  // blobs above cas_max_bytes, never ones used within cas_min_age_ms.
  int64_t cas_max_bytes = int64_t{10} << 30;
  int64_t cas_min_age_ms = 10 * 60'000;
  // Writes to the job store are refused (RESOURCE_EXHAUSTED) while its file system has less
  // than this free, so that a full disk never catches RocksDB mid-write (see rocksdb_store.h).
  int64_t min_free_disk_bytes = int64_t{128} << 20;
  // A finished job's artifacts are kept (pinned against eviction) this long.
  int64_t artifact_retention_ms = 7LL * 24 * 3600'000;
  // Events (the history of jobs and agents) are kept this long.
  int64_t event_retention_ms = EventRecorder::kDefaultRetentionMs;
  // Retention and garbage collection (issue 13, part 3; scheduler/retention.h,
  // garbage_collector.h). A finished job (a pipeline's job: once its pipeline has ended) is
  // removed, with its output, job_retention_ms after it ended; its output alone earlier, after
  // log_retention_ms, or while the output of finished jobs takes more than max_log_bytes in all
  // (oldest first). An action-cache result is removed action_cache_retention_ms after it was
  // stored. 0 turns a limit off (kept forever). Jobs that have not ended, and the jobs of
  // pipelines that still run, are never removed; artifacts stay pinned their
  // artifact_retention_ms. The engine removes continuously; every gc_interval_ms a background
  // run also expires action results and compacts the store so that the space is given back.
  // gc_interval_ms 0: nothing is removed but by `farmctl admin gc` (events still expire).
  int64_t job_retention_ms = 30LL * 24 * 3600'000;
  int64_t log_retention_ms = 14LL * 24 * 3600'000;
  int64_t max_log_bytes = int64_t{50} << 30;
  int64_t action_cache_retention_ms = 30LL * 24 * 3600'000;
  int64_t gc_interval_ms = 3600'000;
  // gRPC server limits (SECURITY.md, "Limits"). Streams one client connection may have open
  // at once (a client queues the rest until one ends).
  int max_streams_per_connection = 1024;
  // A connection without calls for max_connection_idle_ms is closed; every connection is
  // retired after max_connection_age_ms (GOAWAY: the client opens a new one for its next
  // calls), its open calls having max_connection_age_grace_ms more to end. The grace is longer
  // than any parked call (Lease, Heartbeat: 60 s at most), so these are never cut; a WatchLogs
  // stream that outlives it is, and farmctl resumes it where it was. gRPC adds ±10% of jitter.
  int64_t max_connection_idle_ms = 30 * 60'000;
  int64_t max_connection_age_ms = 3600'000;
  int64_t max_connection_age_grace_ms = 5 * 60'000;
  // Calls one identity may hold open at once, beyond which a call gets RESOURCE_EXHAUSTED:
  // parked Lease and Heartbeat calls (an agent holds one per idle slot, plus its heartbeat),
  // and WatchLogs streams (one per `farmctl logs --follow`). Without authentication
  // (--insecure) each client connection counts as its own identity.
  int max_parked_calls_per_identity = 1024;
  int max_watch_streams_per_identity = 100;
  // Extra gRPC server interceptors, in order, on every call of every service: for tests (the
  // fault suite injects faults with them) and for future middleware such as authentication.
  // Shared so that the options stay copyable; the server uses them from its threads until
  // Shutdown, so they must be thread-safe. Not flags.
  std::vector<std::shared_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      server_interceptors;

  // INVALID_ARGUMENT naming the flag that is wrong.
  absl::Status Validate() const;
};

class Coordinator {
 public:
  explicit Coordinator(CoordinatorOptions options);
  ~Coordinator();

  // Restores options.restore_from when set, opens the store and recovers the queue and the
  // leases. FAILED_PRECONDITION for a data dir that holds an unfinished restore.
  absl::Status Init();
  // Binds and serves; writes the port file.
  absl::Status Start();
  // Stops accepting calls, answers parked ones, finishes in-flight writes. Idempotent.
  void Shutdown();

  // Serves the TLS certificate, key and client CA these files hold from now on (SIGHUP): new
  // handshakes use them, connections and calls in progress go on. On error (see
  // service/server_tls.h) the material in use stays. FAILED_PRECONDITION with --insecure.
  absl::Status ReloadTls(const std::string& cert_file, const std::string& key_file,
                         const std::string& client_ca_file);

  // The address actually bound, e.g. "127.0.0.1:40123" (after Start).
  const std::string& address() const { return address_; }

  // The full names of the gRPC services Start() registers ("farm.v1.JobService", ...,
  // "grpc.health.v1.Health"): what the authorization table must cover.
  static std::vector<std::string> ServedServices();

  // The per-identity caps on parked calls and WatchLogs streams (after Init): what each
  // caller holds open now.
  const CallCap& parked_calls() const { return *parked_cap_; }
  const CallCap& watch_streams() const { return *watch_cap_; }

  // The CAS (after Init), e.g. to pin a job's artifacts. Owned by the Coordinator.
  BlobStore* blob_store() const { return blob_store_.get(); }

 private:
  // The server's credentials: TLS with the authenticator, or plaintext with --insecure.
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials();
  // Reads the secrets key files and the stored secrets (before the scheduler recovers, which
  // asks it for the redaction of running attempts).
  absl::Status InitSecrets();

  const CoordinatorOptions options_;
  // First: the engine and the gRPC interceptor update its metrics until they are gone.
  CoordinatorMetrics metrics_;
  std::unique_ptr<Store> store_;
  FollowerHub hub_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<EventReader> event_reader_;
  // Store reads for users (jobs, pipelines, logs, events): never on the engine thread nor on
  // gRPC's callback threads.
  std::unique_ptr<common::IoPool> read_pool_;
  std::unique_ptr<TokenRegistry> tokens_;
  std::unique_ptr<SecretRegistry> secrets_;
  std::shared_ptr<Authenticator> authenticator_;
  // Before the services and the server: every call gives its slot back before they go.
  std::unique_ptr<CallCap> parked_cap_;
  std::unique_ptr<CallCap> watch_cap_;
  std::unique_ptr<JobServiceImpl> job_service_;
  std::unique_ptr<AgentServiceImpl> agent_service_;
  std::unique_ptr<AdminServiceImpl> admin_service_;
  std::unique_ptr<FileBlobStore> blob_store_;
  std::unique_ptr<BackupMaker> backups_;           // issue 13
  std::unique_ptr<factory::TargetStore> targets_;  // issue 14
  std::unique_ptr<ActionCache> action_cache_;
  std::unique_ptr<GarbageCollector> gc_;  // before the parts it cleans: it goes first
  std::unique_ptr<ReapiServices> reapi_services_;
  std::unique_ptr<ServerTls> tls_;  // null with --insecure
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<HttpPort> http_;  // null without --http_listen
  std::string address_;
  bool shut_down_ = false;
};

}  // namespace farm::coordinator
