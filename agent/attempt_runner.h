// Runs one leased attempt of a job from start to end: prepares the workspace, stages the
// inputs, runs the job's work through the Runner for its kind (runner.h; steps today:
// steps_runner.h) with live logs, then collects the artifacts, completes the attempt with the
// coordinator and cleans up.
//
// Inputs (Job.inputs) are staged under inputs/ before the work starts (agent/inputs.h); when
// that fails nothing runs and the attempt fails with the reason naming the input. The job's
// timeout runs from the start of the staging.
//
// Threads: Run() runs on the slot thread that leased the job (the step processes' parent
// death signal is tied to it) and returns when the attempt is over. Cancel() and Abandon()
// may be called from any thread (the heartbeat thread) at any time.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "agent/agent_metrics.h"
#include "agent/blob_cache.h"
#include "agent/coordinator_client.h"
#include "agent/isolation.h"
#include "agent/log_sender.h"
#include "agent/runner.h"
#include "agent/step_supervisor.h"
#include "agent/workspace.h"
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
  // How job processes are isolated (user, limits, cgroup, sandbox). Null: not at all (tests).
  const Isolation* isolation = nullptr;
  std::string agent_name;
  std::string work_dir;  // absolute
  bool keep_failed = false;
  // The agent's own environment ("NAME=value"), the base of every step's environment.
  std::vector<std::string> base_env;
  // Blocks until the agent registered again after the coordinator said it does not know it
  // (IsNotRegistered); false when the agent gives up (it is shutting down). Called from the
  // attempt's threads.
  std::function<bool()> reregister;
  common::Clock* clock = nullptr;
  LogSender::Options log_options;
  // The coordinator accepts the last step's result with CompleteJob (RegisterResponse.features
  // has "complete_job.last_step").
  bool complete_with_last_step = false;
  // Asked just before CompleteJob: whether the slot takes its next job with the completion
  // (the coordinator has "complete_job.next_lease" and the agent is not draining). Null: no.
  std::function<bool()> lease_next;
  std::string session_id;  // the agent's registration session, for lease_next
  // Where the attempt's figures go (agent_metrics.h); null: nowhere (tests).
  const AttemptMetrics* metrics = nullptr;
};

class AttemptRunner final : public Attempt {
 public:
  // `secrets`: the values that came with the lease (LeaseResponse.secrets).
  AttemptRunner(const AttemptContext& context, farm::v1::LeaseRef lease, farm::v1::Job job,
                const google::protobuf::RepeatedPtrField<farm::v1::SecretValue>& secrets = {});
  AttemptRunner(const AttemptRunner&) = delete;
  AttemptRunner& operator=(const AttemptRunner&) = delete;

  // Runs the attempt and reports it (the work's own reports, CompleteJob at the end) unless it
  // was abandoned. Returns the outcome reported, or ATTEMPT_LOST when the attempt was abandoned
  // and nothing more was reported.
  farm::v1::AttemptOutcome Run();
  // The slot's next lease, when it came with the completion (AttemptContext::lease_next). It is
  // the agent's to run: its lease is already counting down.
  std::optional<farm::v1::LeaseResponse> TakeNextLease();

  // Stops the attempt and completes it as CANCELLED with `reason` ("cancelled" for a user's
  // cancel): the running step's process group gets SIGTERM, SIGKILL after the job's grace.
  void Cancel(const std::string& reason);
  // Stops the attempt without reporting anything more (the lease is stale or lost): kills the
  // step, drops pending output, cancels calls in flight.
  void Abandon(const std::string& reason) override;
  // The coordinator says the lease is no longer valid (a heartbeat's answer): Abandon(), unless
  // the completion is in flight. A coordinator that accepted the completion and then lost its
  // answer (it was killed) says so too; the completion's own retry then hears "accepted" (with
  // the next lease that came with it) or FAILED_PRECONDITION, and abandoning meanwhile would
  // lose that lease.
  void LeaseInvalid(const std::string& reason);

  const farm::v1::LeaseRef& lease() const override { return lease_; }
  const farm::v1::Job& job() const override { return job_; }
  const std::string& log_prefix() const override { return log_prefix_; }
  std::optional<std::string> cancel_reason() const override;
  // True once Abandon() was called: the lease is no longer ours, so heartbeats stop listing
  // it. (A cancelled attempt stays listed, keeping its lease alive while the step is killed.)
  bool abandoned() const override;
  // Retries `call` after registering again when the coordinator forgot the agent (a few times
  // at most); on any failure the attempt is abandoned.
  absl::Status Report(const char* what, const Call& call) override;

 private:
  // The attempt's workspace; on failure, the attempt's FAILED outcome and reason go to `work`.
  absl::StatusOr<Workspace> PrepareWorkspace(WorkResult* work);
  // Stages the job's inputs in `workspace`. False when they could not be, with the outcome
  // (FAILED, or CANCELLED after Cancel()) and reason in `work`. `job_started_ms` is when the
  // job's timeout started running: staging ends when it expires.
  bool StageJobInputs(const Workspace& workspace, int64_t job_started_ms, WorkResult* work);
  // Runs the job's work through runner_ with a log stream of its own.
  void RunWork(const std::string& workspace, int64_t job_started_ms, WorkResult* work);
  // Collects, hashes and uploads the job's artifacts into `complete` when the outcome calls for
  // them; a failure fails the attempt (or cancels it, after Cancel()).
  void CollectArtifacts(const Workspace& workspace, WorkResult* work,
                        farm::v1::CompleteJobRequest* complete);
  absl::Status FindAndUploadArtifacts(const Workspace& workspace,
                                      farm::v1::CompleteJobRequest* complete);
  // Reports the outcome with CompleteJob (dropping the artifacts, and failing the attempt,
  // when the coordinator says one of them is gone from the CAS).
  void Complete(WorkResult* work, farm::v1::CompleteJobRequest* complete);
  // Removes the workspace (or keeps a failed attempt's, with --keep_failed).
  void CleanUp(const Workspace& workspace, farm::v1::AttemptOutcome outcome);

  const AttemptContext& context_;
  const farm::v1::LeaseRef lease_;
  const farm::v1::Job job_;
  const std::string log_prefix_;
  const std::unique_ptr<Runner> runner_;  // for the job's kind of work
  // The job's secrets; an error (one did not come with the lease) fails the attempt.
  const absl::StatusOr<JobSecrets> secrets_;
  CallCanceller canceller_;         // fired on Abandon(): ends the job's calls in flight
  CallCanceller upload_canceller_;  // fired on Cancel() and Abandon(): ends artifact uploads
  // Fired on Cancel() and Abandon() and at the job's timeout: ends input downloads.
  CallCanceller staging_canceller_;

  mutable absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  std::string cancel_reason_ ABSL_GUARDED_BY(mu_);
  bool abandoned_ ABSL_GUARDED_BY(mu_) = false;
  bool completing_ ABSL_GUARDED_BY(mu_) = false;          // CompleteJob was sent
  bool reported_ ABSL_GUARDED_BY(mu_) = false;            // CompleteJob was acknowledged
  LogSender* log_sender_ ABSL_GUARDED_BY(mu_) = nullptr;  // while RunWork() has one
  std::optional<farm::v1::LeaseResponse> next_lease_ ABSL_GUARDED_BY(mu_);
};

}  // namespace farm::agent
