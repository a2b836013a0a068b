#include "agent/attempt_runner.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <limits>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "agent/artifacts.h"
#include "agent/inputs.h"
#include "agent/workspace.h"
#include "common/duration.h"
#include "common/job_limits.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace farm::agent {
namespace {

using farm::v1::AttemptOutcome;
using farm::v1::StepState;

int64_t MonoMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string StepName(const farm::v1::JobSpec& spec, int index) {
  const std::string& name = spec.steps(index).name();
  return name.empty() ? absl::StrCat("step-", index + 1) : name;
}

// How many times one call may make the agent register again before the attempt gives up:
// a coordinator that keeps forgetting the agent is not one to keep reporting to.
constexpr int kMaxReregistrations = 3;

// Whether a step with `when` runs, given whether an earlier step failed or timed out. An
// unknown value (a newer coordinator) is the default, WHEN_ON_SUCCESS.
bool ShouldRun(farm::v1::StepWhen when, bool failed) {
  switch (when) {
    case farm::v1::WHEN_ALWAYS:
      return true;
    case farm::v1::WHEN_ON_FAILURE:
      return failed;
    default:
      return !failed;
  }
}

}  // namespace

AttemptRunner::AttemptRunner(const AttemptContext& context, farm::v1::LeaseRef lease,
                             farm::v1::Job job)
    : context_(context),
      lease_(std::move(lease)),
      job_(std::move(job)),
      log_prefix_(absl::StrCat("[job=", lease_.job_id(), " attempt=", lease_.attempt(),
                               " agent=", context_.agent_name, "]")),
      step_runner_(context.supervisor) {}

bool AttemptRunner::abandoned() const {
  absl::MutexLock lock(&mu_);
  return abandoned_;
}

void AttemptRunner::Cancel(const std::string& reason) {
  {
    absl::MutexLock lock(&mu_);
    if (cancelled_ || abandoned_ || reported_) return;
    cancelled_ = true;
    cancel_reason_ = reason;
  }
  FARM_LOG(INFO) << log_prefix_ << " cancelling: " << reason;
  step_runner_.Cancel();
  upload_canceller_.Cancel();
  staging_canceller_.Cancel();
}

void AttemptRunner::Abandon(const std::string& reason) {
  {
    absl::MutexLock lock(&mu_);
    if (abandoned_ || reported_) return;
    abandoned_ = true;
    if (log_sender_ != nullptr) log_sender_->Abort();
  }
  FARM_LOG(WARNING) << log_prefix_ << " abandoning the attempt: " << reason;
  step_runner_.Cancel();
  canceller_.Cancel();
  upload_canceller_.Cancel();
  staging_canceller_.Cancel();
}

absl::Status AttemptRunner::Report(const char* what, const std::function<absl::Status()>& call) {
  absl::Status status;
  for (int i = 0;; ++i) {
    status = call();
    if (!IsNotRegistered(status) || i >= kMaxReregistrations) break;
    FARM_LOG(INFO) << log_prefix_ << " " << what << ": the coordinator does not know this "
                   << "agent (it restarted?); registering again";
    if (!context_.reregister || !context_.reregister()) break;
  }
  if (status.ok()) return status;
  if (status.code() == absl::StatusCode::kFailedPrecondition) {
    Abandon(absl::StrCat(what, " refused, the lease is stale: ", status.message()));
  } else if (!abandoned()) {
    Abandon(absl::StrCat(what, " failed: ", status.ToString()));
  }
  return status;
}

StepCommand AttemptRunner::MakeCommand(int index, const std::string& step_name,
                                       const std::string& workspace, int64_t timeout_ms) const {
  const farm::v1::JobSpec& spec = job_.spec();
  const farm::v1::StepSpec& step = spec.steps(index);
  StepCommand command;
  if (spec.shell_size() > 0) {
    command.argv.assign(spec.shell().begin(), spec.shell().end());
  } else {
    command.argv = {"/bin/sh", "-e", "-c"};
  }
  command.argv.push_back(step.run());

  // Later layers win: agent environment < job env < step env < FARM_* variables.
  std::map<std::string, std::string> env;
  for (const std::string& kv : context_.base_env) {
    const size_t eq = kv.find('=');
    if (eq != std::string::npos && eq > 0) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& [key, value] : spec.env()) env[key] = value;
  for (const auto& [key, value] : step.env()) env[key] = value;
  env["FARM_JOB_ID"] = lease_.job_id();
  env["FARM_ATTEMPT"] = absl::StrCat(lease_.attempt());
  env["FARM_WORKSPACE"] = workspace;
  env["FARM_STEP"] = step_name;
  for (const auto& [key, value] : env) command.env.push_back(absl::StrCat(key, "=", value));

  command.cwd = workspace;
  command.timeout_ms = timeout_ms;
  command.kill_grace_ms =
      spec.kill_grace_ms() > 0 ? spec.kill_grace_ms() : common::kDefaultKillGraceMs;
  return command;
}

AttemptRunner::StepVerdict AttemptRunner::Judge(const std::string& name, const StepOutcome& outcome,
                                                bool job_bound, int64_t timeout_ms) const {
  StepVerdict v;
  switch (outcome.kind) {
    case StepOutcome::Kind::kExited:
      if (outcome.exit_code == 0) {
        v.state = farm::v1::STEP_SUCCEEDED;
      } else {
        v.state = farm::v1::STEP_FAILED;
        v.message = absl::StrCat("exited with code ", outcome.exit_code);
      }
      break;
    case StepOutcome::Kind::kSignaled:
      v.state = farm::v1::STEP_FAILED;
      v.message = absl::StrCat("killed by signal ", outcome.signal);
      break;
    case StepOutcome::Kind::kTimedOut:
      v.state = farm::v1::STEP_TIMED_OUT;
      if (job_bound) {
        v.message = absl::StrCat("job timed out after ",
                                 common::FormatDurationMs(job_.spec().timeout_ms()));
        v.reason = v.message;
      } else {
        v.message = absl::StrCat("timed out after ", common::FormatDurationMs(timeout_ms));
      }
      break;
    case StepOutcome::Kind::kCancelled: {
      absl::MutexLock lock(&mu_);
      v.state = farm::v1::STEP_CANCELLED;
      v.message = cancel_reason_.empty() ? "cancelled" : cancel_reason_;
      v.reason = v.message;
      break;
    }
    case StepOutcome::Kind::kFailedToStart:
      v.state = farm::v1::STEP_FAILED;
      v.message = absl::StrCat("failed to start: ", outcome.message);
      break;
  }
  if (v.state != farm::v1::STEP_SUCCEEDED && v.reason.empty()) {
    v.reason = absl::StrCat("step ", name, " ", v.message);
  }
  return v;
}

absl::Status AttemptRunner::CollectArtifacts(const std::string& workspace,
                                             farm::v1::CompleteJobRequest& complete) {
  const farm::v1::JobSpec& spec = job_.spec();
  const std::vector<std::string> globs(spec.artifacts().begin(), spec.artifacts().end());
  const int64_t started = MonoMs();
  FARM_ASSIGN_OR_RETURN(ArtifactMatches matches, FindArtifacts(workspace, globs));
  for (const std::string& glob : matches.empty_globs) {
    FARM_LOG(INFO) << log_prefix_ << " artifacts: \"" << glob << "\" matched no file";
  }
  for (const std::string& note : matches.skipped) {
    FARM_LOG(WARNING) << log_prefix_ << " artifacts: skipped " << note;
  }
  FARM_RETURN_IF_ERROR(HashArtifacts(matches.files));
  std::vector<farm::v1::Artifact> artifacts = ToArtifactProtos(matches.files);
  google::protobuf::RepeatedPtrField<farm::v1::Artifact> list(artifacts.begin(), artifacts.end());
  FARM_RETURN_IF_ERROR(common::ValidateArtifacts(list));
  if (!matches.files.empty()) {
    if (context_.cas == nullptr) return absl::FailedPreconditionError("this agent has no CAS");
    FARM_ASSIGN_OR_RETURN(const UploadStats stats,
                          UploadArtifacts(*context_.cas, matches.files, &upload_canceller_));
    FARM_LOG(INFO) << log_prefix_ << " artifacts: " << stats.files << " files, " << stats.blobs
                   << " distinct, " << stats.uploaded_blobs << " uploaded (" << stats.uploaded_bytes
                   << " bytes) in " << common::FormatDurationMs(MonoMs() - started);
  }
  *complete.mutable_artifacts() = std::move(list);
  return absl::OkStatus();
}

absl::Status AttemptRunner::StageJobInputs(const std::string& workspace, int64_t job_started_ms,
                                           AttemptOutcome* outcome) {
  *outcome = farm::v1::ATTEMPT_FAILED;
  if (context_.blob_cache == nullptr) {
    return absl::FailedPreconditionError("this agent has no CAS to fetch inputs from");
  }
  // The job's timeout bounds the staging too: a watchdog ends the downloads when it expires.
  const int64_t job_timeout_ms = job_.spec().timeout_ms();
  absl::Notification staged;
  std::atomic<bool> timed_out{false};
  std::thread watchdog;
  if (job_timeout_ms > 0) {
    const int64_t left = std::max<int64_t>(0, job_started_ms + job_timeout_ms - MonoMs());
    watchdog = std::thread([this, &staged, &timed_out, left] {
      if (!staged.WaitForNotificationWithTimeout(absl::Milliseconds(left))) {
        timed_out = true;
        staging_canceller_.Cancel();
      }
    });
  }
  const int64_t started = MonoMs();
  const absl::StatusOr<StagingStats> stats =
      StageInputs(job_.inputs(), workspace, *context_.blob_cache, &staging_canceller_);
  staged.Notify();
  if (watchdog.joinable()) watchdog.join();
  if (stats.ok()) {
    FARM_LOG(INFO) << log_prefix_ << " inputs: " << stats->files << " files, " << stats->bytes
                   << " bytes staged in " << common::FormatDurationMs(MonoMs() - started);
    return absl::OkStatus();
  }
  {
    absl::MutexLock lock(&mu_);
    if (cancelled_) {
      *outcome = farm::v1::ATTEMPT_CANCELLED;
      return absl::CancelledError(cancel_reason_);
    }
  }
  if (timed_out) {
    return absl::DeadlineExceededError(absl::StrCat("job timed out after ",
                                                    common::FormatDurationMs(job_timeout_ms),
                                                    " while staging its inputs"));
  }
  return stats.status();
}

AttemptOutcome AttemptRunner::Run() {
  const farm::v1::JobSpec& spec = job_.spec();
  FARM_LOG(INFO) << log_prefix_ << " leased job \"" << spec.name() << "\" (" << spec.steps_size()
                 << " steps, epoch " << lease_.epoch() << ")";

  AttemptOutcome outcome = farm::v1::ATTEMPT_SUCCEEDED;
  std::string reason;
  absl::StatusOr<Workspace> workspace =
      Workspace::Create(context_.work_dir, lease_.job_id(), lease_.attempt());
  if (!workspace.ok()) {
    FARM_LOG(ERROR) << log_prefix_ << " " << workspace.status();
    outcome = farm::v1::ATTEMPT_FAILED;
    reason = std::string(workspace.status().message());
  }

  // The job's timeout runs from here: staging its inputs counts.
  const int64_t job_started_ms = MonoMs();
  bool staged = true;  // false: the inputs could not be staged, no step runs
  if (workspace.ok() && job_.inputs_size() > 0) {
    AttemptOutcome staging_outcome = farm::v1::ATTEMPT_FAILED;
    const absl::Status status = StageJobInputs(workspace->path(), job_started_ms, &staging_outcome);
    if (!status.ok()) {
      staged = false;
      outcome = staging_outcome;
      reason = std::string(status.message());
      if (!abandoned()) FARM_LOG(ERROR) << log_prefix_ << " " << status;
    }
  }

  // Output the coordinator has not acknowledged yet (a partition) spills to the work dir, next
  // to the workspaces (named <job>-<attempt>-<hex>) rather than in one: steps never see it.
  LogSender::Options log_options = context_.log_options;
  if (log_options.spill_dir.empty() && !context_.work_dir.empty()) {
    log_options.spill_dir = absl::StrCat(context_.work_dir, "/", kLogSpillDirName);
  }
  LogSender log_sender(context_.client, lease_, log_prefix_, context_.reregister, log_options);
  log_sender.Start();
  {
    absl::MutexLock lock(&mu_);
    log_sender_ = &log_sender;
    if (abandoned_) log_sender.Abort();
  }

  const int64_t job_timeout_ms = spec.timeout_ms();
  bool failed = false;  // a step failed or timed out: WHEN_ON_FAILURE steps run from now on
  farm::v1::StepReport last_step;  // set when the last step's result goes with CompleteJob
  for (int i = 0; workspace.ok() && staged && i < spec.steps_size(); ++i) {
    // After a cancel or once the lease is gone nothing runs, not even WHEN_ALWAYS steps: the
    // user (or the agent's drain timeout) asked for the job to stop, and a lost lease is no
    // longer ours to run anything under.
    if (abandoned()) break;
    {
      absl::MutexLock lock(&mu_);
      if (cancelled_) {
        outcome = farm::v1::ATTEMPT_CANCELLED;
        reason = cancel_reason_;
        break;
      }
    }
    const std::string name = StepName(spec, i);
    if (!ShouldRun(spec.steps(i).when(), failed)) {
      // Reported STEP_SKIPPED by the coordinator when the attempt completes.
      FARM_LOG(INFO) << log_prefix_ << " step " << name << ": skipped ("
                     << farm::v1::StepWhen_Name(spec.steps(i).when()) << ", "
                     << (failed ? "a step failed" : "no step failed") << ")";
      continue;
    }
    const int64_t now = MonoMs();
    // The tighter of the step's timeout and what is left of the job's.
    int64_t timeout_ms = spec.steps(i).timeout_ms();
    bool job_bound = false;
    if (job_timeout_ms > 0) {
      const int64_t left = job_started_ms + job_timeout_ms - now;
      if (left <= 0) {
        // The job's timeout bounds everything, cleanup steps too: a WHEN_ALWAYS or
        // WHEN_ON_FAILURE step does not run once it has expired (it would have no time to).
        outcome = farm::v1::ATTEMPT_FAILED;
        if (!failed) {
          reason = absl::StrCat("job timed out after ", common::FormatDurationMs(job_timeout_ms));
        }
        break;
      }
      if (timeout_ms == 0 || left < timeout_ms) {
        timeout_ms = left;
        job_bound = true;
      }
    }

    farm::v1::StepResult result;
    result.set_name(name);
    result.set_started_ms(context_.clock->NowMs());
    farm::v1::StepStartedRequest started;
    *started.mutable_lease() = lease_;
    started.set_step_index(i);
    started.set_started_ms(result.started_ms());
    // The step starts without waiting for the coordinator to record that it did (a durable
    // write): the report is sent once the program runs (so that it does not compete with
    // starting it), alongside the step; a refusal abandons the attempt, which kills the step.
    // It is joined before the step's result is reported, so reports stay in order; a step that
    // failed to start is reported started, then failed.
    auto report_started = [&] {
      return Report("StepStarted",
                    [&] { return context_.client->StepStarted(started, &canceller_); });
    };
    std::future<absl::Status> started_report;
    const StepCommand command = MakeCommand(i, name, workspace->path(), timeout_ms);
    const StepOutcome step = step_runner_.Run(
        command,
        [&](int64_t offset, absl::string_view data) { log_sender.Append(i, offset, data); },
        [&] { started_report = std::async(std::launch::async, report_started); });
    const absl::Status started_status =
        started_report.valid() ? started_report.get() : report_started();
    if (!started_status.ok()) break;
    const StepVerdict verdict = Judge(name, step, job_bound, timeout_ms);
    FARM_LOG(INFO) << log_prefix_ << " step " << name << ": "
                   << (verdict.message.empty() ? "succeeded" : verdict.message) << " in "
                   << common::FormatDurationMs(step.duration_ms) << ", " << step.output_bytes
                   << " output bytes";
    if (abandoned()) break;

    // The step's report must not overtake its output.
    absl::Status flushed = log_sender.Flush(i);
    if (!flushed.ok()) {
      if (flushed.code() == absl::StatusCode::kFailedPrecondition) {
        Abandon(absl::StrCat("log upload refused, the lease is stale: ", flushed.message()));
      }
      break;
    }

    result.set_state(verdict.state);
    result.set_exit_code(step.exit_code);
    result.set_signal(step.signal);
    result.set_duration_ms(step.duration_ms);
    result.set_log_bytes(step.output_bytes);
    result.set_message(verdict.message);
    if (i + 1 == spec.steps_size() && spec.artifacts_size() == 0 &&
        context_.complete_with_last_step) {
      // Nothing happens between the last step and the completion: its result goes with
      // CompleteJob, a round trip (and a durable write) fewer.
      last_step.set_step_index(i);
      *last_step.mutable_result() = result;
    } else {
      farm::v1::StepFinishedRequest finished;
      *finished.mutable_lease() = lease_;
      finished.set_step_index(i);
      *finished.mutable_result() = result;
      if (!Report("StepFinished", [&] {
             return context_.client->StepFinished(finished, &canceller_);
           }).ok()) {
        break;
      }
    }
    if (verdict.state == farm::v1::STEP_CANCELLED) {
      outcome = farm::v1::ATTEMPT_CANCELLED;
      reason = verdict.reason;
      break;
    }
    if (verdict.state != farm::v1::STEP_SUCCEEDED) {
      // The first failure is the attempt's: later steps (cleanup) cannot make it succeed, and
      // their own failures are on their step results.
      outcome = farm::v1::ATTEMPT_FAILED;
      if (!failed) reason = verdict.reason;
      failed = true;
      // Nothing runs after the job's timeout (see above).
      if (verdict.state == farm::v1::STEP_TIMED_OUT && job_bound) break;
    }
  }

  if (abandoned()) {
    log_sender.Abort();
  }
  log_sender.Stop();
  {
    absl::MutexLock lock(&mu_);
    log_sender_ = nullptr;
  }

  farm::v1::CompleteJobRequest complete;
  const bool want_artifacts = staged && spec.artifacts_size() > 0 &&
                              (outcome == farm::v1::ATTEMPT_SUCCEEDED ||
                               (outcome == farm::v1::ATTEMPT_FAILED &&
                                spec.artifacts_when() == farm::v1::ARTIFACTS_ALWAYS));
  if (workspace.ok() && want_artifacts && !abandoned()) {
    absl::Status collected = CollectArtifacts(workspace->path(), complete);
    if (!collected.ok() && !abandoned()) {
      complete.clear_artifacts();
      absl::MutexLock lock(&mu_);
      if (cancelled_) {
        outcome = farm::v1::ATTEMPT_CANCELLED;
        reason = cancel_reason_;
      } else {
        FARM_LOG(ERROR) << log_prefix_ << " artifacts: " << collected;
        outcome = farm::v1::ATTEMPT_FAILED;
        reason =
            absl::StrCat(reason, reason.empty() ? "" : "; ", "artifacts: ", collected.message());
      }
    }
  }

  if (!abandoned()) {
    *complete.mutable_lease() = lease_;
    complete.set_outcome(outcome);
    complete.set_reason(reason);
    if (last_step.has_result()) *complete.mutable_last_step() = last_step;
    const absl::Status completed = Report("CompleteJob", [&] {
      absl::Status status = context_.client->CompleteJob(complete, &canceller_);
      // NOT_FOUND about the artifacts: a blob the agent uploaded is gone from the CAS (evicted
      // in between). The attempt ends FAILED without them rather than being lost and rerun.
      if (status.code() == absl::StatusCode::kNotFound && !IsNotRegistered(status) &&
          !complete.artifacts().empty()) {
        FARM_LOG(ERROR) << log_prefix_ << " the coordinator refused the artifacts: " << status;
        complete.clear_artifacts();
        complete.set_outcome(farm::v1::ATTEMPT_FAILED);
        complete.set_reason(absl::StrCat(complete.reason(), complete.reason().empty() ? "" : "; ",
                                         "artifacts: ", status.message()));
        outcome = farm::v1::ATTEMPT_FAILED;
        reason = complete.reason();
        status = context_.client->CompleteJob(complete, &canceller_);
      }
      return status;
    });
    if (completed.ok()) {
      // The coordinator has the result: a late "lease no longer valid" is about this very
      // completion and must not turn the attempt into a lost one.
      absl::MutexLock lock(&mu_);
      reported_ = true;
    }
  }
  const bool lost = abandoned();
  if (lost) outcome = farm::v1::ATTEMPT_LOST;

  if (workspace.ok()) {
    if (outcome == farm::v1::ATTEMPT_FAILED && context_.keep_failed) {
      FARM_LOG(INFO) << log_prefix_
                     << " keeping the workspace of the failed attempt: " << workspace->path();
    } else if (absl::Status removed = workspace->Remove(); !removed.ok()) {
      FARM_LOG(WARNING) << log_prefix_ << " " << removed;
    }
  }
  FARM_LOG(INFO) << log_prefix_ << " attempt ended: " << farm::v1::AttemptOutcome_Name(outcome)
                 << (reason.empty() ? "" : absl::StrCat(" (", reason, ")"));
  return outcome;
}

}  // namespace farm::agent
