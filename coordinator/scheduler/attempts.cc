#include "coordinator/scheduler/attempts.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/job_state.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "coordinator/scheduler/job_records.h"
#include "coordinator/scheduler/step_fingerprint.h"
#include "coordinator/store/keys.h"

namespace farm::coordinator {

using farm::v1::Attempt;
using farm::v1::Job;

namespace {

// Lease checks for a caller: an agent's calls must name its own leases; "" (an admin, or a
// farm without authentication) may name any.
const std::string* HolderOrAny(const std::string& holder) {
  return holder.empty() ? nullptr : &holder;
}

}  // namespace

absl::StatusOr<int64_t> AttemptTracker::AppendLog(Txn& txn, const farm::v1::LogUploadChunk& chunk,
                                                  const std::string& holder) {
  FARM_ASSIGN_OR_RETURN(Lease * lease, p_.leases->Check(chunk.lease(), HolderOrAny(holder)));
  FARM_ASSIGN_OR_RETURN(LogIngest::Accepted accepted,
                        p_.logs->Accept(lease->job.seq(), lease->attempt, chunk.step_index(),
                                        chunk.offset(), chunk.data()));
  if (accepted.input_record.has_value()) {
    txn.PutBlind(Cf::kMeta, std::move(accepted.input_record->first),
                 std::move(accepted.input_record->second));
  }
  if (accepted.record.has_value()) {
    txn.PutBlind(Cf::kLogs, std::move(accepted.record->first), std::move(accepted.record->second));
    p_.lifecycle->NotifyAfterCommit(txn, lease->job.seq());
  }
  return accepted.committed;
}

absl::StatusOr<std::pair<Lease*, farm::v1::StepResult*>> AttemptTracker::LeasedStep(
    const farm::v1::LeaseRef& ref, uint32_t step_index, const std::string& holder) {
  FARM_ASSIGN_OR_RETURN(Lease * lease, p_.leases->Check(ref, HolderOrAny(holder)));
  Attempt* at = lease->job.mutable_attempts(lease->job.attempts_size() - 1);
  if (step_index >= static_cast<uint32_t>(at->steps_size())) {
    return absl::InvalidArgumentError(absl::StrCat("step_index ", step_index, " is out of range"));
  }
  return std::make_pair(lease, at->mutable_steps(static_cast<int>(step_index)));
}

absl::Status AttemptTracker::StepStarted(Txn& txn, const farm::v1::StepStartedRequest& req,
                                         const std::string& holder) {
  FARM_ASSIGN_OR_RETURN(auto leased, LeasedStep(req.lease(), req.step_index(), holder));
  auto [lease, step] = leased;
  if (step->state() != farm::v1::STEP_PENDING) return absl::OkStatus();
  step->set_state(farm::v1::STEP_RUNNING);
  step->set_started_ms(req.started_ms() > 0 ? req.started_ms() : p_.clock->NowMs());
  const Job& job = lease->job;
  jobs::PutProgress(txn, job.seq(), job.attempts(job.attempts_size() - 1));
  AppendStepStarted(txn, *lease, req.step_index(), step->name());
  p_.lifecycle->NotifyAfterCommit(txn, job.seq());
  return absl::OkStatus();
}

void AttemptTracker::AppendStepStarted(Txn& txn, const Lease& lease, uint32_t step_index,
                                       const std::string& step) {
  farm::v1::Event event = p_.events->ForJob(txn, lease.job, farm::v1::STEP_STARTED);
  event.set_attempt(lease.attempt);
  event.set_agent(lease.holder);
  event.set_step_index(step_index);
  event.set_step(step);
  p_.events->Append(txn, std::move(event));
}

absl::StatusOr<Lease*> AttemptTracker::RecordStepResult(Txn& txn, const farm::v1::LeaseRef& ref,
                                                        uint32_t step_index,
                                                        const farm::v1::StepResult& result,
                                                        const std::string& holder) {
  FARM_ASSIGN_OR_RETURN(auto leased, LeasedStep(ref, step_index, holder));
  auto [lease, step] = leased;
  if (!common::StepDone(result.state())) {
    return absl::InvalidArgumentError("a finished step needs a final state");
  }
  std::string name = step->name();
  if (step->state() == farm::v1::STEP_PENDING) {
    // It ended before its agent said it started (agents do not report very short steps).
    AppendStepStarted(txn, *lease, step_index, name);
  }
  *step = result;
  step->set_name(name);
  if (std::optional<LogIngest::Record> held = p_.logs->FinishStep(lease->job.seq(), step_index)) {
    txn.PutBlind(Cf::kLogs, std::move(held->first), std::move(held->second));
  }
  farm::v1::Event event = p_.events->ForJob(txn, lease->job, farm::v1::STEP_FINISHED);
  event.set_attempt(lease->attempt);
  event.set_agent(lease->holder);
  event.set_step_index(step_index);
  event.set_step(std::move(name));
  event.set_step_state(result.state());
  event.set_exit_code(result.exit_code());
  event.set_reason(result.message());
  event.set_duration_ms(result.duration_ms());
  event.set_step_fingerprint(StepFingerprint(lease->job, static_cast<int>(step_index)));
  p_.events->Append(txn, std::move(event));
  return lease;
}

absl::Status AttemptTracker::StepFinished(Txn& txn, const farm::v1::StepFinishedRequest& req,
                                          const std::string& holder) {
  FARM_ASSIGN_OR_RETURN(Lease * lease,
                        RecordStepResult(txn, req.lease(), req.step_index(), req.result(), holder));
  const Job& job = lease->job;
  jobs::PutProgress(txn, job.seq(), job.attempts(job.attempts_size() - 1));
  p_.lifecycle->NotifyAfterCommit(txn, job.seq());
  return absl::OkStatus();
}

absl::StatusOr<bool> AttemptTracker::Complete(Txn& txn, const farm::v1::CompleteJobRequest& req,
                                              const std::string& holder) {
  absl::StatusOr<Lease*> lease = p_.leases->Check(req.lease(), HolderOrAny(holder));
  if (!lease.ok()) {
    // A retry of a completion that was accepted is accepted again, and changes nothing.
    const std::optional<uint64_t> seq = keys::ParseJobId(req.lease().job_id());
    if (!seq.has_value() || !absl::IsFailedPrecondition(lease.status())) return lease.status();
    FARM_ASSIGN_OR_RETURN(std::optional<Job> job, jobs::Load(txn, *seq));
    if (job.has_value() && !job->attempts().empty()) {
      const Attempt& last = job->attempts(job->attempts_size() - 1);
      if (last.epoch() == req.lease().epoch() && last.outcome() == req.outcome()) return false;
    }
    return lease.status();
  }
  const uint64_t seq = (*lease)->job.seq();
  const std::string agent = (*lease)->holder;
  if (req.has_last_step()) {
    // Only memory changes here; EndAttempt writes the job with it.
    FARM_RETURN_IF_ERROR(RecordStepResult(txn, req.lease(), req.last_step().step_index(),
                                          req.last_step().result(), holder)
                             .status());
  }
  FARM_LOG(INFO) << "[job=" << seq << " attempt=" << req.lease().attempt() << " agent=" << agent
                 << "] ended: " << farm::v1::AttemptOutcome_Name(req.outcome())
                 << (req.reason().empty() ? "" : " (" + req.reason() + ")");
  FARM_RETURN_IF_ERROR(EndAttempt(txn, seq, req.outcome(), req.reason(), &req.artifacts()));
  return true;
}

bool AttemptTracker::RetriesAfterFailure(const Job& job) {
  const farm::v1::RetryPolicy& retry = job.spec().retry();
  if (retry.max_attempts() <= 1 || job.cancel_requested() || job.attempts().empty()) return false;
  int failed = 0;  // lost attempts have retries of their own
  for (const auto& a : job.attempts()) failed += a.outcome() == farm::v1::ATTEMPT_FAILED;
  if (failed >= retry.max_attempts()) return false;
  if (retry.on_exit_codes().empty()) return true;
  const Attempt& last = job.attempts(job.attempts_size() - 1);
  for (const farm::v1::StepResult& step : last.steps()) {
    if (step.state() == farm::v1::STEP_FAILED || step.state() == farm::v1::STEP_TIMED_OUT) {
      if (step.state() != farm::v1::STEP_FAILED || step.signal() != 0) return false;
      const auto& codes = retry.on_exit_codes();
      return std::find(codes.begin(), codes.end(), step.exit_code()) != codes.end();
    }
  }
  return false;
}

farm::v1::JobState AttemptTracker::NextState(const Job& job, farm::v1::AttemptOutcome outcome,
                                             const std::string& reason,
                                             std::string* job_reason) const {
  *job_reason = reason;
  switch (outcome) {
    case farm::v1::ATTEMPT_SUCCEEDED:
      return farm::v1::SUCCEEDED;
    case farm::v1::ATTEMPT_CANCELLED:
      return farm::v1::CANCELLED;
    case farm::v1::ATTEMPT_LOST: {
      if (job.cancel_requested()) {
        *job_reason = "cancelled by user";
        return farm::v1::CANCELLED;
      }
      int lost = 0;
      for (const auto& a : job.attempts()) lost += a.outcome() == farm::v1::ATTEMPT_LOST;
      if (lost <= p_.agent_loss_retries) {
        *job_reason = absl::StrCat("requeued: ", reason);
        return farm::v1::QUEUED;
      }
      *job_reason = absl::StrCat("agent_lost: ", reason);
      return farm::v1::FAILED;
    }
    default:
      if (RetriesAfterFailure(job)) {
        *job_reason = absl::StrCat("retrying: ", reason);
        return farm::v1::QUEUED;
      }
      return farm::v1::FAILED;
  }
}

absl::Status AttemptTracker::EndAttempt(
    Txn& txn, uint64_t seq, farm::v1::AttemptOutcome outcome, const std::string& reason,
    const google::protobuf::RepeatedPtrField<farm::v1::Artifact>* artifacts) {
  std::optional<Lease> lease = p_.leases->Take(txn, seq);
  FARM_CHECK(lease.has_value());
  LogIngest::Ended logs = p_.logs->End(seq);
  for (LogIngest::Record& r : logs.logs)
    txn.PutBlind(Cf::kLogs, std::move(r.first), std::move(r.second));
  for (std::string& key : logs.meta_deletes) txn.Delete(Cf::kMeta, std::move(key));
  jobs::DeleteProgress(txn, seq);
  Job job = std::move(lease->job);
  const int64_t now = p_.clock->NowMs();
  Attempt* at = job.mutable_attempts(job.attempts_size() - 1);
  at->set_outcome(outcome);
  at->set_ended_ms(now);
  at->set_reason(reason);
  if (artifacts != nullptr) *at->mutable_artifacts() = *artifacts;
  for (auto& step : *at->mutable_steps()) {
    if (step.state() == farm::v1::STEP_RUNNING) {
      step.set_state(outcome == farm::v1::ATTEMPT_CANCELLED ? farm::v1::STEP_CANCELLED
                                                            : farm::v1::STEP_FAILED);
      if (step.started_ms() > 0) step.set_duration_ms(now - step.started_ms());
    } else if (!common::StepDone(step.state())) {
      step.set_state(farm::v1::STEP_SKIPPED);
    }
  }
  farm::v1::Event ended = p_.events->ForJob(txn, job, farm::v1::ATTEMPT_ENDED);
  ended.set_attempt(at->number());
  ended.set_agent(at->agent());
  ended.set_epoch(at->epoch());
  ended.set_outcome(outcome);
  ended.set_reason(reason);
  p_.events->Append(txn, std::move(ended));
  std::string job_reason;
  const farm::v1::JobState next = NextState(job, outcome, reason, &job_reason);
  if (common::IsTerminal(next)) *job.mutable_artifacts() = at->artifacts();
  return p_.lifecycle->Transition(txn, job, next, std::move(job_reason));
}

absl::Status AttemptTracker::ExpireLeases(Txn& txn) {
  for (uint64_t seq : p_.leases->Expired()) {
    const std::string agent = p_.leases->Find(seq)->holder;
    FARM_LOG(WARNING) << "[job=" << seq << " agent=" << agent << "] lease expired";
    if (p_.flow != nullptr) p_.flow->LeaseExpired(txn);
    FARM_RETURN_IF_ERROR(
        EndAttempt(txn, seq, farm::v1::ATTEMPT_LOST,
                   absl::StrCat("lease expired: agent ", agent, " stopped heartbeating")));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> AttemptTracker::RequestCancel(Txn& txn, uint64_t seq) {
  Lease* lease = p_.leases->Find(seq);
  if (lease == nullptr) {
    return absl::InternalError(absl::StrCat("job ", seq, " is RUNNING without a lease"));
  }
  lease->job.set_cancel_requested(true);
  farm::v1::Event event = p_.events->ForJob(txn, lease->job, farm::v1::JOB_CANCEL_REQUESTED);
  event.set_attempt(lease->attempt);
  event.set_agent(lease->holder);
  p_.lifecycle->Record(txn, lease->job, std::move(event));
  return lease->holder;
}

}  // namespace farm::coordinator
