#include "coordinator/coordinator.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/support/server_interceptor.h>
#include <unistd.h>

#include <chrono>
#include <limits>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/channel.h"
#include "common/logging.h"
#include "common/posix_io.h"
#include "common/status_macros.h"
#include "common/version.h"
#include "coordinator/auth/authz_table.h"
#include "coordinator/garbage_collector.h"
#include "coordinator/service/admin_service.h"
#include "coordinator/service/agent_service.h"
#include "coordinator/service/authenticator.h"
#include "coordinator/service/call_caps.h"
#include "coordinator/service/call_metrics.h"
#include "coordinator/service/cas_service.h"
#include "coordinator/service/job_service.h"
#include "coordinator/service/server_tls.h"
#include "coordinator/store/rocksdb_store.h"

namespace farm::coordinator {
namespace {

// ServerBuilder owns its interceptor factories; the options share theirs.
class SharedInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit SharedInterceptorFactory(
      std::shared_ptr<grpc::experimental::ServerInterceptorFactoryInterface> factory)
      : factory_(std::move(factory)) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return factory_->CreateServerInterceptor(info);
  }

 private:
  const std::shared_ptr<grpc::experimental::ServerInterceptorFactoryInterface> factory_;
};

bool IsLoopbackHost(absl::string_view host) {
  if (absl::StartsWith(host, "[") && absl::EndsWith(host, "]")) {
    host = host.substr(1, host.size() - 2);
  }
  if (host == "localhost" || host == "::1") return true;
  in_addr addr;
  const std::string h(host);
  return inet_pton(AF_INET, h.c_str(), &addr) == 1 && (ntohl(addr.s_addr) >> 24) == 127;
}

absl::Status ValidateSecurity(const CoordinatorOptions& o) {
  const bool any_tls =
      !o.tls_cert_file.empty() || !o.tls_key_file.empty() || !o.tls_client_ca_file.empty();
  if (o.insecure) {
    if (any_tls) {
      return absl::InvalidArgumentError(
          "--insecure turns TLS off: it cannot be combined with --tls_cert, --tls_key or "
          "--tls_client_ca");
    }
    const std::pair<const char*, std::string> addresses[] = {{"--listen", o.listen},
                                                             {"--http_listen", o.http_listen}};
    for (const auto& [flag, address] : addresses) {
      if (address.empty()) continue;
      const std::string host = address.substr(0, address.rfind(':'));
      if (!IsLoopbackHost(host)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--insecure serves only on loopback (127.0.0.1, ::1, localhost), not on ", host, " (",
            flag, "): use --tls_cert and --tls_key to serve on a network"));
      }
    }
    return absl::OkStatus();
  }
  if (o.tls_cert_file.empty() || o.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "the coordinator serves TLS: give --tls_cert and --tls_key (PEM files; `farmctl certs "
        "init` makes them) and --tls_client_ca for client certificates, or --insecure for a "
        "development farm on loopback");
  }
  return absl::OkStatus();
}

// Keepalive enforcement: a client whose pings come sooner than common::kMinPingIntervalMs
// apart (while the coordinator sends it nothing) gets a strike, and a GOAWAY "too_many_pings"
// at the third. The farm's clients ping every common::kKeepaliveTimeMs.
constexpr int kMaxPingStrikes = 2;
// The coordinator pings its clients too, to find those that vanished without closing (a dead
// host, a cut network): their calls (WatchLogs streams that wait for output) would otherwise
// stay open, and count against their caller's caps, for good.
constexpr int kServerKeepaliveTimeMs = 60'000;
constexpr int kServerKeepaliveTimeoutMs = 20'000;
// gRPC takes milliseconds as an int.
constexpr int64_t kMaxChannelArgMs = std::numeric_limits<int>::max();

// The retention flags: each 0 (off) or at least a second (a byte limit: at least 1 MiB).
absl::Status ValidateRetention(const CoordinatorOptions& o) {
  const std::pair<const char*, int64_t> durations[] = {
      {"--job_retention", o.job_retention_ms},
      {"--log_retention", o.log_retention_ms},
      {"--action_cache_retention", o.action_cache_retention_ms},
      {"--gc_interval", o.gc_interval_ms}};
  for (const auto& [flag, ms] : durations) {
    if (ms != 0 && ms < 1000) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, " must be 0 (off) or at least 1s, not ", ms, "ms"));
    }
  }
  if (o.max_log_bytes != 0 && o.max_log_bytes < (int64_t{1} << 20)) {
    return absl::InvalidArgumentError("--max_log_bytes must be 0 (no limit) or at least 1 MiB");
  }
  return absl::OkStatus();
}

absl::Status ValidateLimits(const CoordinatorOptions& o) {
  if (o.max_streams_per_connection < 8 || o.max_streams_per_connection > 1'000'000) {
    return absl::InvalidArgumentError("--max_streams_per_connection must be between 8 and 1000000");
  }
  struct Duration {
    int64_t ms;
    const char* flag;
    int64_t min_ms;
  };
  const Duration durations[] = {{o.max_connection_idle_ms, "--max_connection_idle", 1'000},
                                {o.max_connection_age_ms, "--max_connection_age", 1'000},
                                {o.max_connection_age_grace_ms, "--max_connection_age_grace", 0}};
  for (const Duration& d : durations) {
    if (d.ms < d.min_ms || d.ms > kMaxChannelArgMs) {
      return absl::InvalidArgumentError(
          absl::StrCat(d.flag, " must be between ", d.min_ms / 1000, "s and 24d"));
    }
  }
  const std::pair<int, const char*> caps[] = {
      {o.max_parked_calls_per_identity, "--max_parked_calls_per_identity"},
      {o.max_watch_streams_per_identity, "--max_watch_streams_per_identity"}};
  for (const auto& [cap, flag] : caps) {
    if (cap < 1 || cap > 1'000'000) {
      return absl::InvalidArgumentError(absl::StrCat(flag, " must be between 1 and 1000000"));
    }
  }
  return absl::OkStatus();
}

// The limits of every connection (see CoordinatorOptions and SECURITY.md).
void SetServerLimits(const CoordinatorOptions& o, grpc::ServerBuilder* builder) {
  builder->SetMaxReceiveMessageSize(common::kMaxGrpcMessageBytes);
  builder->SetMaxSendMessageSize(common::kMaxGrpcMessageBytes);
  builder->AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, o.max_streams_per_connection);
  builder->AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS,
                              static_cast<int>(o.max_connection_idle_ms));
  builder->AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                              static_cast<int>(o.max_connection_age_ms));
  builder->AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                              static_cast<int>(o.max_connection_age_grace_ms));
  // Idle agents keep their connections: pings without calls are allowed, at the clients' pace.
  builder->AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                              common::kMinPingIntervalMs);
  builder->AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, kMaxPingStrikes);
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, kServerKeepaliveTimeMs);
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, kServerKeepaliveTimeoutMs);
  // A client that waits for output sends nothing: keep pinging it all the same.
  builder->AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
}

// The scheduler's part of the options; job specs' secrets are redacted as `secrets` says.
SchedulerOptions SchedulerOptionsFrom(const CoordinatorOptions& o, SecretRegistry* secrets) {
  SchedulerOptions sched;
  sched.lease_ttl_ms = o.lease_ttl_ms;
  sched.agent_loss_retries = o.agent_loss_retries;
  sched.max_log_bytes_per_job = o.max_log_bytes_per_job;
  sched.event_retention_ms = o.event_retention_ms;
  sched.retention.job_retention_ms = o.job_retention_ms;
  sched.retention.log_retention_ms = o.log_retention_ms;
  sched.retention.max_log_bytes = o.max_log_bytes;
  sched.retention.max_log_bytes_per_job = o.max_log_bytes_per_job;
  sched.retention.background = o.gc_interval_ms > 0;
  sched.redaction = [secrets](const farm::v1::JobSpec& spec) {
    return secrets->PatternsFor(spec.secrets());
  };
  return sched;
}

}  // namespace

absl::Status CoordinatorOptions::Validate() const {
  const size_t colon = listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(listen.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--listen=", listen, " is not HOST:PORT (port 0 picks a free port)"));
  }
  if (data_dir.empty()) return absl::InvalidArgumentError("--data_dir is required");
  if (!http_listen.empty()) {
    FARM_RETURN_IF_ERROR(common::SplitHostPort(http_listen, "--http_listen").status());
  }
  FARM_RETURN_IF_ERROR(ValidateSecurity(*this));
  if (secrets_key_file.empty() && !secrets_old_key_files.empty()) {
    return absl::InvalidArgumentError(
        "--secrets_old_key_files needs --secrets_key_file (the key new secrets are written with)");
  }
  if (lease_ttl_ms < 300 || lease_ttl_ms > 3600'000) {
    return absl::InvalidArgumentError("--lease_ttl must be between 300ms and 1h");
  }
  if (agent_loss_retries < 0 || agent_loss_retries > 100) {
    return absl::InvalidArgumentError("--agent_loss_retries must be between 0 and 100");
  }
  if (max_log_bytes_per_job < 1024) {
    return absl::InvalidArgumentError("--max_log_bytes_per_job must be at least 1024");
  }
  if (min_free_disk_bytes < 0) {
    return absl::InvalidArgumentError("--min_free_disk must not be negative");
  }
  if (cas_max_bytes < (int64_t{1} << 20)) {
    return absl::InvalidArgumentError("--cas_max_bytes must be at least 1 MiB");
  }
  if (cas_min_age_ms < 0) return absl::InvalidArgumentError("--cas_min_age must not be negative");
  // (At least a second, so that a soak test can show retention at work in seconds.)
  if (artifact_retention_ms < 1000) {
    return absl::InvalidArgumentError("--artifact_retention must be at least 1s");
  }
  if (event_retention_ms < 1000) {
    return absl::InvalidArgumentError("--event_retention must be at least 1s");
  }
  FARM_RETURN_IF_ERROR(ValidateRetention(*this));
  return ValidateLimits(*this);
}

Coordinator::Coordinator(CoordinatorOptions options) : options_(std::move(options)) {}

Coordinator::~Coordinator() { Shutdown(); }

absl::Status Coordinator::Init() {
  FARM_RETURN_IF_ERROR(options_.Validate());
  const int64_t started_ms = common::RealClock()->NowMs();
  if (!options_.restore_from.empty()) {
    FARM_RETURN_IF_ERROR(RestoreBackup(options_.restore_from, options_.data_dir).status());
  }
  FARM_RETURN_IF_ERROR(CheckNoUnfinishedRestore(options_.data_dir));
  RocksDbStoreOptions store_options;
  store_options.path = options_.data_dir + "/db";
  store_options.min_free_bytes = options_.min_free_disk_bytes;
  FARM_ASSIGN_OR_RETURN(store_, RocksDbStore::Open(store_options));
  FARM_RETURN_IF_ERROR(InitSecrets());
  SchedulerOptions sched = SchedulerOptionsFrom(options_, secrets_.get());
  // The jobs' flow is measured only when someone can read it.
  if (!options_.http_listen.empty()) sched.flow = metrics_.flow();
  EngineOptions engine;
  engine.group_commands = metrics_.group_commands();
  engine.write_seconds = metrics_.write_seconds();
  scheduler_ = std::make_unique<Scheduler>(store_.get(), common::RealClock(), &hub_, sched, engine);
  FARM_RETURN_IF_ERROR(scheduler_->Init());
  event_reader_ = std::make_unique<EventReader>(store_.get());
  read_pool_ = std::make_unique<common::IoPool>(4, "reads");
  tokens_ = std::make_unique<TokenRegistry>(store_.get(), common::RealClock());
  FARM_RETURN_IF_ERROR(tokens_->Load());
  authenticator_ = std::make_shared<Authenticator>(tokens_.get(), !options_.insecure);
  parked_cap_ = std::make_unique<CallCap>("parked calls (Lease, Heartbeat)",
                                          "--max_parked_calls_per_identity",
                                          options_.max_parked_calls_per_identity);
  watch_cap_ = std::make_unique<CallCap>("WatchLogs streams", "--max_watch_streams_per_identity",
                                         options_.max_watch_streams_per_identity);
  job_service_ = std::make_unique<JobServiceImpl>(scheduler_.get(), &hub_, event_reader_.get(),
                                                  read_pool_.get(), authenticator_.get(),
                                                  watch_cap_.get(), secrets_.get());
  agent_service_ =
      std::make_unique<AgentServiceImpl>(scheduler_.get(), authenticator_.get(), parked_cap_.get(),
                                         tokens_.get(), read_pool_.get(), secrets_.get());
  job_service_->CountLogBytesSent(metrics_.log_bytes_sent());
  agent_service_->CountLogBytesReceived(metrics_.log_bytes_received());
  admin_service_ = std::make_unique<AdminServiceImpl>(
      scheduler_.get(), tokens_.get(), authenticator_.get(), read_pool_.get(), secrets_.get());
  FileBlobStoreOptions cas;
  cas.root = options_.data_dir + "/cas";
  cas.max_bytes = options_.cas_max_bytes;
  cas.min_age_ms = options_.cas_min_age_ms;
  FARM_ASSIGN_OR_RETURN(blob_store_,
                        FileBlobStore::Open(std::move(cas), store_.get(), common::RealClock()));
  action_cache_ = std::make_unique<ActionCache>(store_.get(), blob_store_.get());
  backups_ = std::make_unique<BackupMaker>(store_.get(), blob_store_.get(), common::RealClock(),
                                           options_.data_dir, common::FarmVersion());
  admin_service_->SetStatusSources({common::FarmVersion(), started_ms, options_.data_dir,
                                    store_.get(), blob_store_.get(), options_.cas_max_bytes,
                                    backups_.get()});
  // A job completes only once every artifact it reports is stored; they are then kept for the
  // retention period. The pin (one synced batch) runs on the CAS's pool, before the completion
  // reaches the engine.
  scheduler_->SetArtifactCheck(
      [this](const google::protobuf::RepeatedPtrField<farm::v1::Artifact>& artifacts,
             std::function<void(absl::Status)> done) {
        std::vector<common::Digest> digests;
        digests.reserve(artifacts.size());
        for (const auto& a : artifacts) digests.push_back(common::Digest{a.hash(), a.size()});
        blob_store_->PinArtifactsAsync(
            std::move(digests), common::RealClock()->NowMs() + options_.artifact_retention_ms,
            std::move(done));
      });
  reapi_services_ = std::make_unique<ReapiServices>(blob_store_.get(), action_cache_.get());
  GcOptions gc;
  gc.action_cache_retention_ms = options_.action_cache_retention_ms;
  gc.event_retention_ms = options_.event_retention_ms;
  gc.interval_ms = options_.gc_interval_ms;
  gc.store_dir = store_options.path;
  gc_ = std::make_unique<GarbageCollector>(gc, scheduler_.get(), store_.get(), action_cache_.get(),
                                           blob_store_.get());
  admin_service_->SetGarbageCollector([gc = gc_.get()](bool dry_run) { return gc->Run(dry_run); });
  targets_ = std::make_unique<factory::TargetStore>(store_.get());
  admin_service_->SetFactoryTargets(targets_.get());
  metrics_.AddCollectors(
      {common::FarmVersion(), started_ms, scheduler_.get(), store_.get(), blob_store_.get()});
  return absl::OkStatus();
}

absl::Status Coordinator::InitSecrets() {
  std::optional<SecretKeyring> keyring;
  std::vector<std::string> warnings;
  if (!options_.secrets_key_file.empty()) {
    FARM_ASSIGN_OR_RETURN(keyring, SecretKeyring::Load(options_.secrets_key_file,
                                                       options_.secrets_old_key_files, &warnings));
    FARM_LOG(INFO) << "secrets are encrypted with key " << keyring->current_id() << " ("
                   << options_.secrets_key_file << ")";
  }
  secrets_ =
      std::make_unique<SecretRegistry>(store_.get(), common::RealClock(), std::move(keyring));
  FARM_RETURN_IF_ERROR(secrets_->Load(&warnings));
  for (const std::string& w : warnings) FARM_LOG(WARNING) << w;
  return absl::OkStatus();
}

absl::Status Coordinator::Start() {
  // The certificates first: a bad file stops the start before anything runs.
  FARM_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials, Credentials());
  // The factory report's sources; provenance is signed with the TLS key (issue 14).
  char host[256] = {0};
  if (::gethostname(host, sizeof(host) - 1) != 0) host[0] = 0;
  job_service_->SetFactorySources(
      {targets_.get(),
       {&scheduler_->reads(), blob_store_.get(), store_.get(),
        [gc = gc_.get()](bool dry_run) { return gc->Run(dry_run); }},
       tls_ != nullptr ? tls_->material() : nullptr,
       absl::StrCat("farm://coordinator/", host[0] != 0 ? host : "localhost")});
  scheduler_->Start();
  blob_store_->StartMaintenance();
  gc_->Start();
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options_.listen, credentials, &port);
  SetServerLimits(options_, &builder);
  std::vector<std::shared_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors =
      options_.server_interceptors;
  if (!options_.http_listen.empty()) {
    // Calls are counted only when someone can read the counts.
    std::vector<std::string> methods;
    for (const AuthzEntry& e : AuthzTable()) {
      if (absl::StartsWith(e.method, "/")) methods.emplace_back(e.method);
    }
    interceptors.push_back(MakeCallMetrics(metrics_.registry(), methods));
  }
  if (!interceptors.empty()) {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
    for (const auto& factory : interceptors) {
      creators.push_back(std::make_unique<SharedInterceptorFactory>(factory));
    }
    builder.experimental().SetInterceptorCreators(std::move(creators));
  }
  builder.RegisterService(job_service_.get());
  builder.RegisterService(agent_service_.get());
  builder.RegisterService(admin_service_.get());
  reapi_services_->Register(builder);
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options_.listen, " (address in use or not local?)"));
  }
  address_ = absl::StrCat(options_.listen.substr(0, options_.listen.rfind(':')), ":", port);
  server_->GetHealthCheckService()->SetServingStatus(true);
  FARM_LOG(INFO) << "farm-coordinator serving on " << address_ << " (data in " << options_.data_dir
                 << ")";
  if (!options_.http_listen.empty()) {
    FARM_ASSIGN_OR_RETURN(
        http_, HttpPort::Start({options_.http_listen, tls_ != nullptr ? tls_->material() : nullptr,
                                tokens_.get(), &metrics_.registry(),
                                WebApp::Sources{scheduler_.get(), store_.get(), blob_store_.get(),
                                                event_reader_.get(), targets_.get(), nullptr}}));
    FARM_LOG(INFO) << "HTTP (the web dashboard, /metrics, /healthz) on " << http_->address()
                   << (tls_ != nullptr ? " with TLS" : " (plain HTTP: --insecure)");
  }
  if (!options_.port_file.empty()) {
    FARM_RETURN_IF_ERROR(common::WriteFileAtomically(options_.port_file, address_ + "\n"));
  }
  if (!options_.http_port_file.empty() && http_ != nullptr) {
    FARM_RETURN_IF_ERROR(
        common::WriteFileAtomically(options_.http_port_file, http_->address() + "\n"));
  }
  return absl::OkStatus();
}

std::vector<std::string> Coordinator::ServedServices() {
  std::vector<std::string> names = {
      farm::v1::JobService::service_full_name(), farm::v1::AgentService::service_full_name(),
      farm::v1::AdminService::service_full_name(), "grpc.health.v1.Health"};
  for (std::string& name : ReapiServices::Names()) names.push_back(std::move(name));
  return names;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Coordinator::Credentials() {
  if (options_.insecure) {
    FARM_LOG(WARNING) << "--insecure: plaintext and no authentication (every caller is admin); "
                         "for development on loopback only";
    return grpc::InsecureServerCredentials();
  }
  FARM_ASSIGN_OR_RETURN(tls_, ServerTls::Create({options_.tls_cert_file, options_.tls_key_file,
                                                 options_.tls_client_ca_file}));
  std::shared_ptr<grpc::ServerCredentials> credentials = tls_->credentials();
  credentials->SetAuthMetadataProcessor(authenticator_);
  return credentials;
}

absl::Status Coordinator::ReloadTls(const std::string& cert_file, const std::string& key_file,
                                    const std::string& client_ca_file) {
  if (tls_ == nullptr) {
    return absl::FailedPreconditionError("the coordinator serves without TLS (--insecure)");
  }
  return tls_->Reload({cert_file, key_file, client_ca_file});
}

void Coordinator::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  if (http_ != nullptr) http_->Stop();
  if (server_ != nullptr) {
    server_->GetHealthCheckService()->SetServingStatus(false);
    // Parked calls and log followers would hold the shutdown until its deadline: answer them
    // now (clients reconnect to the next coordinator process).
    scheduler_->StopParking();
    hub_.Shutdown();
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    server_->Wait();
  }
  if (gc_ != nullptr) gc_->Stop();  // a run under way finishes first
  if (scheduler_ != nullptr) scheduler_->Stop();
  server_.reset();
  // Every call has finished: reads still queued run, then the pool stops.
  read_pool_.reset();
  // Every call has finished: the REAPI pool drains, then the CAS stops its maintenance.
  reapi_services_.reset();
  gc_.reset();
  action_cache_.reset();
  backups_.reset();
  blob_store_.reset();
  scheduler_.reset();
  store_.reset();
  FARM_LOG(INFO) << "farm-coordinator stopped";
}

}  // namespace farm::coordinator
