// An operator's retry of a finished job or pipeline (intake.h: RetryJob, RetryPipeline).
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/job_state.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "coordinator/scheduler/intake.h"
#include "coordinator/scheduler/job_records.h"
#include "coordinator/store/keys.h"

namespace farm::coordinator {
namespace {

using farm::v1::Job;
using farm::v1::Pipeline;

bool Rerun(farm::v1::JobState state) {
  return state == farm::v1::FAILED || state == farm::v1::CANCELLED || state == farm::v1::SKIPPED;
}

// The jobs of `view` to run again: those that did not succeed and, transitively, every job that
// needs one of them. By name.
std::set<std::string> RerunSet(const Pipeline& view) {
  std::set<std::string> rerun;
  for (const farm::v1::PipelineJob& pj : view.jobs()) {
    if (Rerun(pj.state())) rerun.insert(pj.name());
  }
  for (bool grew = true; grew;) {
    grew = false;
    for (const farm::v1::PipelineJob& pj : view.jobs()) {
      if (rerun.count(pj.name()) > 0) continue;
      for (const std::string& need : pj.needs()) {
        if (rerun.count(need) > 0) {
          grew = rerun.insert(pj.name()).second;
          break;
        }
      }
    }
  }
  return rerun;
}

// Scopes an operator's request id by what it retries, so that one id cannot name two things.
std::string RetryRequestId(absl::string_view target, const std::string& request_id) {
  return request_id.empty() ? "" : absl::StrCat(target, "/", request_id);
}

}  // namespace

Job Intake::NewRetry(Txn& txn, Job& old) {
  const uint64_t seq = ++last_seq_;
  Job job;
  job.set_id(keys::JobId(seq));
  job.set_seq(seq);
  *job.mutable_spec() = old.spec();
  job.set_submitted_ms(p_.clock->NowMs());
  job.set_pipeline_id(old.pipeline_id());
  job.set_pipeline_job(old.pipeline_job());
  job.set_retry_of(old.id());
  old.set_retried_by(job.id());
  farm::v1::Event event = p_.events->ForJob(txn, old, farm::v1::JOB_RETRIED);
  event.set_reason(absl::StrCat("retried as job ", job.id()));
  p_.lifecycle->Record(txn, old, std::move(event));
  return job;
}

absl::StatusOr<farm::v1::RetryResponse> Intake::RetryJob(Txn& txn, uint64_t seq,
                                                         const std::string& request_id) {
  const std::string scoped = RetryRequestId(keys::JobId(seq), request_id);
  FARM_ASSIGN_OR_RETURN(std::optional<uint64_t> earlier,
                        p_.request_ids->Find(txn, RequestIds::Kind::kRetry, scoped));
  farm::v1::RetryResponse resp;
  if (earlier.has_value()) {
    FARM_ASSIGN_OR_RETURN(std::optional<Job> made, jobs::Load(txn, *earlier));
    if (!made.has_value()) return absl::InternalError("a request id names a missing job");
    resp.add_job_ids(made->id());
    *resp.mutable_job() = *std::move(made);
    resp.set_existing(true);
    return resp;
  }
  FARM_ASSIGN_OR_RETURN(std::optional<Job> old, jobs::Load(txn, seq));
  if (!old.has_value()) return absl::NotFoundError(absl::StrCat("job ", seq, " not found"));
  if (!common::IsTerminal(old->state())) {
    return absl::FailedPreconditionError(absl::StrCat("job ", old->id(), " is ",
                                                      farm::v1::JobState_Name(old->state()),
                                                      "; only finished jobs can be retried"));
  }
  if (!old->pipeline_id().empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", old->id(), " belongs to pipeline ", old->pipeline_id(),
                     "; retry the pipeline (farmctl admin retry ", old->pipeline_id(), ")"));
  }
  if (!old->retried_by().empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", old->id(), " was retried already, as job ", old->retried_by()));
  }
  Job job = NewRetry(txn, *old);
  p_.request_ids->Remember(txn, RequestIds::Kind::kRetry, scoped, job.seq(), job.submitted_ms());
  FARM_RETURN_IF_ERROR(p_.lifecycle->Submit(txn, job, ""));
  FARM_LOG(INFO) << "[job=" << old->id() << "] retried as job " << job.id();
  resp.add_job_ids(job.id());
  *resp.mutable_job() = std::move(job);
  return resp;
}

absl::StatusOr<farm::v1::RetryResponse> Intake::RetryPipeline(Txn& txn, uint64_t pseq,
                                                              const std::string& request_id) {
  const std::string scoped = RetryRequestId(keys::PipelineId(pseq), request_id);
  FARM_ASSIGN_OR_RETURN(std::optional<uint64_t> earlier,
                        p_.request_ids->Find(txn, RequestIds::Kind::kRetry, scoped));
  FARM_ASSIGN_OR_RETURN(std::optional<Pipeline> record, p_.pipelines->Load(txn, pseq));
  if (!record.has_value()) {
    return absl::NotFoundError(absl::StrCat("pipeline ", keys::PipelineId(pseq), " not found"));
  }
  farm::v1::RetryResponse resp;
  Pipeline view = *record;
  FARM_RETURN_IF_ERROR(FillView(txn, view));
  if (earlier.has_value()) {
    *resp.mutable_pipeline() = std::move(view);
    resp.set_existing(true);
    return resp;
  }
  if (!common::IsTerminal(view.state()) || view.state() == farm::v1::SUCCEEDED) {
    return absl::FailedPreconditionError(absl::StrCat(
        "pipeline ", view.id(), " is ", farm::v1::JobState_Name(view.state()),
        view.state() == farm::v1::SUCCEEDED ? "; it has nothing to retry"
                                            : "; only finished pipelines can be retried"));
  }
  const std::set<std::string> rerun = RerunSet(view);
  std::map<std::string, std::string> current;  // job name → the id that runs it now
  std::vector<Job> created;
  for (farm::v1::PipelineJob& pj : *record->mutable_jobs()) {
    current[pj.name()] = pj.job_id();
    if (rerun.count(pj.name()) == 0) continue;
    FARM_ASSIGN_OR_RETURN(std::optional<Job> old,
                          jobs::Load(txn, keys::ParseJobId(pj.job_id()).value_or(0)));
    if (!old.has_value()) {
      return absl::DataLossError(absl::StrCat("job ", pj.job_id(), " of ", view.id(), " is gone"));
    }
    created.push_back(NewRetry(txn, *old));
    pj.set_retry_of(old->id());
    pj.set_job_id(created.back().id());
    current[pj.name()] = pj.job_id();
  }
  for (Job& job : created) {
    for (const farm::v1::PipelineJob& pj : record->jobs()) {
      if (pj.job_id() != job.id()) continue;
      for (const std::string& need : pj.needs()) job.add_needs(current[need]);
    }
  }
  record->set_cancel_requested(false);
  record->set_retries(record->retries() + 1);
  record->set_retried_ms(p_.clock->NowMs());
  txn.Put(Cf::kPipelines, keys::JobKey(pseq), record->SerializeAsString());
  p_.request_ids->Remember(txn, RequestIds::Kind::kRetry, scoped, pseq, record->retried_ms());
  FARM_RETURN_IF_ERROR(SubmitRetried(txn, *record, created, rerun));
  FARM_LOG(INFO) << "[pipeline=" << view.id() << "] retried: " << created.size() << " jobs";
  for (const Job& job : created) resp.add_job_ids(job.id());
  *resp.mutable_pipeline() = *std::move(record);
  FARM_RETURN_IF_ERROR(FillView(txn, *resp.mutable_pipeline()));
  return resp;
}

absl::Status Intake::SubmitRetried(Txn& txn, const Pipeline& pipeline, std::vector<Job>& created,
                                   const std::set<std::string>& rerun) {
  // As at a submit: every job that waits is written before any is made ready.
  for (Job& job : created) {
    if (job.needs().empty()) continue;
    std::vector<std::string> names;
    for (const farm::v1::PipelineJob& pj : pipeline.jobs()) {
      if (pj.job_id() == job.id()) names.assign(pj.needs().begin(), pj.needs().end());
    }
    FARM_RETURN_IF_ERROR(
        p_.lifecycle->Submit(txn, job, absl::StrCat("waiting for ", absl::StrJoin(names, ", "))));
  }
  for (Job& job : created) {
    if (job.needs().empty()) FARM_RETURN_IF_ERROR(p_.lifecycle->Submit(txn, job, ""));
  }
  // A job whose needs all succeeded in the first run (none of them reruns) is ready now: no end
  // will resolve it.
  for (const Job& created_job : created) {
    const farm::v1::PipelineJob* pj = nullptr;
    for (const farm::v1::PipelineJob& p : pipeline.jobs()) {
      if (p.job_id() == created_job.id()) pj = &p;
    }
    if (pj == nullptr || pj->needs().empty()) continue;
    bool waits_on_rerun = false;
    for (const std::string& need : pj->needs()) waits_on_rerun |= rerun.count(need) > 0;
    if (waits_on_rerun) continue;
    FARM_ASSIGN_OR_RETURN(std::optional<Job> job, jobs::Load(txn, created_job.seq()));
    if (!job.has_value() || job->state() != farm::v1::WAITING) continue;
    FARM_ASSIGN_OR_RETURN(std::optional<NeedsDecision> d,
                          p_.pipelines->Decide(txn, pipeline, *std::move(job)));
    if (!d.has_value()) continue;
    if (d->end != farm::v1::JOB_STATE_UNSPECIFIED) {
      FARM_RETURN_IF_ERROR(p_.lifecycle->Transition(txn, d->job, d->end, std::move(d->reason)));
    } else {
      FARM_RETURN_IF_ERROR(p_.lifecycle->MakeReady(txn, d->job));
    }
  }
  return absl::OkStatus();
}

}  // namespace farm::coordinator
