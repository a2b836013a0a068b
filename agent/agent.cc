#include "agent/agent.h"

#include <algorithm>
#include <filesystem>
#include <random>
#include <system_error>

#include "absl/algorithm/container.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "agent/enrollment.h"
#include "common/backoff.h"
#include "common/channel.h"
#include "common/duration.h"
#include "common/features.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/status_macros.h"

extern char** environ;

namespace farm::agent {
namespace {

std::string RandomHex(int bytes) {
  std::random_device rd;
  std::string out;
  for (int i = 0; i < bytes; ++i) absl::StrAppendFormat(&out, "%02x", rd() & 0xff);
  return out;
}

// Used when the coordinator sends no (or a nonsensical) heartbeat interval.
constexpr int64_t kDefaultHeartbeatIntervalMs = 5'000;
// Heartbeats are never sent more often than this, even when the coordinator answers at once
// (it does for as long as a cancelled job's step is being killed).
constexpr int64_t kMinHeartbeatSpacingMs = 100;

}  // namespace

Agent::Agent(AgentOptions options, std::unique_ptr<StepSupervisor> supervisor, common::Clock* clock)
    : options_(std::move(options)), clock_(clock), supervisor_(std::move(supervisor)) {
  clock_jumps_ = clock_->OnJump([this] {
    absl::MutexLock lock(&mu_);
    FenceStaleLeases();
    ++fence_changes_;  // the fence thread plans its wait again
  });
}

Agent::~Agent() { Shutdown(); }

absl::Status Agent::Init() {
  options_ = WithDefaults(std::move(options_));
  if (absl::Status s = options_.Validate(); !s.ok()) return s;
  std::error_code ec;
  std::filesystem::create_directories(options_.work_dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("--work_dir: cannot create ", options_.work_dir, ": ", ec.message()));
  }
  options_.work_dir = std::filesystem::absolute(options_.work_dir, ec).lexically_normal();
  if (ec) {
    return absl::InternalError(absl::StrCat("--work_dir: ", ec.message()));
  }
  session_id_ = RandomHex(16);
  // Without a credential from the flags: the one in the work dir, or one enrolled for now.
  if (absl::StatusOr<std::shared_ptr<grpc::Channel>> bare =
          common::MakeChannel(options_.coordinator, options_.security);
      bare.ok()) {
    CoordinatorClient enroller(*bare);
    if (absl::Status s = ResolveCredential(&options_, &enroller, session_id_, &stop_canceller_);
        !s.ok()) {
      return s;
    }
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      common::MakeChannel(options_.coordinator, options_.security);
  if (!channel.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--coordinator: ", channel.status().message()));
  }
  client_ = std::make_unique<CoordinatorClient>(*channel);
  // The coordinator serves the CAS too. Its calls wait for a restarting coordinator (within
  // their deadlines) rather than failing an attempt's upload at once.
  common::CasClientOptions cas_options;
  cas_options.wait_for_ready = true;
  cas_ = std::make_unique<common::CasClient>(*channel, cas_options);
  log_prefix_ = absl::StrCat("[agent=", options_.name, "]");
  if (supervisor_ == nullptr) {
    absl::StatusOr<std::unique_ptr<StepSupervisor>> supervisor = StepSupervisor::Start();
    if (!supervisor.ok()) return supervisor.status();
    supervisor_ = *std::move(supervisor);
  }

  absl::StatusOr<std::unique_ptr<BlobCache>> blob_cache = BlobCache::Open(
      {absl::StrCat(options_.work_dir, "/cache/blobs"), options_.cache_max_bytes}, cas_.get());
  if (!blob_cache.ok()) {
    return absl::InternalError(absl::StrCat("--work_dir: ", blob_cache.status().message()));
  }
  blob_cache_ = *std::move(blob_cache);

  // Log output spilled by attempts of an earlier run of this agent (killed before it could
  // remove it) is of no use to anyone now: those attempts are over.
  const std::string spill_dir = absl::StrCat(options_.work_dir, "/", kLogSpillDirName);
  if (std::filesystem::exists(spill_dir, ec)) {
    for (const auto& entry : std::filesystem::directory_iterator(spill_dir, ec)) {
      std::filesystem::remove_all(entry.path(), ec);
    }
  }

  attempt_context_.client = client_.get();
  attempt_context_.cas = cas_.get();
  attempt_context_.blob_cache = blob_cache_.get();
  attempt_context_.supervisor = supervisor_.get();
  attempt_context_.agent_name = options_.name;
  attempt_context_.session_id = session_id_;
  attempt_context_.work_dir = options_.work_dir;
  attempt_context_.keep_failed = options_.keep_failed;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    // The agent's own token (FARM_TOKEN) is no business of the steps.
    if (absl::StartsWith(*e, "FARM_TOKEN=")) continue;
    attempt_context_.base_env.emplace_back(*e);
  }
  if (absl::Status s = InitIsolation(); !s.ok()) return s;
  attempt_context_.clock = clock_;
  attempt_context_.metrics = &attempt_metrics_;
  return absl::OkStatus();
}

absl::Status Agent::Start() {
  if (client_ == nullptr) return absl::FailedPreconditionError("Agent::Init() was not called");
  {
    absl::MutexLock lock(&mu_);
    if (started_) return absl::FailedPreconditionError("Agent::Start() called twice");
    started_ = true;
    active_slots_ = options_.slots;
  }
  std::vector<std::string> labels;
  for (const auto& [key, value] : options_.labels) labels.push_back(absl::StrCat(key, "=", value));
  FARM_LOG(INFO) << log_prefix_ << " starting: coordinator " << options_.coordinator << ", "
                 << options_.slots << " slots, labels " << absl::StrJoin(labels, ",")
                 << ", work dir " << options_.work_dir << ", session " << session_id_;
  heartbeat_thread_ = std::thread([this] { HeartbeatLoop(); });
  fence_thread_ = std::thread([this] { FenceLoop(); });
  for (int i = 0; i < options_.slots; ++i) {
    slot_threads_.emplace_back([this, i] { SlotLoop(i); });
  }
  return options_.http_listen.empty() ? absl::OkStatus() : StartHttp();
}

int64_t Agent::registrations() const {
  absl::MutexLock lock(&mu_);
  return generation_;
}

int Agent::running_jobs() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(running_.size());
}

int64_t Agent::fenced_attempts() const {
  absl::MutexLock lock(&mu_);
  return fenced_attempts_;
}

absl::Status Agent::error() const {
  absl::MutexLock lock(&mu_);
  return error_;
}

pid_t Agent::supervisor_pid() const { return supervisor_ == nullptr ? 0 : supervisor_->pid(); }

bool Agent::GiveUp(Waiter waiter) const {
  if (stopping_ || !error_.ok()) return true;
  if (waiter == Waiter::kSlot) return draining_;
  return draining_ && running_.empty();
}

void Agent::KickHeartbeat() {
  if (heartbeat_call_ != nullptr) heartbeat_call_->Cancel();
}

bool Agent::EnsureRegistered(int64_t stale_generation, int64_t* generation, Waiter waiter) {
  {
    absl::MutexLock lock(&mu_);
    auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return generation_ > stale_generation || !registering_ || GiveUp(waiter);
    };
    mu_.Await(absl::Condition(&ready));
    if (generation_ > stale_generation) {
      *generation = generation_;
      return true;
    }
    if (GiveUp(waiter)) return false;
    registering_ = true;  // this thread registers; the others wait for it
  }

  farm::v1::RegisterRequest request;
  request.set_name(options_.name);
  request.mutable_labels()->insert(options_.labels.begin(), options_.labels.end());
  request.set_slots(options_.slots);
  request.set_session_id(session_id_);
  request.set_version(options_.version);
  request.mutable_isolation()->set_kill(isolation_->kill_mechanism());
  request.mutable_isolation()->set_run_as(isolation_->user().name);
  request.mutable_isolation()->set_sandbox(isolation_->sandbox_name());
  common::Backoff backoff;
  for (int failures = 0;; ++failures) {
    absl::StatusOr<farm::v1::RegisterResponse> response =
        client_->Register(request, &stop_canceller_);
    const bool refused = !response.ok() && StopIfRefused(response.status());
    absl::MutexLock lock(&mu_);
    if (refused) {
      registering_ = false;
      return false;
    }
    if (response.ok()) {
      registering_ = false;
      ++generation_;
      *generation = generation_;
      lease_ttl_ms_ = response->lease_ttl_ms();
      ++fence_changes_;
      complete_with_last_step_ =
          absl::c_linear_search(response->features(), common::kFeatureCompleteJobLastStep);
      complete_with_next_lease_ =
          absl::c_linear_search(response->features(), common::kFeatureCompleteJobNextLease);
      heartbeat_interval_ms_ = response->heartbeat_interval_ms() > 0
                                   ? response->heartbeat_interval_ms()
                                   : kDefaultHeartbeatIntervalMs;
      FARM_LOG(INFO) << log_prefix_ << " registered with " << options_.coordinator << " (lease TTL "
                     << common::FormatDurationMs(lease_ttl_ms_) << ", heartbeat every "
                     << common::FormatDurationMs(heartbeat_interval_ms_) << ")";
      return true;
    }
    if (failures % 10 == 0 && !stop_canceller_.cancelled()) {
      FARM_LOG(WARNING) << log_prefix_ << " registering with " << options_.coordinator
                        << " failed, retrying: " << response.status();
    }
    auto give_up = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return GiveUp(waiter); };
    if (mu_.AwaitWithTimeout(absl::Condition(&give_up),
                             absl::Milliseconds(backoff.NextDelayMs()))) {
      registering_ = false;
      return false;
    }
  }
}

void Agent::SlotLoop(int slot) {
  common::Backoff backoff;
  int64_t generation = 0;
  int64_t stale = 0;  // 0: any registration will do
  int failures = 0;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (draining_ || stopping_) break;
    }
    if (!EnsureRegistered(stale, &generation, Waiter::kSlot)) break;
    stale = 0;
    farm::v1::LeaseRequest request;
    request.set_agent(options_.name);
    request.set_session_id(session_id_);
    request.set_wait_ms(options_.lease_wait_ms);
    absl::StatusOr<farm::v1::LeaseResponse> response = client_->Lease(request, &lease_canceller_);
    if (response.ok()) {
      failures = 0;
      backoff.Reset();
      // A job that arrives after Drain() cancelled the call is still run: it is ours now. So is
      // one that came with a completion.
      std::optional<farm::v1::LeaseResponse> next;
      if (response->has_job()) next = RunLeasedJob(*response, generation);
      while (next.has_value()) next = RunLeasedJob(*next, generation);
      continue;
    }
    const absl::Status& status = response.status();
    if (status.code() == absl::StatusCode::kCancelled && lease_canceller_.cancelled()) break;
    if (StopIfRefused(status)) break;
    if (IsNotRegistered(status)) {
      stale = generation;
      continue;
    }
    if (failures++ % 10 == 0) {
      FARM_LOG(WARNING) << log_prefix_ << " slot " << slot
                        << ": Lease failed, retrying: " << status;
    }
    if (lease_canceller_.SleepFor(backoff.NextDelayMs())) break;
  }
  absl::MutexLock lock(&mu_);
  --active_slots_;
}

std::optional<farm::v1::LeaseResponse> Agent::RunLeasedJob(const farm::v1::LeaseResponse& leased,
                                                           int64_t generation) {
  const farm::v1::LeaseRef& lease = leased.lease();
  // The attempt's own view of the registration generation, so that repeated "not
  // registered" answers each force a newer registration instead of spinning.
  auto seen = std::make_shared<std::atomic<int64_t>>(generation);
  AttemptContext context = attempt_context_;
  {
    absl::MutexLock lock(&mu_);
    context.complete_with_last_step = complete_with_last_step_;
  }
  context.lease_next = [this]() {
    absl::MutexLock lock(&mu_);
    return complete_with_next_lease_ && !draining_ && !stopping_;
  };
  context.reregister = [this, seen]() {
    int64_t g = 0;
    const bool ok = EnsureRegistered(seen->load(), &g, Waiter::kJob);
    if (ok) seen->store(g);
    return ok;
  };
  AttemptRunner runner(context, lease, leased.job(), leased.secrets());
  const std::string key = absl::StrCat(lease.job_id(), "/", lease.attempt());
  {
    absl::MutexLock lock(&mu_);
    // The coordinator granted the lease before we heard of it, so this is a little late; the
    // next heartbeat (within a third of the TTL: see HeartbeatLoop) lists the lease and renews
    // it as of a moment that is not. No heartbeat is kicked for a new lease: a cancel of it
    // answers the agent's parked heartbeat anyway (the coordinator wakes it by agent), and the
    // next one, listing the job, hears of the cancel at once. Kicking cost a cancelled call and
    // a new one for every short job.
    running_[key] = Running{&runner, clock_->MonotonicMs(), false};
    ++fence_changes_;
    if (!cancel_all_reason_.empty()) runner.Cancel(cancel_all_reason_);
  }
  runner.Run();
  absl::MutexLock lock(&mu_);
  running_.erase(key);
  return runner.TakeNextLease();
}

void Agent::HandleLeaseStatuses(const farm::v1::HeartbeatResponse& response, int64_t sent_ms) {
  absl::MutexLock lock(&mu_);
  for (const farm::v1::LeaseStatus& status : response.leases()) {
    auto it = running_.find(absl::StrCat(status.lease().job_id(), "/", status.lease().attempt()));
    if (it == running_.end() || it->second.runner->lease().epoch() != status.lease().epoch()) {
      continue;
    }
    Running& running = it->second;
    if (!status.valid()) {
      running.runner->LeaseInvalid("the coordinator says the lease is no longer valid");
      continue;
    }
    // Valid when answered, so it was valid, and renewed, when the heartbeat arrived, which was
    // after we sent it.
    running.renewed_ms = std::max(running.renewed_ms, sent_ms);
    if (status.cancel()) running.runner->Cancel("cancelled");
  }
}

int64_t Agent::FenceStaleLeases() {
  if (lease_ttl_ms_ <= 0) return -1;
  const int64_t now = clock_->MonotonicMs();
  int64_t next = -1;
  for (auto& [key, running] : running_) {
    if (running.fenced) continue;
    const int64_t deadline = running.renewed_ms + lease_ttl_ms_;
    if (now >= deadline) {
      running.fenced = true;
      ++fenced_attempts_;
      running.runner->Abandon(absl::StrCat("no heartbeat acknowledged for ",
                                           common::FormatDurationMs(now - running.renewed_ms),
                                           " (lease TTL ", common::FormatDurationMs(lease_ttl_ms_),
                                           "): the coordinator has given the lease up"));
    } else if (next < 0 || deadline < next) {
      next = deadline;
    }
  }
  return next;
}

void Agent::FenceLoop() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    const int64_t next = FenceStaleLeases();
    const int64_t seen = fence_changes_;
    auto wake = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stopping_ || fence_changes_ != seen;
    };
    if (next < 0) {
      mu_.Await(absl::Condition(&wake));
    } else {
      // A timed wait on a frozen process (SIGSTOP) ends right after it thaws, and the deadline
      // is checked before anything else this thread does.
      mu_.AwaitWithTimeout(absl::Condition(&wake),
                           absl::Milliseconds(next - clock_->MonotonicMs()));
    }
  }
}

void Agent::StopWithError(absl::Status error, const std::string& cancel_reason) {
  {
    absl::MutexLock lock(&mu_);
    if (!error_.ok()) return;
    error_ = error;
  }
  FARM_LOG(ERROR) << log_prefix_ << " " << error.message();
  Drain();
  CancelRunningJobs(cancel_reason);
}

void Agent::CheckSupervisor() {
  if (supervisor_->Alive()) return;
  StopWithError(absl::InternalError(
                    absl::StrCat("the step supervisor (pid ", supervisor_->pid(),
                                 ") has exited, so steps could outlive this agent; stopping")),
                "agent stopping: its step supervisor died");
}

bool Agent::StopIfRefused(const absl::Status& status) {
  if (common::ReasonOf(status) == common::kReasonAgentSessionSuperseded) {
    StopWithError(
        absl::FailedPreconditionError(absl::StrCat(
            "another farm-agent registered as ", options_.name, " and took this one's place (",
            status.message(), "); this one stops: run one agent per --name")),
        "agent stopping: another agent took its name");
    return true;
  }
  if (!absl::IsUnauthenticated(status) && !absl::IsPermissionDenied(status)) return false;
  StopWithError(absl::Status(status.code(),
                             absl::StrCat("the coordinator refused this agent's identity: ",
                                          status.message(), "; check --token_file, --tls_cert or ",
                                          CredentialPath(options_.work_dir),
                                          " (re-enroll with a new enrollment token)")),
                "agent stopping: the coordinator refused its identity");
  return true;
}

void Agent::SpaceHeartbeat(int64_t sent_ms) {
  const int64_t spent = clock_->MonotonicMs() - sent_ms;
  if (spent < kMinHeartbeatSpacingMs) stop_canceller_.SleepFor(kMinHeartbeatSpacingMs - spent);
}

void Agent::HeartbeatLoop() {
  common::Backoff backoff;
  int64_t generation = 0;
  int64_t stale = 0;
  int failures = 0;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) break;
    }
    CheckSupervisor();
    if (!EnsureRegistered(stale, &generation, Waiter::kJob)) {
      // Drained with nothing running, or stopped for an error: wait for Shutdown().
      absl::MutexLock lock(&mu_);
      auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || (!running_.empty() && error_.ok());
      };
      mu_.Await(absl::Condition(&wake));
      continue;
    }
    stale = 0;

    farm::v1::HeartbeatRequest request;
    request.set_agent(options_.name);
    request.set_session_id(session_id_);
    CallCanceller call;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) break;
      for (const auto& [key, running] : running_) {
        if (!running.runner->abandoned()) *request.add_leases() = running.runner->lease();
      }
      request.set_draining(draining_);
      // A parked heartbeat renews nothing until the next one: park for at most a third of the
      // TTL, whatever the coordinator suggests, or the fence thread would give leases up.
      int64_t wait_ms = heartbeat_interval_ms_;
      if (lease_ttl_ms_ > 0) wait_ms = std::min(wait_ms, std::max<int64_t>(lease_ttl_ms_ / 3, 1));
      request.set_wait_ms(wait_ms);
      heartbeat_call_ = &call;
    }
    const int64_t sent_ms = clock_->MonotonicMs();
    const absl::Time sent = absl::Now();
    absl::StatusOr<farm::v1::HeartbeatResponse> response = client_->Heartbeat(request, &call);
    {
      absl::MutexLock lock(&mu_);
      heartbeat_call_ = nullptr;
    }
    if (response.ok()) {
      failures = 0;
      ObserveHeartbeatRtt(heartbeat_rtt_, absl::Now() - sent, *response);
      backoff.Reset();
      HandleLeaseStatuses(*response, sent_ms);
      SpaceHeartbeat(sent_ms);
      continue;
    }
    const absl::Status& status = response.status();
    if (status.code() == absl::StatusCode::kCancelled && call.cancelled()) {
      // KickHeartbeat(): send the new state now, but no more often than the spacing allows:
      // every leased job kicks, and under a stream of short jobs one heartbeat per job would
      // cost more than the jobs. A cancel of a job not listed yet still arrives within the
      // spacing: the next heartbeat lists the job, and the coordinator answers it at once.
      SpaceHeartbeat(sent_ms);
      continue;
    }
    if (IsNotRegistered(status)) {
      FARM_LOG(INFO) << log_prefix_ << " the coordinator does not know this agent (it restarted?); "
                     << "registering again";
      stale = generation;
      continue;
    }
    if (StopIfRefused(status)) break;  // for good: no more heartbeats
    if (failures++ % 10 == 0) {
      FARM_LOG(WARNING) << log_prefix_ << " Heartbeat failed, retrying: " << status;
    }
    // Leases that go unrenewed for a TTL meanwhile are fenced by FenceLoop().
    stop_canceller_.SleepFor(backoff.NextDelayMs());
  }
}

void Agent::Drain() {
  int running;
  {
    absl::MutexLock lock(&mu_);
    if (draining_) return;
    draining_ = true;
    drain_started_ms_ = clock_->MonotonicMs();
    running = static_cast<int>(running_.size());
    KickHeartbeat();
  }
  FARM_LOG(INFO) << log_prefix_ << " draining: no new jobs; " << running
                 << " running job(s) may take up to "
                 << common::FormatDurationMs(options_.drain_timeout_ms);
  lease_canceller_.Cancel();
}

void Agent::CancelRunningJobs(const std::string& reason) {
  absl::MutexLock lock(&mu_);
  if (cancel_all_reason_.empty()) cancel_all_reason_ = reason;
  for (const auto& [key, running] : running_) running.runner->Cancel(reason);
}

void Agent::WaitUntilDrained() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(&draining_));
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return active_slots_ == 0 && running_.empty();
  };
  const absl::Time deadline =
      absl::Now() +
      absl::Milliseconds(drain_started_ms_ + options_.drain_timeout_ms - clock_->MonotonicMs());
  if (!mu_.AwaitWithDeadline(absl::Condition(&idle), deadline)) {
    const std::string reason =
        absl::StrCat("agent shutting down: drain timeout of ",
                     common::FormatDurationMs(options_.drain_timeout_ms), " expired");
    FARM_LOG(WARNING) << log_prefix_ << " " << reason << "; cancelling " << running_.size()
                      << " job(s)";
    if (cancel_all_reason_.empty()) cancel_all_reason_ = reason;
    for (const auto& [key, running] : running_) running.runner->Cancel(reason);
    mu_.Await(absl::Condition(&idle));
  }
}

void Agent::Shutdown() {
  bool started;
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    shut_down_ = true;
    started = started_;
  }
  if (!started) return;
  Drain();
  CancelRunningJobs("agent shutting down");
  for (std::thread& t : slot_threads_) t.join();
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    KickHeartbeat();
  }
  stop_canceller_.Cancel();
  heartbeat_thread_.join();
  fence_thread_.join();

  bool registered;
  {
    absl::MutexLock lock(&mu_);
    registered = generation_ > 0;
  }
  if (registered) {
    // Best effort: tell the coordinator at once that this agent is going away.
    farm::v1::HeartbeatRequest request;
    request.set_agent(options_.name);
    request.set_session_id(session_id_);
    request.set_draining(true);
    request.set_wait_ms(0);
    absl::StatusOr<farm::v1::HeartbeatResponse> ignored =
        client_->Heartbeat(request, nullptr, /*fail_fast=*/true);
  }
  if (http_ != nullptr) http_->Stop();
  FARM_LOG(INFO) << log_prefix_ << " stopped";
}

}  // namespace farm::agent
