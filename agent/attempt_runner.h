// Runs one leased attempt of a job from start to end: workspace, inputs, steps in order, live
// logs, step and job reports to the coordinator, artifacts, cleanup.
//
// Inputs (Job.inputs) are staged under inputs/ before the first step (agent/inputs.h); when that
// fails no step runs and the attempt fails with the reason naming the input.
//
// Steps run in order, each according to its `when`: WHEN_ON_SUCCESS while no earlier step has
// failed or timed out, WHEN_ON_FAILURE only once one has, WHEN_ALWAYS in either case. Nothing
// runs after a cancel (the user's, the agent's drain timeout) or once the attempt is abandoned
// (lease lost or fenced), nor after the job's own timeout. A step that does not run is left for
// the coordinator to record as STEP_SKIPPED. The attempt fails when any step failed, whatever
// the steps after it did; its reason is the first failure's.
//
// Threads: Run() runs on the slot thread that leased the job (the step processes' parent
// death signal is tied to it) and returns when the attempt is over. Cancel() and Abandon()
// may be called from any thread (the heartbeat thread) at any time.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "agent/blob_cache.h"
#include "agent/coordinator_client.h"
#include "agent/log_sender.h"
#include "agent/step_runner.h"
#include "agent/step_supervisor.h"
#include "common/cas_client.h"
#include "common/clock.h"
#include "farm/v1/farm.pb.h"

namespace farm::agent {

// Under the work dir, next to the workspaces: log output the coordinator has not acknowledged
// yet (LogSender spills it here during a partition).
inline constexpr char kLogSpillDirName[] = ".log-spill";

// What every attempt of this agent shares. Pointers are not owned and outlive the attempt.
struct AttemptContext {
  CoordinatorClient* client = nullptr;
  common::CasClient* cas = nullptr;  // where artifacts go; needed only by jobs that have some
  // Where inputs come from (through `cas`); needed only by jobs that have some.
  BlobCache* blob_cache = nullptr;
  // Guards every step's process group (see step_supervisor.h). Null only in tests that do not
  // care whether steps outlive the process.
  const StepSupervisor* supervisor = nullptr;
  std::string agent_name;
  std::string work_dir;  // absolute
  bool keep_failed = false;
  // The agent's own environment ("NAME=value"), the base of every step's environment.
  std::vector<std::string> base_env;
  // Blocks until the agent registered again after a NOT_FOUND "not registered"; false when
  // the agent gives up (it is shutting down). Called from the attempt's threads.
  std::function<bool()> reregister;
  common::Clock* clock = nullptr;
  LogSender::Options log_options;
  // The coordinator accepts the last step's result with CompleteJob (RegisterResponse.features
  // has "complete_job.last_step").
  bool complete_with_last_step = false;
};

class AttemptRunner {
 public:
  AttemptRunner(const AttemptContext& context, farm::v1::LeaseRef lease, farm::v1::Job job);
  AttemptRunner(const AttemptRunner&) = delete;
  AttemptRunner& operator=(const AttemptRunner&) = delete;

  // Runs the attempt and reports it (StepStarted/StepFinished per step, CompleteJob at the
  // end) unless it was abandoned. Returns the outcome reported, or ATTEMPT_LOST when the
  // attempt was abandoned and nothing more was reported.
  farm::v1::AttemptOutcome Run();

  // Stops the attempt and completes it as CANCELLED with `reason` ("cancelled" for a user's
  // cancel): the running step's process group gets SIGTERM, SIGKILL after the job's grace.
  void Cancel(const std::string& reason);
  // Stops the attempt without reporting anything more (the lease is stale or lost): kills the
  // step, drops pending output, cancels calls in flight.
  void Abandon(const std::string& reason);

  const farm::v1::LeaseRef& lease() const { return lease_; }
  const std::string& log_prefix() const { return log_prefix_; }
  // True once Abandon() was called: the lease is no longer ours, so heartbeats stop listing
  // it. (A cancelled attempt stays listed, keeping its lease alive while the step is killed.)
  bool abandoned() const;

 private:
  // The reason for the job's outcome when step `name` ended with `outcome`.
  struct StepVerdict {
    farm::v1::StepState state;
    std::string message;  // for StepResult.message
    std::string reason;   // for CompleteJob.reason; empty when the step succeeded
  };
  StepVerdict Judge(const std::string& name, const StepOutcome& outcome, bool job_bound,
                    int64_t timeout_ms) const;
  StepCommand MakeCommand(int index, const std::string& step_name, const std::string& workspace,
                          int64_t timeout_ms) const;
  // Collects, hashes and uploads the job's artifacts into `complete`. Returns an error for the
  // attempt's reason ("artifacts: ..."): CANCELLED when Cancel() or Abandon() interrupted it.
  absl::Status CollectArtifacts(const std::string& workspace,
                                farm::v1::CompleteJobRequest& complete);
  // Stages the job's inputs in `workspace`. Returns the attempt's reason on failure, with the
  // outcome in `outcome` (FAILED, or CANCELLED after Cancel()). `job_started_ms` (MonoMs) is
  // when the job's timeout started running: staging ends when it expires.
  absl::Status StageJobInputs(const std::string& workspace, int64_t job_started_ms,
                              farm::v1::AttemptOutcome* outcome);
  // Runs a call about the job, registering again when the coordinator forgot the agent.
  // On any failure the attempt is abandoned (a stale lease is FAILED_PRECONDITION).
  absl::Status Report(const char* what, const std::function<absl::Status()>& call);

  const AttemptContext& context_;
  const farm::v1::LeaseRef lease_;
  const farm::v1::Job job_;
  const std::string log_prefix_;
  StepRunner step_runner_;
  CallCanceller canceller_;         // fired on Abandon(): ends the job's calls in flight
  CallCanceller upload_canceller_;  // fired on Cancel() and Abandon(): ends artifact uploads
  // Fired on Cancel() and Abandon() and at the job's timeout: ends input downloads.
  CallCanceller staging_canceller_;

  mutable absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  std::string cancel_reason_ ABSL_GUARDED_BY(mu_);
  bool abandoned_ ABSL_GUARDED_BY(mu_) = false;
  bool reported_ ABSL_GUARDED_BY(mu_) = false;            // CompleteJob was acknowledged
  LogSender* log_sender_ ABSL_GUARDED_BY(mu_) = nullptr;  // while Run() has one
};

}  // namespace farm::agent
