// Running attempts, as their agents report them: output (through log ingest), steps started
// and finished (kept apart from the job record: job_records.h), and the attempt's end: the
// agent's completion, an expired lease (LOST), or the agent restarting. Every call is fenced
// by the lease (lease_table.h). An attempt's end takes the job to its next state through the
// lifecycle: final, or requeued when the agent was lost (up to agent_loss_retries times) or the
// job's retry policy asks for another run.
//
// Engine thread only. Errors: those of LeaseTable::Check and LogIngest::Accept,
// INVALID_ARGUMENT for a bad step index or state, and the lifecycle's.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "coordinator/logs/log_ingest.h"
#include "coordinator/scheduler/engine.h"
#include "coordinator/scheduler/event_recorder.h"
#include "coordinator/scheduler/flow_metrics.h"
#include "coordinator/scheduler/job_lifecycle.h"
#include "coordinator/scheduler/lease_table.h"
#include "farm/v1/farm.pb.h"

namespace farm::coordinator {

class AttemptTracker {
 public:
  struct Parts {
    common::Clock* clock;
    LeaseTable* leases;
    LogIngest* logs;
    JobLifecycle* lifecycle;
    EventRecorder* events;
    int agent_loss_retries;
    FlowMetrics* flow = nullptr;  // told of leases that expire, when set
  };
  explicit AttemptTracker(Parts parts) : p_(parts) {}

  // `holder` in the agents' calls below: the calling agent, which may name only its own leases
  // (PERMISSION_DENIED otherwise, changing nothing); "" for a caller who may name any (an
  // admin, or a farm without authentication).
  //
  // Stores what is new of a chunk of output; returns the step's committed length (durable
  // with the group).
  absl::StatusOr<int64_t> AppendLog(Txn& txn, const farm::v1::LogUploadChunk& chunk,
                                    const std::string& holder);
  absl::Status StepStarted(Txn& txn, const farm::v1::StepStartedRequest& req,
                           const std::string& holder);
  absl::Status StepFinished(Txn& txn, const farm::v1::StepFinishedRequest& req,
                            const std::string& holder);
  // The agent's completion (its artifacts already checked). A retry of a completion that was
  // accepted is accepted again and changes nothing. Returns whether this call ended the
  // attempt (false for such a retry).
  absl::StatusOr<bool> Complete(Txn& txn, const farm::v1::CompleteJobRequest& req,
                                const std::string& holder);

  // Ends the running attempt of job `seq`; the job becomes final, or is queued again.
  absl::Status EndAttempt(
      Txn& txn, uint64_t seq, farm::v1::AttemptOutcome outcome, const std::string& reason,
      const google::protobuf::RepeatedPtrField<farm::v1::Artifact>* artifacts = nullptr);
  // Every lease past its TTL ends LOST.
  absl::Status ExpireLeases(Txn& txn);
  // A user's cancel of the running job `seq`: recorded, for its agent to hear of (the caller
  // wakes the agent's heartbeat). Returns the agent.
  absl::StatusOr<std::string> RequestCancel(Txn& txn, uint64_t seq);

 private:
  // The leased job and one step of its running attempt.
  absl::StatusOr<std::pair<Lease*, farm::v1::StepResult*>> LeasedStep(const farm::v1::LeaseRef& ref,
                                                                      uint32_t step_index,
                                                                      const std::string& holder);
  void AppendStepStarted(Txn& txn, const Lease& lease, uint32_t step_index,
                         const std::string& step);
  // A finished step's result into the running attempt (memory) and its event.
  absl::StatusOr<Lease*> RecordStepResult(Txn& txn, const farm::v1::LeaseRef& ref,
                                          uint32_t step_index, const farm::v1::StepResult& result,
                                          const std::string& holder);
  // Whether a failed attempt is retried under the job's retry policy.
  static bool RetriesAfterFailure(const farm::v1::Job& job);
  // The job's next state after its attempt ended with `outcome`, and the reason.
  farm::v1::JobState NextState(const farm::v1::Job& job, farm::v1::AttemptOutcome outcome,
                               const std::string& reason, std::string* job_reason) const;

  Parts p_;
};

}  // namespace farm::coordinator
