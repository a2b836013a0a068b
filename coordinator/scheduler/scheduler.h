// The coordinator's domain core: the durable job queue, leases with fencing epochs, agents, and
// parked long-polls. Every operation is a command on the Engine thread (see engine.h), so the
// state below has one owner and no locks, and every reply follows the durable write of what it
// reports. gRPC never appears here: services call these methods with plain messages and get
// their answers through callbacks, which run on the engine thread (or at once, with
// UNAVAILABLE, when the scheduler is stopping).
//
// Memory grows with active work, not with the backlog: a queued job is only a key in the
// queue family; per label set the scheduler keeps a small window of the next keys in dispatch
// order and refills it from the store when it runs dry.
//
// Error codes: NOT_FOUND (unknown job, unregistered agent), INVALID_ARGUMENT (bad spec or
// request), FAILED_PRECONDITION (stale lease epoch, superseded agent session, a job already
// finished), OUT_OF_RANGE (a gap in uploaded output), and the store's RESOURCE_EXHAUSTED /
// UNAVAILABLE when a write fails (nothing of the failed group is visible afterwards).
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/clock.h"
#include "coordinator/logs/log_hub.h"
#include "coordinator/scheduler/engine.h"
#include "coordinator/store/keys.h"
#include "coordinator/store/store.h"
#include "farm/v1/farm.pb.h"

namespace farm::coordinator {

struct SchedulerOptions {
  int64_t lease_ttl_ms = 30'000;
  // Requeues after an agent was lost, before the job fails with "agent_lost".
  int agent_loss_retries = 2;
  // Output kept per job; past it a truncation marker is stored and the rest dropped.
  int64_t max_log_bytes_per_job = int64_t{1} << 30;
  // Queue keys held in memory per label set.
  size_t queue_window = 256;
  // A submit's request id keeps deduplicating retries for at least this long.
  int64_t request_id_retention_ms = 24 * 3600'000;
  // Offline agents are forgotten after this long.
  int64_t forget_agent_after_ms = 3600'000;
};

class Scheduler {
 public:
  template <typename T>
  using Done = std::function<void(absl::StatusOr<T>)>;

  Scheduler(Store* store, common::Clock* clock, LogHub* hub, SchedulerOptions options,
            EngineOptions engine_options = {});
  ~Scheduler();

  // Loads counters, label sets and running jobs from the store. Before Start.
  absl::Status Init();
  void Start();
  // Answers every parked call with UNAVAILABLE and parks no more (so that the server can shut
  // down without waiting for them). Returns once done.
  void StopParking();
  // Finishes queued commands and their writes; later calls answer UNAVAILABLE.
  void Stop();

  const SchedulerOptions& options() const { return options_; }
  Store* store() const { return store_; }

  // --- users
  void Submit(farm::v1::JobSpec spec, std::string request_id,
              Done<farm::v1::SubmitJobResponse> done);
  void Cancel(std::string job_id, Done<farm::v1::Job> done);
  // Committed state, read directly from the store (any thread).
  absl::StatusOr<farm::v1::Job> GetJob(absl::string_view job_id) const;
  absl::StatusOr<farm::v1::ListJobsResponse> ListJobs(const farm::v1::ListJobsRequest& req) const;

  // --- pipelines (pipelines.cc)
  // Expands and checks the spec (common/pipeline.h), then creates the pipeline and all its
  // jobs in one write: jobs that need nothing are queued, the others wait.
  void SubmitPipeline(farm::v1::PipelineSpec spec, std::string request_id,
                      Done<farm::v1::SubmitPipelineResponse> done);
  // Cancels every job that has not ended; jobs waiting for others end CANCELLED, not SKIPPED.
  void CancelPipeline(std::string pipeline_id, Done<farm::v1::Pipeline> done);
  // Committed state with each job's state and the derived pipeline state (any thread).
  absl::StatusOr<farm::v1::Pipeline> GetPipeline(absl::string_view pipeline_id) const;
  absl::StatusOr<farm::v1::ListPipelinesResponse> ListPipelines(
      const farm::v1::ListPipelinesRequest& req) const;

  // --- agents
  void Register(farm::v1::RegisterRequest req, Done<farm::v1::RegisterResponse> done);
  // Answers at once with a lease when matching work exists, else parks until work arrives or
  // wait_ms passes (then an empty response). call_id identifies the parked call for CancelWait.
  void Lease(farm::v1::LeaseRequest req, int64_t wait_ms, uint64_t call_id,
             Done<farm::v1::LeaseResponse> done);
  // Renews the listed leases; answers at once when one is stale or newly cancelled, else
  // after wait_ms (or earlier, when a cancel for this agent arrives).
  void Heartbeat(farm::v1::HeartbeatRequest req, int64_t wait_ms, uint64_t call_id,
                 Done<farm::v1::HeartbeatResponse> done);
  // The parked Lease/Heartbeat call went away: answer it with CANCELLED.
  void CancelWait(uint64_t call_id);
  // Appends output; answers the step's committed length.
  void AppendLog(farm::v1::LogUploadChunk chunk, Done<int64_t> done);
  void StepStarted(farm::v1::StepStartedRequest req, Done<farm::v1::Ack> done);
  void StepFinished(farm::v1::StepFinishedRequest req, Done<farm::v1::Ack> done);
  void CompleteJob(farm::v1::CompleteJobRequest req, Done<farm::v1::Ack> done);

  // --- operators
  void ListAgents(Done<farm::v1::ListAgentsResponse> done);

  // Checks that a completion's artifacts are all in the content-addressed store and keeps them
  // there (pins them); NOT_FOUND naming what is missing. Runs on the engine thread, so it
  // must be quick. Set before Start; without it artifacts are recorded unchecked.
  using ArtifactCheck =
      std::function<absl::Status(const google::protobuf::RepeatedPtrField<farm::v1::Artifact>&)>;
  void SetArtifactCheck(ArtifactCheck check) { artifact_check_ = std::move(check); }

  // A process-unique id for a parked call.
  uint64_t NewCallId();

 private:
  struct LabelSet {
    std::map<std::string, std::string> labels;
    std::map<keys::QueueKey, uint64_t> window;  // the first keys in dispatch order → seq
    bool complete = false;                      // window holds every queued key of the set
    // Every key of the set that sorts below this one has been leased (deleted): refills scan
    // from here, not over the tombstones of a drained backlog. Empty: from the set's start.
    std::string scan_from;
  };
  struct ActiveLease {
    farm::v1::Job job;
    uint32_t attempt = 0;
    uint64_t epoch = 0;
    std::string agent;
    int64_t expires_ms = 0;  // monotonic
    bool cancel_delivered = false;
    std::vector<int64_t> log_len;  // committed output per step
    int64_t log_total = 0;
  };
  struct LeaseWaiter {
    uint64_t call_id;
    std::string agent;
    Done<farm::v1::LeaseResponse> done;
    Engine::TimerId timer;
    int64_t due_ms;  // monotonic; past it the client has stopped waiting for this answer
  };
  struct HeartbeatWaiter {
    farm::v1::HeartbeatRequest req;
    Done<farm::v1::HeartbeatResponse> done;
    Engine::TimerId timer;
  };
  // A concurrency group: the jobs holding its places (queued or running) and how many wait.
  struct Group {
    std::set<uint64_t> admitted;
    uint64_t waiting = 0;
  };
  struct Agent {
    std::map<std::string, std::string> labels;
    uint32_t slots = 1;
    std::string session_id;
    std::string version;
    int64_t last_seen_ms = 0;       // monotonic
    int64_t last_seen_wall_ms = 0;  // for display
    bool draining = false;
    std::set<uint64_t> jobs;
    uint64_t heartbeat_call = 0;  // parked heartbeat, 0 if none
  };

  // Posts cmd, or answers `fail` with UNAVAILABLE when stopping.
  bool PostOrFail(Engine::Command cmd, const std::function<void(absl::Status)>& fail);

  absl::Status Recover();
  void RecoverAfterFailedWrite();  // engine thread
  absl::StatusOr<std::optional<farm::v1::Job>> LoadJob(Txn& txn, uint64_t seq);
  void PutJob(Txn& txn, const farm::v1::Job& job);

  LabelSet& LabelSetFor(Txn& txn, const farm::v1::JobSpec& spec, uint64_t* id);
  keys::QueueKey QueueKeyFor(const farm::v1::Job& job, uint64_t labelset) const;
  absl::Status Enqueue(Txn& txn, farm::v1::Job& job);
  absl::Status RefillWindow(Txn& txn, uint64_t id, LabelSet& ls);
  // Removes and returns the best queued job this agent may run.
  absl::StatusOr<std::optional<uint64_t>> PopFor(Txn& txn, const Agent& agent);
  void RemoveFromQueue(Txn& txn, const farm::v1::Job& job);

  // QUEUED → RUNNING with a fresh epoch; the LeaseResponse to send after commit.
  farm::v1::LeaseResponse GrantLease(Txn& txn, farm::v1::Job job, const std::string& agent);
  // Hands queued work in `labelset` to parked agents while both exist.
  void DispatchToWaiters(Txn& txn, uint64_t labelset);
  void AnswerLeaseWaiter(Txn& txn, LeaseWaiter waiter, farm::v1::LeaseResponse resp);

  absl::StatusOr<ActiveLease*> CheckLease(const farm::v1::LeaseRef& ref);
  // The leased job and one step of its current attempt (INVALID_ARGUMENT for a bad index).
  absl::StatusOr<std::pair<farm::v1::Job*, farm::v1::StepResult*>> LeasedStep(
      const farm::v1::LeaseRef& ref, uint32_t step_index);
  // A finished step's result into the leased job's current attempt (memory only; the caller
  // writes the job). The job, or LeasedStep's errors, or INVALID_ARGUMENT for a state that is
  // not final.
  absl::StatusOr<farm::v1::Job*> RecordStepResult(const farm::v1::LeaseRef& lease,
                                                  uint32_t step_index,
                                                  const farm::v1::StepResult& result);
  // An agent's call: NOT_FOUND when it is not registered, FAILED_PRECONDITION when an agent of
  // the same name registered since with another session; else marks it seen.
  absl::StatusOr<Agent*> AgentCall(const std::string& name, const std::string& session_id);
  // Ends the current attempt; the job becomes final (or requeued when lost).
  void EndAttempt(
      Txn& txn, uint64_t seq, farm::v1::AttemptOutcome outcome, const std::string& reason,
      const google::protobuf::RepeatedPtrField<farm::v1::Artifact>* artifacts = nullptr);
  farm::v1::HeartbeatResponse HeartbeatStatus(const farm::v1::HeartbeatRequest& req, bool renew,
                                              bool* urgent);
  void WakeHeartbeat(Txn& txn, const std::string& agent);
  void ArmSweep();
  void Sweep(Txn& txn);
  void ExpireRequestIds(Txn& txn);
  void NotifyAfterCommit(Txn& txn, uint64_t seq);

  // Pipelines and concurrency groups (pipelines.cc).
  // A job whose needs are met: queued, or WAITING for a place in its concurrency group.
  absl::Status MakeReady(Txn& txn, farm::v1::Job& job);
  // Queues a job that may run now; a job without steps succeeds at once instead.
  absl::Status Release(Txn& txn, farm::v1::Job& job);
  // Gives free places of `group` to the jobs waiting for one, in submit order.
  absl::Status AdmitWaiters(Txn& txn, const std::string& group);
  // After `job` reached a final state (and was written): frees its group place, and releases,
  // skips or cancels the jobs of its pipeline that need it.
  void JobEnded(Txn& txn, const farm::v1::Job& job);
  absl::Status ResolveDependants(Txn& txn, const farm::v1::Job& ended);
  // A QUEUED or WAITING job ends CANCELLED at once; a RUNNING one is asked to stop.
  absl::Status CancelInTxn(Txn& txn, farm::v1::Job& job);
  // Whether a failed attempt is retried under the job's retry policy.
  static bool RetriesAfterFailure(const farm::v1::Job& job);
  absl::StatusOr<std::optional<farm::v1::Pipeline>> LoadPipeline(Txn& txn, uint64_t seq);
  // The pipeline's derived view (job states, its state) from what this group sees.
  absl::Status FillViewInTxn(Txn& txn, farm::v1::Pipeline& pipeline);
  absl::Status RecoverGroups();

  Store* const store_;
  common::Clock* const clock_;
  LogHub* const hub_;
  const SchedulerOptions options_;
  Engine engine_;

  std::atomic<uint64_t> next_call_id_{1};
  bool started_ = false;  // Start/Stop run on the owner's thread

  // Engine thread only.
  uint64_t next_seq_ = 0;    // last used
  uint64_t next_epoch_ = 0;  // last used
  std::map<uint64_t, LabelSet> labelsets_;
  std::map<uint64_t, ActiveLease> active_;
  std::map<std::string, Agent> agents_;
  uint64_t next_pipeline_seq_ = 0;  // last used
  std::map<std::string, Group> groups_;
  std::list<LeaseWaiter> lease_waiters_;  // FIFO
  absl::flat_hash_map<uint64_t, std::list<LeaseWaiter>::iterator> lease_waiter_index_;
  absl::flat_hash_map<uint64_t, HeartbeatWaiter> heartbeat_waiters_;
  bool parking_stopped_ = false;
  ArtifactCheck artifact_check_;
};

}  // namespace farm::coordinator
