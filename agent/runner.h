// The seam between an attempt and the kind of work it runs.
//
// An attempt (AttemptRunner) prepares the workspace, stages the job's inputs and opens the log
// stream; then the Runner for the job's kind of work runs it; then the attempt collects the
// artifacts and completes. Today every job is a list of steps (StepsRunner, steps_runner.h);
// remote-execution actions (REAPI) are the other kind of work this seam is for.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "agent/coordinator_client.h"
#include "agent/job_secrets.h"
#include "agent/log_sender.h"
#include "farm/v1/farm.pb.h"

namespace farm::agent {

// What the work came to.
struct WorkResult {
  farm::v1::AttemptOutcome outcome = farm::v1::ATTEMPT_SUCCEEDED;
  std::string reason;  // for CompleteJob.reason; empty when the work succeeded
  // A step's result that goes with CompleteJob (CompleteJobRequest.last_step) instead of a
  // StepFinished call of its own.
  std::optional<farm::v1::StepReport> last_step;
};

// What a Runner may use of the attempt it works for. Implemented by AttemptRunner, which
// outlives the Runner. Thread-safe.
class Attempt {
 public:
  // A call about the job to the coordinator, made with the attempt's client and canceller.
  using Call = std::function<absl::Status(CoordinatorClient& client, CallCanceller* canceller)>;

  virtual const farm::v1::LeaseRef& lease() const = 0;
  virtual const farm::v1::Job& job() const = 0;
  // "[job= attempt= agent=]", the prefix of the attempt's log lines.
  virtual const std::string& log_prefix() const = 0;
  // The reason given to Cancel() (the user's cancel, the agent's drain timeout); nullopt while
  // the attempt is not cancelled.
  virtual std::optional<std::string> cancel_reason() const = 0;
  // True once the lease is no longer ours (stale, lost or fenced): nothing more may run or be
  // reported.
  virtual bool abandoned() const = 0;
  virtual void Abandon(const std::string& reason) = 0;
  // Makes `call`, registering the agent again when the coordinator forgot it. On any failure
  // the attempt is abandoned (FAILED_PRECONDITION: the lease is stale) and the error returned.
  virtual absl::Status Report(const char* what, const Call& call) = 0;

 protected:
  ~Attempt() = default;
};

// Where the work runs, set up by the attempt before Runner::Run() and valid during it.
struct WorkSite {
  std::string workspace;       // absolute; the job's paths are relative to it
  int64_t job_started_ms = 0;  // when the job's timeout started running (the agent's clock)
  LogSender* logs = nullptr;   // the work's output, by step index and byte offset
  // The job's secrets (job_secrets.h): for the steps' environment and the output's redaction.
  const JobSecrets* secrets = nullptr;
};

// Runs one kind of work.
class Runner {
 public:
  virtual ~Runner() = default;

  // Runs the job's work for `attempt` in `site`: streams its output to site.logs and reports
  // its progress through attempt.Report(). Returns when the work is over, was stopped, or the
  // attempt was abandoned (the outcome then does not matter). Called once, on the slot thread
  // that leased the job (see AttemptRunner).
  virtual WorkResult Run(Attempt& attempt, const WorkSite& site) = 0;

  // Stops the work in progress, and any it would start later: the attempt was cancelled or
  // abandoned. Any thread, any time (also before Run()); idempotent.
  virtual void Stop() = 0;
};

// The kinds of work a job can be.
enum class WorkKind {
  kSteps,  // JobSpec.steps, run in order by a shell in the workspace
};

// The kind of `job`'s work: every job is a list of steps today.
inline WorkKind KindOf(const farm::v1::Job& /*job*/) { return WorkKind::kSteps; }

}  // namespace farm::agent
