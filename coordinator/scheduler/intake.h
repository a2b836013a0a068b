// Intake: users' submits and cancels of jobs and pipelines. A submit creates the job (or the
// pipeline and all its jobs) in one write, idempotently by request id (request_ids.h), and
// hands each job to the lifecycle; a cancel ends a job that has not started at once and asks a
// running one's agent to stop.
//
// Owns the job sequence (job ids). Engine thread only. Errors: NOT_FOUND (an unknown job or
// pipeline), FAILED_PRECONDITION (cancelling a job that already ended otherwise), the
// lifecycle's and the store's.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/pipeline.h"
#include "coordinator/scheduler/attempts.h"
#include "coordinator/scheduler/engine.h"
#include "coordinator/scheduler/event_recorder.h"
#include "coordinator/scheduler/heartbeats.h"
#include "coordinator/scheduler/job_lifecycle.h"
#include "coordinator/scheduler/pipeline_graph.h"
#include "coordinator/scheduler/request_ids.h"
#include "farm/v1/farm.pb.h"

namespace farm::coordinator {

class Intake {
 public:
  struct Parts {
    common::Clock* clock;
    RequestIds* request_ids;
    JobLifecycle* lifecycle;
    PipelineGraph* pipelines;
    AttemptTracker* attempts;
    HeartbeatDesk* heartbeats;
    EventRecorder* events;
  };
  explicit Intake(Parts parts) : p_(parts) {}

  // Finds the job sequence: past the newest job record or job event, and past the floor in the
  // meta family (kNextSeq) that whoever deletes records must leave, so that no id is reused.
  absl::Status Recover(Store* store);

  // A validated spec; *existing when the request id named an earlier submit. `by`: who submits
  // (Job.submitted_by).
  absl::StatusOr<std::string> Submit(Txn& txn, farm::v1::JobSpec spec,
                                     const std::string& request_id, bool* existing,
                                     const std::string& by = "");
  // An expanded pipeline; the pipeline's view as this group leaves it.
  absl::StatusOr<farm::v1::Pipeline> SubmitPipeline(Txn& txn, const std::string& name,
                                                    std::vector<common::ExpandedJob> jobs,
                                                    const std::string& request_id, bool* existing,
                                                    const std::string& by = "");
  absl::StatusOr<farm::v1::Job> Cancel(Txn& txn, uint64_t seq);
  absl::StatusOr<farm::v1::Pipeline> CancelPipeline(Txn& txn, uint64_t pseq);

  // An operator's retry (intake_retry.cc), idempotent by request id (a retried call returns what
  // the first one made, with `existing` set):
  // - a finished job (SUCCEEDED, FAILED, CANCELLED, SKIPPED) submitted on its own runs again as
  //   a new job with the same spec; the new job's retry_of names the old one, the old one's
  //   retried_by the new one (a JOB_RETRIED event on the old one).
  // - a finished pipeline that did not succeed is reopened in place: its FAILED, CANCELLED and
  //   SKIPPED jobs, and every job that needs one of them (transitively), are replaced in its
  //   record by new jobs (retry_of, retried_by and the event as above) that run as a new
  //   submit's would; the SUCCEEDED jobs stay, and their artifacts are the new jobs' inputs.
  //   The pipeline's cancel is lifted and its retries counted.
  // NOT_FOUND (unknown), FAILED_PRECONDITION (not finished; a pipeline that succeeded; a job of
  // a pipeline, whose pipeline is retried instead; a job retried already).
  absl::StatusOr<farm::v1::RetryResponse> RetryJob(Txn& txn, uint64_t seq,
                                                   const std::string& request_id);
  absl::StatusOr<farm::v1::RetryResponse> RetryPipeline(Txn& txn, uint64_t pseq,
                                                        const std::string& request_id);

  // Re-resolves every job still WAITING for its needs (after a restart: a cascade that an
  // older version lost, or a need that ended meanwhile).
  absl::Status ResolveWaiting(Txn& txn);

 private:
  // A QUEUED or WAITING job ends CANCELLED at once; a RUNNING one is asked to stop.
  absl::Status CancelInTxn(Txn& txn, farm::v1::Job& job);
  // The pipeline's derived view as this group sees it.
  absl::Status FillView(Txn& txn, farm::v1::Pipeline& pipeline);
  // A new job that runs `old` again (not yet submitted); `old` is marked and recorded.
  farm::v1::Job NewRetry(Txn& txn, farm::v1::Job& old);
  // Submits a retried pipeline's new jobs: those that wait first, then the ready ones.
  absl::Status SubmitRetried(Txn& txn, const farm::v1::Pipeline& pipeline,
                             std::vector<farm::v1::Job>& created,
                             const std::set<std::string>& rerun);

  Parts p_;
  uint64_t last_seq_ = 0;
};

}  // namespace farm::coordinator
