// The coordinator's domain core, as one facade: it routes each command to the part that owns
// it and runs it on the engine thread (engine.h: one owner thread, group commit, every reply
// after the durable write of what it reports). The parts, each with its own contract:
//
//   intake          submits and cancels (job ids, request-id dedup: request_ids.h)
//   job_lifecycle   the one state transition function, events and the end-of-job cascade
//   queue_index     which queued job runs next (label sets: label_sets.h)
//   dispatcher      pairs queued work with agents' Lease calls
//   lease_table     leases, epochs, expiry, fencing
//   attempts        running attempts as agents report them (logs: logs/log_ingest.h)
//   heartbeats      lease renewal and cancels reaching agents
//   agent_registry  agents (persisted: sessions, labels, slots, drain)
//   parked_calls    Lease and Heartbeat long polls
//   pipeline_graph  needs between jobs; concurrency_groups: places in groups
//   event_recorder  the durable event history
//   job_reads       users' reads, from the store, off the engine thread
//
// gRPC never appears here: services call these methods with plain messages and get their
// answers through callbacks, which run on the engine thread or its reply thread (or at once,
// with UNAVAILABLE, when the scheduler is stopping).
//
// Memory grows with active work, not with the backlog or the history.
//
// Error codes: NOT_FOUND (unknown job or pipeline; an unregistered agent, with the reason
// AGENT_NOT_REGISTERED), INVALID_ARGUMENT (bad spec or request), FAILED_PRECONDITION (stale
// lease epoch, superseded agent session, a job already finished), OUT_OF_RANGE (a gap in
// uploaded output), PERMISSION_DENIED (another agent's lease), and UNAVAILABLE /
// RESOURCE_EXHAUSTED when a write or a read fails (nothing of the failed group is visible
// afterwards).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "coordinator/logs/follower_hub.h"
#include "coordinator/logs/log_ingest.h"
#include "coordinator/scheduler/agent_registry.h"
#include "coordinator/scheduler/attempts.h"
#include "coordinator/scheduler/concurrency_groups.h"
#include "coordinator/scheduler/dispatcher.h"
#include "coordinator/scheduler/engine.h"
#include "coordinator/scheduler/event_recorder.h"
#include "coordinator/scheduler/flow_metrics.h"
#include "coordinator/scheduler/heartbeats.h"
#include "coordinator/scheduler/intake.h"
#include "coordinator/scheduler/job_counts.h"
#include "coordinator/scheduler/job_lifecycle.h"
#include "coordinator/scheduler/job_reads.h"
#include "coordinator/scheduler/label_sets.h"
#include "coordinator/scheduler/lease_table.h"
#include "coordinator/scheduler/parked_calls.h"
#include "coordinator/scheduler/pipeline_graph.h"
#include "coordinator/scheduler/queue_index.h"
#include "coordinator/scheduler/queue_report.h"
#include "coordinator/scheduler/request_ids.h"
#include "coordinator/scheduler/retention.h"
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
  // Offline agents are forgotten after this long (unless an operator drained them).
  int64_t forget_agent_after_ms = 3600'000;
  // The flow metrics (flow_metrics.h), when they are served; registered by the caller.
  std::optional<FlowFamilies> flow;
  // Events are kept this long.
  int64_t event_retention_ms = EventRecorder::kDefaultRetentionMs;
  // Finished jobs and their output are removed past these (retention.h).
  RetentionPolicy retention;
  // The redaction of the output of jobs that name secrets (logs/log_ingest.h); empty: none.
  LogIngest::RedactionSource redaction;
};

class Scheduler {
 public:
  template <typename T>
  using Done = coordinator::Done<T>;

  Scheduler(Store* store, common::Clock* clock, FollowerHub* hub, SchedulerOptions options,
            EngineOptions engine_options = {});
  ~Scheduler();

  // Loads every part's state from the store. Before Start.
  absl::Status Init();
  // Starts the engine; first of all it re-resolves jobs left waiting for their needs.
  void Start();
  // Answers every parked call with UNAVAILABLE and parks no more (so that the server can shut
  // down without waiting for them). Returns once done.
  void StopParking();
  // Finishes queued commands and their writes; later calls answer UNAVAILABLE.
  void Stop();

  const SchedulerOptions& options() const { return options_; }
  Store* store() const { return store_; }

  // --- users
  // `by`: who submits (Job.submitted_by, Pipeline.submitted_by).
  void Submit(farm::v1::JobSpec spec, std::string request_id,
              Done<farm::v1::SubmitJobResponse> done, std::string by = "");
  void Cancel(std::string job_id, Done<farm::v1::Job> done);
  // Expands and checks the spec (common/pipeline.h), then creates the pipeline and all its
  // jobs in one write: jobs that need nothing are queued, the others wait.
  void SubmitPipeline(farm::v1::PipelineSpec spec, std::string request_id,
                      Done<farm::v1::SubmitPipelineResponse> done, std::string by = "");
  // Cancels every job that has not ended; jobs waiting for others end CANCELLED, not SKIPPED.
  void CancelPipeline(std::string pipeline_id, Done<farm::v1::Pipeline> done);
  // Committed state, read from the store on the calling thread (job_reads.h).
  const JobReads& reads() const { return reads_; }
  // Jobs by state, exact and cheap (job_counts.h); any thread.
  const JobCounts& job_counts() const { return job_counts_; }
  absl::StatusOr<farm::v1::Job> GetJob(absl::string_view job_id) const;
  absl::StatusOr<farm::v1::ListJobsResponse> ListJobs(const farm::v1::ListJobsRequest& req) const;
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
  // `holder` in the calls about a lease below: the calling agent's name, which may name only
  // its own leases (PERMISSION_DENIED otherwise, changing nothing); "" for a caller who may
  // name any (an admin, or a farm without authentication).
  //
  // Appends output; answers the step's committed length.
  void AppendLog(farm::v1::LogUploadChunk chunk, Done<int64_t> done, std::string holder = {});
  void StepStarted(farm::v1::StepStartedRequest req, Done<farm::v1::Ack> done,
                   std::string holder = {});
  void StepFinished(farm::v1::StepFinishedRequest req, Done<farm::v1::Ack> done,
                    std::string holder = {});
  // Ends the attempt as the agent reports it. With lease_next, the answer also carries the
  // agent's next lease when work for it is queued, granted in the same group.
  void CompleteJob(farm::v1::CompleteJobRequest req, Done<farm::v1::CompleteJobResponse> done,
                   std::string holder = {});

  // --- operators
  void ListAgents(Done<farm::v1::ListAgentsResponse> done);
  // An operator's drain (drain=true: take no new work; persisted) or resume of an agent.
  void SetAgentDrain(std::string name, bool drain, Done<farm::v1::Ack> done);

  // Operators' agent commands (scheduler_agents.cc; agent_registry.h has the rules). Each
  // answers with the agent as the command left it, once that is durable; `by` names the
  // operator in the command's event (empty: "an operator"). INVALID_ARGUMENT for an empty
  // name or a bad label; NOT_FOUND "no agent named X"; nothing changes on an error.
  //
  // Drain (take no new work, finish what it runs) or resume; a resumed agent's parked Lease
  // calls get matching queued work at once.
  void DrainAgent(std::string name, bool drain, std::string by, Done<farm::v1::AgentInfo> done);
  // Sets and removes labels jobs match (keys 1 to kMaxLabelBytes bytes without '=' or ',',
  // values at most kMaxLabelBytes without ','); the agent's parked Lease calls get the queued
  // work its new labels match at once.
  void LabelAgent(std::string name, Labels set, std::vector<std::string> remove, std::string by,
                  Done<farm::v1::AgentInfo> done);
  // Forgets an offline agent that holds no lease (FAILED_PRECONDITION otherwise): the agent as
  // it was.
  void RemoveAgent(std::string name, std::string by, Done<farm::v1::AgentInfo> done);
  // --- Operators: queues (scheduler_queues.cc). A selector is 1..kMaxLabels labels k=v (keys
  // and values as a job file's); a job matches it when the job's required labels contain every
  // k=v of it. INVALID_ARGUMENT for a bad selector, at once.
  //
  // Pauses `selector` (queue_index.h): matching jobs stay queued until resumed. Persisted; a
  // QUEUE_PAUSED event. Pausing a paused selector changes nothing (existing).
  void PauseQueue(Labels selector, Done<farm::v1::PauseQueueResponse> done);
  // Lifts the pause of exactly `selector` (NOT_FOUND when it is not paused); the jobs it held go
  // to parked agents in the same group. A QUEUE_RESUMED event.
  void ResumeQueue(Labels selector, Done<farm::v1::ResumeQueueResponse> done);
  // The engine's half of `admin queues` (queue_report.h: BuildQueueReport does the rest, off
  // the engine thread).
  void SnapshotQueues(Done<QueueSnapshot> done);
  // Moves a QUEUED job to `priority` in one write (its queue key and record, a
  // JOB_REPRIORITIZED event). NOT_FOUND, FAILED_PRECONDITION (not queued), INVALID_ARGUMENT
  // (outside kMinPriority..kMaxPriority).
  void Reprioritize(std::string job_id, int32_t priority, Done<farm::v1::Job> done);
  // Retries a finished job or pipeline (intake.h: RetryJob, RetryPipeline).
  void Retry(std::string id, std::string request_id, Done<farm::v1::RetryResponse> done);
  // Cancels the QUEUED jobs that match `selector`, kBulkCancelBatch per write (each write its
  // own group, after the previous one committed, so other work goes on between them); answers
  // once none is left, with how many. A write error ends it: the batches before stay.
  static constexpr size_t kBulkCancelBatch = 1000;
  void BulkCancel(Labels selector, farm::v1::JobState state,
                  Done<farm::v1::BulkCancelResponse> done);

  // Checks that a completion's artifacts are all in the content-addressed store and keeps them
  // there (pins them): `done` with OK, or NOT_FOUND naming what is missing. Called on the
  // completion's thread before the completion is posted to the engine, and must not block it:
  // it answers from elsewhere (the CAS's pool). Set before Start; without it artifacts are
  // recorded unchecked.
  using ArtifactCheck =
      std::function<void(const google::protobuf::RepeatedPtrField<farm::v1::Artifact>& artifacts,
                         std::function<void(absl::Status)> done)>;
  void SetArtifactCheck(ArtifactCheck check) { artifact_check_ = std::move(check); }

  // --- retention (scheduler_retention.cc)
  // What one pass of garbage collection on the engine removed (or would remove).
  struct GcPass {
    RetentionReport retention;
    int64_t events = 0;
    // Job seqs removed since the last pass that was not a dry run, by this pass or the
    // background sweep: [min, max], (0, 0) for none.
    std::pair<uint64_t, uint64_t> removed_range;
  };
  // Runs one pass now (retention.h, and the events past their retention), as the background
  // sweep does but without waiting for its turn. With dry_run, changes nothing and reports what
  // a pass would remove.
  void CollectGarbage(bool dry_run, Done<GcPass> done);

  // A process-unique id for a parked call.
  uint64_t NewCallId() { return next_call_id_.fetch_add(1); }

 private:
  // Posts cmd, or answers `fail` with UNAVAILABLE when stopping.
  bool Post(Engine::Command cmd, const std::function<void(absl::Status)>& fail);
  void PostCompletion(farm::v1::CompleteJobRequest req, Done<farm::v1::CompleteJobResponse> done,
                      std::string holder);
  void CompleteNow(Txn& txn, const farm::v1::CompleteJobRequest& req, const std::string& holder,
                   const Done<farm::v1::CompleteJobResponse>& done);

  absl::Status Recover();
  void RecoverAfterFailedWrite();  // engine thread
  void ArmSweep();
  void Sweep(Txn& txn);
  void ListAgentsNow(Done<farm::v1::ListAgentsResponse>& done);
  // The agent `name` as ListAgents shows it (it must exist).
  farm::v1::AgentInfo AgentInfoOf(const std::string& name);
  struct BulkCancelRun;
  void BulkCancelBatch(Txn& txn, const std::shared_ptr<BulkCancelRun>& run);
  void RegisterNow(Txn& txn, const farm::v1::RegisterRequest& req,
                   Done<farm::v1::RegisterResponse>& done);

  Store* const store_;
  common::Clock* const clock_;
  const SchedulerOptions options_;
  Engine engine_;

  // The parts (engine thread only, but reads_ and job_counts_' snapshots).
  JobCounts job_counts_;
  LabelSets label_sets_;
  std::unique_ptr<FlowMetrics> flow_;  // null: no metrics served
  QueueIndex queue_;
  LeaseTable leases_;
  EventRecorder events_;
  Retention retention_;
  AgentRegistry agents_;
  ParkedCalls parked_;
  LogIngest logs_;
  ConcurrencyGroups groups_;
  PipelineGraph pipelines_;
  JobLifecycle lifecycle_;
  RequestIds request_ids_;
  AttemptTracker attempts_;
  HeartbeatDesk heartbeats_;
  Dispatcher dispatcher_;
  Intake intake_;
  const JobReads reads_;

  std::atomic<uint64_t> next_call_id_{1};
  bool started_ = false;          // Start/Stop run on the owner's thread
  bool parking_stopped_ = false;  // engine thread
  ArtifactCheck artifact_check_;
};

}  // namespace farm::coordinator
