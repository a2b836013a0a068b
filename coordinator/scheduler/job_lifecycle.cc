#include "coordinator/scheduler/job_lifecycle.h"

#include "absl/strings/str_cat.h"
#include "common/job_state.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "coordinator/scheduler/job_records.h"
#include "coordinator/store/keys.h"

namespace farm::coordinator {
namespace {

using farm::v1::Job;
using farm::v1::JobState;

bool Legal(JobState from, JobState to) {
  switch (from) {
    case farm::v1::JOB_STATE_UNSPECIFIED:
      return to == farm::v1::WAITING || to == farm::v1::QUEUED;
    case farm::v1::WAITING:
      return to == farm::v1::WAITING || to == farm::v1::QUEUED || to == farm::v1::SUCCEEDED ||
             to == farm::v1::CANCELLED || to == farm::v1::SKIPPED || to == farm::v1::FAILED;
    case farm::v1::QUEUED:
      return to == farm::v1::RUNNING || to == farm::v1::CANCELLED;
    case farm::v1::RUNNING:
      return to == farm::v1::QUEUED || to == farm::v1::SUCCEEDED || to == farm::v1::FAILED ||
             to == farm::v1::CANCELLED;
    default:
      return false;  // final states are final
  }
}

// The cascade's failures fail the whole group; a client retries the call.
absl::Status Abandoned(const absl::Status& cause) {
  return absl::UnavailableError(absl::StrCat(
      "the change could not be completed and nothing of it was written: ", cause.message()));
}

}  // namespace

void JobLifecycle::NotifyAfterCommit(Txn& txn, uint64_t seq) {
  txn.OnCommit([hub = p_.hub, seq](const absl::Status& s) {
    if (s.ok()) hub->Notify(seq);
  });
}

uint64_t JobLifecycle::AppendEvents(Txn& txn, const Job& job, JobState from, int64_t now) {
  const JobState to = job.state();
  if (from == farm::v1::JOB_STATE_UNSPECIFIED) {
    farm::v1::Event submitted = p_.events->ForJob(txn, job, farm::v1::JOB_SUBMITTED);
    submitted.set_job_name(job.spec().name());
    p_.events->Append(txn, std::move(submitted));
  }
  farm::v1::EventKind kind = farm::v1::JOB_ENDED;
  if (to == farm::v1::QUEUED) kind = farm::v1::JOB_QUEUED;
  if (to == farm::v1::WAITING) kind = farm::v1::JOB_WAITING;
  if (to == farm::v1::RUNNING) kind = farm::v1::JOB_LEASED;
  farm::v1::Event event = p_.events->ForJob(txn, job, kind);
  event.set_time_ms(now);  // the instant the record carries (started_ms, finished_ms)
  if (!job.reason().empty()) event.set_reason(job.reason());
  if (!job.attempts().empty()) {
    const farm::v1::Attempt& at = job.attempts(job.attempts_size() - 1);
    event.set_attempt(at.number());
    if (kind == farm::v1::JOB_LEASED) {
      event.set_agent(at.agent());
      event.set_epoch(at.epoch());
      if (at.started_ms() > 0) event.set_time_ms(at.started_ms());  // as the attempt says
    }
  }
  const uint64_t labelset = event.labelset();
  p_.events->Append(txn, std::move(event));
  return labelset;
}

absl::Status JobLifecycle::Transition(Txn& txn, Job& job, JobState to, std::string reason) {
  const JobState from = job.state();
  if (!Legal(from, to)) {
    absl::Status bug = absl::InternalError(absl::StrCat(
        "job ", job.id(), ": illegal transition ", JobState_Name(from), " -> ", JobState_Name(to)));
    FARM_LOG(ERROR) << bug;
    txn.Fail(bug);
    return bug;
  }
  const int64_t now = p_.clock->NowMs();
  if (p_.counts != nullptr) p_.counts->Moved(txn, from, to);
  job.set_state(to);
  job.set_reason(std::move(reason));
  if (to == farm::v1::RUNNING && job.started_ms() == 0) job.set_started_ms(now);
  if (to == farm::v1::QUEUED) job.set_queued_ms(now);
  if (common::IsTerminal(to)) job.set_finished_ms(now);
  if (from == farm::v1::WAITING) txn.Delete(Cf::kWaiting, keys::JobKey(job.seq()));
  if (from == farm::v1::QUEUED && to != farm::v1::RUNNING) p_.queue->Remove(txn, job);
  if (to == farm::v1::QUEUED) p_.queue->Add(txn, job);
  jobs::Put(txn, job);
  const uint64_t labelset = AppendEvents(txn, job, from, now);
  if (p_.flow != nullptr) p_.flow->Transitioned(txn, job, labelset, from, now);
  NotifyAfterCommit(txn, job.seq());
  if (!common::IsTerminal(to)) return absl::OkStatus();
  if (p_.retention != nullptr) {
    if (absl::Status s = p_.retention->OnJobEnded(txn, job); !s.ok()) {
      FARM_LOG(ERROR) << "[job=" << job.id() << "] indexing it for retention failed: " << s;
      s = Abandoned(s);
      txn.Fail(s);
      return s;
    }
  }
  ended_.push_back(
      Ended{job.seq(), job.spec().concurrency_group(), job.pipeline_id(), job.pipeline_job()});
  if (cascading_) return absl::OkStatus();  // the running cascade takes it on
  cascading_ = true;
  absl::Status s = RunCascade(txn);
  cascading_ = false;
  ended_.clear();
  if (!s.ok()) {
    FARM_LOG(ERROR) << "[job=" << job.id() << "] the cascade after it ended failed: " << s;
    s = Abandoned(s);
    txn.Fail(s);
  }
  return s;
}

absl::Status JobLifecycle::RunCascade(Txn& txn) {
  while (!ended_.empty()) {
    Ended ended = std::move(ended_.front());
    ended_.pop_front();
    FARM_RETURN_IF_ERROR(EndCascade(txn, ended));
  }
  return absl::OkStatus();
}

absl::Status JobLifecycle::EndCascade(Txn& txn, const Ended& ended) {
  FARM_ASSIGN_OR_RETURN(std::vector<Job> admitted, p_.groups->Release(txn, ended.group, ended.seq));
  for (Job& job : admitted) {
    if (job.spec().steps_size() > 0 || job.attempts_size() > 0) {
      FARM_RETURN_IF_ERROR(Transition(txn, job, farm::v1::QUEUED, ""));
    } else {
      job.set_started_ms(p_.clock->NowMs());
      FARM_RETURN_IF_ERROR(Transition(txn, job, farm::v1::SUCCEEDED, "no steps to run"));
    }
  }
  if (ended.pipeline_id.empty()) return absl::OkStatus();
  FARM_ASSIGN_OR_RETURN(std::vector<NeedsDecision> decisions,
                        p_.pipelines->Resolve(txn, ended.pipeline_id, ended.pipeline_job));
  for (NeedsDecision& d : decisions) {
    if (d.end != farm::v1::JOB_STATE_UNSPECIFIED) {
      FARM_RETURN_IF_ERROR(Transition(txn, d.job, d.end, std::move(d.reason)));
    } else {
      FARM_RETURN_IF_ERROR(MakeReady(txn, d.job));
    }
  }
  return absl::OkStatus();
}

absl::Status JobLifecycle::Submit(Txn& txn, Job& job, std::string waiting_reason) {
  if (job.needs().empty()) return MakeReady(txn, job);
  FARM_RETURN_IF_ERROR(Transition(txn, job, farm::v1::WAITING, std::move(waiting_reason)));
  txn.Put(Cf::kWaiting, keys::JobKey(job.seq()), "");
  return absl::OkStatus();
}

absl::Status JobLifecycle::MakeReady(Txn& txn, Job& job) {
  std::string reason;
  if (!p_.groups->Admit(txn, job, &reason)) {
    return Transition(txn, job, farm::v1::WAITING, std::move(reason));
  }
  if (job.spec().steps_size() > 0 || job.attempts_size() > 0) {
    return Transition(txn, job, farm::v1::QUEUED, "");
  }
  // A pipeline job without steps (a gate) succeeds as soon as it may run.
  job.set_started_ms(p_.clock->NowMs());
  return Transition(txn, job, farm::v1::SUCCEEDED, "no steps to run");
}

absl::Status JobLifecycle::CancelNotRunning(Txn& txn, Job& job) {
  if (job.state() == farm::v1::WAITING) FARM_RETURN_IF_ERROR(p_.groups->Withdraw(txn, job));
  job.set_cancel_requested(true);
  farm::v1::Event requested = p_.events->ForJob(txn, job, farm::v1::JOB_CANCEL_REQUESTED);
  p_.events->Append(txn, std::move(requested));
  return Transition(txn, job, farm::v1::CANCELLED, "cancelled by user");
}

void JobLifecycle::Record(Txn& txn, const Job& job, farm::v1::Event event) {
  jobs::Put(txn, job);
  p_.events->Append(txn, std::move(event));
  NotifyAfterCommit(txn, job.seq());
}

}  // namespace farm::coordinator
