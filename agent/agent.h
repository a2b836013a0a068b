// The farm agent: registers with the coordinator, leases jobs on N slots, runs them, keeps
// their leases alive with heartbeats, and drains on request.
//
// Lifecycle (one owner, Kudu style): Init() → Start() → [Drain() → WaitUntilDrained()] →
// Shutdown(). Threads: one per slot (a slot runs its leased job on its own thread, which the
// step processes' parent-death signal is tied to), one heartbeat thread and one fence thread.
// Registration is retried with backoff in the background; when any call says the agent is "not
// registered" (the coordinator restarted), the agent registers again and carries on. When the
// coordinator refuses the agent's identity (its token revoked, a name that is not its own,
// labels its enrollment does not allow) or another process registered under its name, the
// agent stops for good (error() says why) instead of retrying.
//
// Fault tolerance:
// - Every step's process group is guarded by a StepSupervisor process, so no step process
//   outlives the agent, however it dies. Should the supervisor itself die, the agent stops
//   (cancels its jobs, drains, error() says why) rather than run unguarded steps.
// - Self-fencing: a lease is renewed by each heartbeat that lists it and comes back valid, as
//   of the moment that heartbeat was *sent* (the coordinator renews it on arrival, later). A
//   lease not renewed for a lease TTL has been given up by the coordinator (which may have
//   handed the job to another agent), so the fence thread abandons its attempt and kills its
//   step at that moment, even when the agent cannot reach the coordinator at all, and even
//   right after the whole agent was frozen (SIGSTOP) for longer than the TTL. Time is the
//   injected clock's (common::Clock): when a FakeClock jumps past a deadline, the lease is
//   fenced before AdvanceMs() returns, so that tests drive fencing without waiting.
//
// Thread-safe: Drain(), CancelRunningJobs() and the accessors may be called from any thread
// (the signal-handling thread) once Start() has returned.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "agent/agent_metrics.h"
#include "agent/attempt_runner.h"
#include "agent/blob_cache.h"
#include "agent/coordinator_client.h"
#include "agent/options.h"
#include "agent/step_supervisor.h"
#include "common/cas_client.h"
#include "common/clock.h"
#include "common/http_server.h"
#include "common/metrics.h"

namespace farm::agent {

class Agent {
 public:
  // `supervisor` guards the steps' process groups; main() starts it before any thread exists
  // (see step_supervisor.h). When null, Init() starts one. `clock` (not owned, outlives the
  // agent) times leases, heartbeats, drains and jobs.
  explicit Agent(AgentOptions options, std::unique_ptr<StepSupervisor> supervisor = nullptr,
                 common::Clock* clock = common::RealClock());
  ~Agent();  // Shutdown()
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Fills defaults (name, os/arch labels), validates the options (INVALID_ARGUMENT naming the
  // flag), creates --work_dir (INTERNAL when it cannot), finds the agent's credential (the
  // credential file in the work dir, or an enrollment: agent/enrollment.h, whose errors it
  // returns), creates the coordinator channel, and starts the step supervisor unless one was
  // given (INTERNAL when it cannot).
  absl::Status Init();

  // Starts the heartbeat and slot threads and returns at once; registration happens in the
  // background, retried until it works or the agent drains.
  absl::Status Start();

  // Stop taking work: parked Lease calls are cancelled, heartbeats say draining=true, running
  // jobs go on. Idempotent.
  void Drain();

  // Cancels every running job; each completes as CANCELLED with `reason`.
  void CancelRunningJobs(const std::string& reason);

  // Blocks until Drain() has been called and no job runs any more. Jobs still running
  // --drain_timeout after Drain() are cancelled.
  void WaitUntilDrained();

  // Drains, cancels what still runs, joins every thread and tells the coordinator the agent
  // is leaving. Idempotent.
  void Shutdown();

  // The options completed by Init().
  const AgentOptions& options() const { return options_; }
  const std::string& session_id() const { return session_id_; }
  // How many times the agent registered so far (0: not yet).
  int64_t registrations() const;
  int running_jobs() const;
  // How many attempts self-fencing has abandoned so far (their lease went a TTL unrenewed).
  int64_t fenced_attempts() const;
  // OK unless the agent stopped itself: it can no longer run steps safely (its step supervisor
  // died: INTERNAL), the coordinator refused its identity (UNAUTHENTICATED or
  // PERMISSION_DENIED), or another agent registered under its name (FAILED_PRECONDITION); the
  // message says which, and main() exits non-zero.
  absl::Status error() const;
  // The step supervisor's process id (for tests and logs); 0 before Init().
  pid_t supervisor_pid() const;
  // The cache of job inputs (its counters, for tests and operators); null before Init().
  const BlobCache* blob_cache() const { return blob_cache_.get(); }
  // How steps are isolated (what Register reports); null before Init().
  const Isolation* isolation() const { return isolation_.get(); }

 private:
  enum class Waiter { kSlot, kJob };

  // Serves /metrics and /healthz on --http_listen (agent_metrics.cc); part of Start().
  absl::Status StartHttp();

  void SlotLoop(int slot);
  void HeartbeatLoop();
  // Sleeps until kMinHeartbeatSpacingMs have passed since `sent_ms` (or the agent stops).
  void SpaceHeartbeat(int64_t sent_ms);
  void FenceLoop();
  // Abandons the attempts whose lease has gone a TTL without renewal as of the clock's now.
  // Returns the earliest deadline of the others (MonotonicMs), or -1 when none has one.
  int64_t FenceStaleLeases() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Stops the agent for good when the step supervisor has died (see error()).
  void CheckSupervisor();
  // Stops the agent for good (drains, cancels its jobs, error() says why) unless it is already.
  void StopWithError(absl::Status error, const std::string& cancel_reason);
  // Stops the agent when `status` says the coordinator will never take its calls: its identity
  // refused (UNAUTHENTICATED, PERMISSION_DENIED), or its session superseded by another process
  // that registered under its name (the two would take turns for ever). True when it did.
  bool StopIfRefused(const absl::Status& status);
  // Runs one leased job (with the values of its secrets); returns the slot's next lease when
  // it came with the completion.
  std::optional<farm::v1::LeaseResponse> RunLeasedJob(const farm::v1::LeaseResponse& leased,
                                                      int64_t generation);
  // Returns once a registration newer than `stale_generation` exists (registering if nobody
  // else is), storing its generation in `*generation`. False when `waiter` should give up:
  // slots give up on drain, jobs and the heartbeat when the agent stops or drained.
  bool EnsureRegistered(int64_t stale_generation, int64_t* generation, Waiter waiter);
  bool GiveUp(Waiter waiter) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Wakes the parked heartbeat so that the next one carries the current leases and state.
  void KickHeartbeat() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Applies a heartbeat's answer: cancels, abandons, and renews (as of `sent_ms`) the leases
  // it says are valid.
  void HandleLeaseStatuses(const farm::v1::HeartbeatResponse& response, int64_t sent_ms);
  // Sets up isolation_ (part of Init()) and makes the work dir private to the agent.
  absl::Status InitIsolation();

  // A running attempt, owned by the slot thread running it.
  struct Running {
    AttemptRunner* runner = nullptr;
    // Monotonic ms as of which the coordinator is known to have renewed the lease: when the
    // lease arrived, then the send time of each heartbeat that listed it and came back valid.
    int64_t renewed_ms = 0;
    bool fenced = false;  // the fence thread abandoned it
  };

  AgentOptions options_;
  // First: the attempts update its metrics, the HTTP port reads them, until both are gone.
  common::metrics::Registry metrics_;
  AttemptMetrics attempt_metrics_ = AddAttemptMetrics(metrics_);
  common::metrics::Histogram* const heartbeat_rtt_ = AddHeartbeatRtt(metrics_);
  std::string session_id_;
  std::string log_prefix_;  // "[agent=NAME]" for operator log lines
  common::Clock* const clock_;
  std::unique_ptr<CoordinatorClient> client_;
  std::unique_ptr<common::CasClient> cas_;
  std::unique_ptr<BlobCache> blob_cache_;  // of job inputs, fetched through cas_
  std::unique_ptr<StepSupervisor> supervisor_;
  std::unique_ptr<Isolation> isolation_;  // of the steps; set up by Init()
  AttemptContext attempt_context_;
  CallCanceller lease_canceller_;  // fired by Drain(): ends parked Lease calls
  CallCanceller stop_canceller_;   // fired by Shutdown(): ends registration attempts

  mutable absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  int64_t drain_started_ms_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::string cancel_all_reason_ ABSL_GUARDED_BY(mu_);  // non-empty once jobs were cancelled
  int64_t generation_ ABSL_GUARDED_BY(mu_) = 0;         // registrations so far
  bool registering_ ABSL_GUARDED_BY(mu_) = false;
  int64_t lease_ttl_ms_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t heartbeat_interval_ms_ ABSL_GUARDED_BY(mu_) = 0;
  // The coordinator takes the last step's result with CompleteJob (RegisterResponse.features).
  bool complete_with_last_step_ ABSL_GUARDED_BY(mu_) = false;
  // It answers CompleteJob with the slot's next lease on request ("complete_job.next_lease").
  bool complete_with_next_lease_ ABSL_GUARDED_BY(mu_) = false;
  int active_slots_ ABSL_GUARDED_BY(mu_) = 0;
  // Running attempts by "job_id/attempt".
  absl::flat_hash_map<std::string, Running> running_ ABSL_GUARDED_BY(mu_);
  // Bumped when an attempt starts, the lease TTL changes or the clock jumps: wakes the fence
  // thread.
  int64_t fence_changes_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t fenced_attempts_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  CallCanceller* heartbeat_call_ ABSL_GUARDED_BY(mu_) = nullptr;  // the parked heartbeat

  std::vector<std::thread> slot_threads_;
  std::thread heartbeat_thread_;
  std::thread fence_thread_;
  // Last: it ends first, before anything its callback touches.
  common::Clock::Subscription clock_jumps_;
  std::unique_ptr<common::HttpServer> http_;  // null without --http_listen
};

}  // namespace farm::agent
