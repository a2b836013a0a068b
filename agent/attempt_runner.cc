#include "agent/attempt_runner.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "agent/artifacts.h"
#include "agent/inputs.h"
#include "agent/steps_runner.h"
#include "common/duration.h"
#include "common/job_limits.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace farm::agent {
namespace {

using farm::v1::AttemptOutcome;

// How many times one call may make the agent register again before the attempt gives up:
// a coordinator that keeps forgetting the agent is not one to keep reporting to.
constexpr int kMaxReregistrations = 3;

// The Runner for `job`'s kind of work.
std::unique_ptr<Runner> MakeRunner(const AttemptContext& context, const farm::v1::Job& job) {
  switch (KindOf(job)) {
    case WorkKind::kSteps:
      return std::make_unique<StepsRunner>(context);
  }
  FARM_CHECK(false) << "no runner for work kind " << static_cast<int>(KindOf(job));
  return nullptr;
}

}  // namespace

AttemptRunner::AttemptRunner(
    const AttemptContext& context, farm::v1::LeaseRef lease, farm::v1::Job job,
    const google::protobuf::RepeatedPtrField<farm::v1::SecretValue>& secrets)
    : context_(context),
      lease_(std::move(lease)),
      job_(std::move(job)),
      log_prefix_(absl::StrCat("[job=", lease_.job_id(), " attempt=", lease_.attempt(),
                               " agent=", context_.agent_name, "]")),
      runner_(MakeRunner(context_, job_)),
      secrets_(JobSecrets::FromLease(job_.spec(), secrets)) {}

bool AttemptRunner::abandoned() const {
  absl::MutexLock lock(&mu_);
  return abandoned_;
}

std::optional<std::string> AttemptRunner::cancel_reason() const {
  absl::MutexLock lock(&mu_);
  if (!cancelled_) return std::nullopt;
  return cancel_reason_;
}

void AttemptRunner::Cancel(const std::string& reason) {
  {
    absl::MutexLock lock(&mu_);
    if (cancelled_ || abandoned_ || reported_) return;
    cancelled_ = true;
    cancel_reason_ = reason;
  }
  FARM_LOG(INFO) << log_prefix_ << " cancelling: " << reason;
  runner_->Stop();
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
  runner_->Stop();
  canceller_.Cancel();
  upload_canceller_.Cancel();
  staging_canceller_.Cancel();
}

void AttemptRunner::LeaseInvalid(const std::string& reason) {
  {
    absl::MutexLock lock(&mu_);
    if (completing_) return;
  }
  Abandon(reason);
}

absl::Status AttemptRunner::Report(const char* what, const Call& call) {
  absl::Status status;
  for (int i = 0;; ++i) {
    status = call(*context_.client, &canceller_);
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

AttemptOutcome AttemptRunner::Run() {
  FARM_LOG(INFO) << log_prefix_ << " leased job \"" << job_.spec().name() << "\" ("
                 << job_.spec().steps_size() << " steps, epoch " << lease_.epoch() << ")";
  WorkResult work;
  farm::v1::CompleteJobRequest complete;
  const int64_t leased_ms = context_.clock->MonotonicMs();
  const absl::StatusOr<Workspace> workspace = PrepareWorkspace(&work);
  // The job's timeout runs from here: staging its inputs counts.
  const int64_t job_started_ms = context_.clock->MonotonicMs();
  if (workspace.ok() && StageJobInputs(*workspace, job_started_ms, &work)) {
    if (context_.metrics != nullptr) {
      context_.metrics->step_start_seconds->Observe(
          static_cast<double>(context_.clock->MonotonicMs() - leased_ms) / 1000);
    }
    RunWork(workspace->path(), job_started_ms, &work);
    CollectArtifacts(*workspace, &work, &complete);
  }
  if (!abandoned()) Complete(&work, &complete);
  if (abandoned()) work.outcome = farm::v1::ATTEMPT_LOST;
  if (context_.metrics != nullptr && context_.metrics->attempts[work.outcome] != nullptr) {
    context_.metrics->attempts[work.outcome]->Add();
  }
  if (workspace.ok()) CleanUp(*workspace, work.outcome);
  FARM_LOG(INFO) << log_prefix_ << " attempt ended: " << farm::v1::AttemptOutcome_Name(work.outcome)
                 << (work.reason.empty() ? "" : absl::StrCat(" (", work.reason, ")"));
  return work.outcome;
}

absl::StatusOr<Workspace> AttemptRunner::PrepareWorkspace(WorkResult* work) {
  absl::StatusOr<Workspace> workspace =
      Workspace::Create(context_.work_dir, lease_.job_id(), lease_.attempt());
  if (!workspace.ok()) {
    FARM_LOG(ERROR) << log_prefix_ << " " << workspace.status();
    work->outcome = farm::v1::ATTEMPT_FAILED;
    work->reason = std::string(workspace.status().message());
  }
  return workspace;
}

bool AttemptRunner::StageJobInputs(const Workspace& workspace, int64_t job_started_ms,
                                   WorkResult* work) {
  if (job_.inputs_size() == 0) return true;
  auto fail = [&](AttemptOutcome outcome, const absl::Status& status) {
    work->outcome = outcome;
    work->reason = std::string(status.message());
    if (!abandoned()) FARM_LOG(ERROR) << log_prefix_ << " " << status;
    return false;
  };
  if (context_.blob_cache == nullptr) {
    return fail(farm::v1::ATTEMPT_FAILED,
                absl::FailedPreconditionError("this agent has no CAS to fetch inputs from"));
  }
  // The job's timeout bounds the staging too: a watchdog ends the downloads when it expires.
  const int64_t job_timeout_ms = job_.spec().timeout_ms();
  absl::Notification staged;
  std::atomic<bool> timed_out{false};
  std::thread watchdog;
  if (job_timeout_ms > 0) {
    const int64_t left =
        std::max<int64_t>(0, job_started_ms + job_timeout_ms - context_.clock->MonotonicMs());
    watchdog = std::thread([this, &staged, &timed_out, left] {
      if (!staged.WaitForNotificationWithTimeout(absl::Milliseconds(left))) {
        timed_out = true;
        staging_canceller_.Cancel();
      }
    });
  }
  const int64_t started = context_.clock->MonotonicMs();
  const absl::StatusOr<StagingStats> stats =
      StageInputs(job_.inputs(), *workspace.root(), *context_.blob_cache, &staging_canceller_);
  staged.Notify();
  if (watchdog.joinable()) watchdog.join();
  if (stats.ok()) {
    FARM_LOG(INFO) << log_prefix_ << " inputs: " << stats->files << " files, " << stats->bytes
                   << " bytes staged in "
                   << common::FormatDurationMs(context_.clock->MonotonicMs() - started);
    return true;
  }
  if (std::optional<std::string> reason = cancel_reason()) {
    return fail(farm::v1::ATTEMPT_CANCELLED, absl::CancelledError(*reason));
  }
  if (timed_out) {
    return fail(farm::v1::ATTEMPT_FAILED,
                absl::DeadlineExceededError(absl::StrCat("job timed out after ",
                                                         common::FormatDurationMs(job_timeout_ms),
                                                         " while staging its inputs")));
  }
  return fail(farm::v1::ATTEMPT_FAILED, stats.status());
}

void AttemptRunner::RunWork(const std::string& workspace, int64_t job_started_ms,
                            WorkResult* work) {
  if (!secrets_.ok()) {
    work->outcome = farm::v1::ATTEMPT_FAILED;
    work->reason = std::string(secrets_.status().message());
    FARM_LOG(ERROR) << log_prefix_ << " " << work->reason;
    return;
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
  *work = runner_->Run(*this, WorkSite{workspace, job_started_ms, &log_sender, &*secrets_});
  if (abandoned()) log_sender.Abort();
  log_sender.Stop();
  absl::MutexLock lock(&mu_);
  log_sender_ = nullptr;
}

void AttemptRunner::CollectArtifacts(const Workspace& workspace, WorkResult* work,
                                     farm::v1::CompleteJobRequest* complete) {
  const farm::v1::JobSpec& spec = job_.spec();
  const bool wanted =
      spec.artifacts_size() > 0 && (work->outcome == farm::v1::ATTEMPT_SUCCEEDED ||
                                    (work->outcome == farm::v1::ATTEMPT_FAILED &&
                                     spec.artifacts_when() == farm::v1::ARTIFACTS_ALWAYS));
  if (!wanted || abandoned()) return;
  const absl::Status collected = FindAndUploadArtifacts(workspace, complete);
  if (collected.ok() || abandoned()) return;
  complete->clear_artifacts();
  if (std::optional<std::string> reason = cancel_reason()) {
    work->outcome = farm::v1::ATTEMPT_CANCELLED;
    work->reason = *std::move(reason);
    return;
  }
  FARM_LOG(ERROR) << log_prefix_ << " artifacts: " << collected;
  work->outcome = farm::v1::ATTEMPT_FAILED;
  work->reason = absl::StrCat(work->reason, work->reason.empty() ? "" : "; ",
                              "artifacts: ", collected.message());
}

absl::Status AttemptRunner::FindAndUploadArtifacts(const Workspace& workspace,
                                                   farm::v1::CompleteJobRequest* complete) {
  const farm::v1::JobSpec& spec = job_.spec();
  const std::vector<std::string> globs(spec.artifacts().begin(), spec.artifacts().end());
  const int64_t started = context_.clock->MonotonicMs();
  FARM_ASSIGN_OR_RETURN(ArtifactMatches matches, FindArtifacts(workspace.root(), globs));
  for (const std::string& glob : matches.empty_globs) {
    FARM_LOG(INFO) << log_prefix_ << " artifacts: \"" << glob << "\" matched no file";
  }
  for (const std::string& note : matches.skipped) {
    FARM_LOG(WARNING) << log_prefix_ << " artifacts: skipped " << note;
  }
  FARM_RETURN_IF_ERROR(HashArtifacts(matches));
  std::vector<farm::v1::Artifact> artifacts = ToArtifactProtos(matches.files);
  google::protobuf::RepeatedPtrField<farm::v1::Artifact> list(artifacts.begin(), artifacts.end());
  FARM_RETURN_IF_ERROR(common::ValidateArtifacts(list));
  if (!matches.files.empty()) {
    if (context_.cas == nullptr) return absl::FailedPreconditionError("this agent has no CAS");
    FARM_ASSIGN_OR_RETURN(const UploadStats stats,
                          UploadArtifacts(*context_.cas, matches, &upload_canceller_));
    if (context_.metrics != nullptr) {
      context_.metrics->uploaded_blobs->Add(stats.uploaded_blobs);
      context_.metrics->uploaded_bytes->Add(stats.uploaded_bytes);
    }
    FARM_LOG(INFO) << log_prefix_ << " artifacts: " << stats.files << " files, " << stats.blobs
                   << " distinct, " << stats.uploaded_blobs << " uploaded (" << stats.uploaded_bytes
                   << " bytes) in "
                   << common::FormatDurationMs(context_.clock->MonotonicMs() - started);
  }
  *complete->mutable_artifacts() = std::move(list);
  return absl::OkStatus();
}

void AttemptRunner::Complete(WorkResult* work, farm::v1::CompleteJobRequest* complete) {
  *complete->mutable_lease() = lease_;
  complete->set_outcome(work->outcome);
  complete->set_reason(work->reason);
  if (work->last_step.has_value()) *complete->mutable_last_step() = *work->last_step;
  if (context_.lease_next && context_.lease_next()) {
    complete->set_lease_next(true);
    complete->set_agent(context_.agent_name);
    complete->set_session_id(context_.session_id);
  }
  farm::v1::CompleteJobResponse response;
  {
    absl::MutexLock lock(&mu_);
    completing_ = true;
  }
  auto call = [&](CoordinatorClient& client, CallCanceller* canceller) {
    absl::StatusOr<farm::v1::CompleteJobResponse> r = client.CompleteJob(*complete, canceller);
    if (r.ok()) response = *std::move(r);
    return r.status();
  };
  const absl::Status completed = Report("CompleteJob", [&](CoordinatorClient& client,
                                                           CallCanceller* canceller) {
    absl::Status status = call(client, canceller);
    // NOT_FOUND about the artifacts: a blob the agent uploaded is gone from the CAS
    // (evicted in between). The attempt ends FAILED without them rather than being lost
    // and rerun.
    if (status.code() == absl::StatusCode::kNotFound && !IsNotRegistered(status) &&
        !complete->artifacts().empty()) {
      FARM_LOG(ERROR) << log_prefix_ << " the coordinator refused the artifacts: " << status;
      complete->clear_artifacts();
      complete->set_outcome(farm::v1::ATTEMPT_FAILED);
      complete->set_reason(absl::StrCat(complete->reason(), complete->reason().empty() ? "" : "; ",
                                        "artifacts: ", status.message()));
      work->outcome = farm::v1::ATTEMPT_FAILED;
      work->reason = complete->reason();
      status = call(client, canceller);
    }
    return status;
  });
  if (completed.ok()) {
    // The coordinator has the result: a late "lease no longer valid" is about this very
    // completion and must not turn the attempt into a lost one.
    absl::MutexLock lock(&mu_);
    reported_ = true;
    if (response.has_next() && response.next().has_job()) next_lease_ = response.next();
  }
}

std::optional<farm::v1::LeaseResponse> AttemptRunner::TakeNextLease() {
  absl::MutexLock lock(&mu_);
  return std::exchange(next_lease_, std::nullopt);
}

void AttemptRunner::CleanUp(const Workspace& workspace, AttemptOutcome outcome) {
  if (outcome == farm::v1::ATTEMPT_FAILED && context_.keep_failed) {
    FARM_LOG(INFO) << log_prefix_
                   << " keeping the workspace of the failed attempt: " << workspace.path();
  } else if (absl::Status removed = workspace.Remove(); !removed.ok()) {
    FARM_LOG(WARNING) << log_prefix_ << " " << removed;
  }
}

}  // namespace farm::agent
