#include "coordinator/scheduler/intake.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/job_state.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "coordinator/scheduler/job_records.h"
#include "coordinator/store/keys.h"

namespace farm::coordinator {

using farm::v1::Job;
using farm::v1::Pipeline;

absl::Status Intake::Recover(Store* store) {
  FARM_ASSIGN_OR_RETURN(auto v, store->Get(Cf::kMeta, keys::kNextSeq));
  last_seq_ = 0;
  if (v.has_value()) {
    if (v->size() != 8) return absl::DataLossError("meta next_seq is malformed");
    last_seq_ = keys::ReadU64(*v, 0);
  }
  // The newest job record, or the newest job in the event history (whose index begins with
  // the job's seq), holds the highest.
  for (Cf cf : {Cf::kJobs, Cf::kJobEvents}) {
    FARM_RETURN_IF_ERROR(store->Scan(
        cf, "", "",
        [&](absl::string_view key, absl::string_view) {
          if (key.size() >= 8) last_seq_ = std::max(last_seq_, keys::ReadU64(key, 0));
          return false;
        },
        /*reverse=*/true));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Intake::Submit(Txn& txn, farm::v1::JobSpec spec,
                                           const std::string& request_id, bool* existing,
                                           const std::string& by) {
  FARM_ASSIGN_OR_RETURN(std::optional<uint64_t> earlier,
                        p_.request_ids->Find(txn, RequestIds::Kind::kJob, request_id));
  *existing = earlier.has_value();
  if (earlier.has_value()) return keys::JobId(*earlier);
  const uint64_t seq = ++last_seq_;
  Job job;
  job.set_id(keys::JobId(seq));
  job.set_seq(seq);
  *job.mutable_spec() = std::move(spec);
  job.set_submitted_ms(p_.clock->NowMs());
  job.set_submitted_by(by);
  job.set_request_id(request_id);
  p_.request_ids->Remember(txn, RequestIds::Kind::kJob, request_id, seq, job.submitted_ms());
  FARM_RETURN_IF_ERROR(p_.lifecycle->Submit(txn, job, ""));
  return job.id();
}

absl::Status Intake::FillView(Txn& txn, Pipeline& pipeline) {
  return FillViewFromSummaries(
      pipeline,
      [&](absl::string_view start, absl::string_view limit, const Store::ScanFn& fn) {
        return txn.Scan(Cf::kPipelineJobs, start, limit, fn);
      },
      [&](uint64_t seq) { return jobs::Load(txn, seq); });
}

absl::StatusOr<Pipeline> Intake::SubmitPipeline(Txn& txn, const std::string& name,
                                                std::vector<common::ExpandedJob> expanded,
                                                const std::string& request_id, bool* existing,
                                                const std::string& by) {
  FARM_ASSIGN_OR_RETURN(std::optional<uint64_t> earlier,
                        p_.request_ids->Find(txn, RequestIds::Kind::kPipeline, request_id));
  *existing = earlier.has_value();
  if (earlier.has_value()) {
    FARM_ASSIGN_OR_RETURN(std::optional<Pipeline> pipeline, p_.pipelines->Load(txn, *earlier));
    if (!pipeline.has_value()) return absl::InternalError("a request id names a missing pipeline");
    FARM_RETURN_IF_ERROR(FillView(txn, *pipeline));
    return *std::move(pipeline);
  }
  const int64_t now = p_.clock->NowMs();
  std::vector<Job> created;
  Pipeline pipeline = p_.pipelines->Create(
      txn, name, request_id, now, std::move(expanded), [this] { return ++last_seq_; }, &created,
      by);
  p_.request_ids->Remember(txn, RequestIds::Kind::kPipeline, request_id, pipeline.seq(), now);
  // Every job that waits for others is written before any is made ready: a job without steps
  // ends at once and resolves the jobs that need it, which must be there to be found.
  for (size_t i = 0; i < created.size(); ++i) {
    if (created[i].needs().empty()) continue;
    const auto& needs = pipeline.jobs(static_cast<int>(i)).needs();
    FARM_RETURN_IF_ERROR(p_.lifecycle->Submit(
        txn, created[i], absl::StrCat("waiting for ", absl::StrJoin(needs, ", "))));
  }
  for (Job& job : created) {
    if (job.needs().empty()) FARM_RETURN_IF_ERROR(p_.lifecycle->Submit(txn, job, ""));
  }
  FARM_RETURN_IF_ERROR(FillView(txn, pipeline));
  FARM_LOG(INFO) << "[pipeline=" << pipeline.id() << "] submitted: " << pipeline.name() << ", "
                 << created.size() << " jobs";
  return pipeline;
}

absl::Status Intake::CancelInTxn(Txn& txn, Job& job) {
  switch (job.state()) {
    case farm::v1::QUEUED:
    case farm::v1::WAITING:
      return p_.lifecycle->CancelNotRunning(txn, job);
    case farm::v1::RUNNING: {
      FARM_ASSIGN_OR_RETURN(std::string agent, p_.attempts->RequestCancel(txn, job.seq()));
      p_.heartbeats->Wake(txn, agent);
      job.set_cancel_requested(true);
      return absl::OkStatus();
    }
    default:
      return absl::FailedPreconditionError(absl::StrCat(
          "job ", job.id(), " already finished: ", farm::v1::JobState_Name(job.state())));
  }
}

absl::StatusOr<Job> Intake::Cancel(Txn& txn, uint64_t seq) {
  FARM_ASSIGN_OR_RETURN(std::optional<Job> job, jobs::Load(txn, seq));
  if (!job.has_value()) return absl::NotFoundError(absl::StrCat("job ", seq, " not found"));
  if (job->state() == farm::v1::CANCELLED) return *std::move(job);
  FARM_RETURN_IF_ERROR(CancelInTxn(txn, *job));
  return *std::move(job);
}

absl::StatusOr<Pipeline> Intake::CancelPipeline(Txn& txn, uint64_t pseq) {
  FARM_ASSIGN_OR_RETURN(std::optional<Pipeline> loaded, p_.pipelines->Load(txn, pseq));
  if (!loaded.has_value()) {
    return absl::NotFoundError(absl::StrCat("pipeline ", keys::PipelineId(pseq), " not found"));
  }
  Pipeline pipeline = *std::move(loaded);
  // Written first: the cascade reads it to cancel rather than skip.
  p_.pipelines->MarkCancelled(txn, pipeline);
  for (const farm::v1::PipelineJob& pj : pipeline.jobs()) {
    const uint64_t seq = keys::ParseJobId(pj.job_id()).value_or(0);
    FARM_ASSIGN_OR_RETURN(std::optional<Job> job, jobs::Load(txn, seq));
    if (!job.has_value() || common::IsTerminal(job->state()) || job->cancel_requested()) {
      continue;
    }
    FARM_RETURN_IF_ERROR(CancelInTxn(txn, *job));
  }
  FARM_LOG(INFO) << "[pipeline=" << pipeline.id() << "] cancel requested";
  FARM_RETURN_IF_ERROR(FillView(txn, pipeline));
  return pipeline;
}

absl::Status Intake::ResolveWaiting(Txn& txn) {
  std::vector<uint64_t> seqs;
  FARM_RETURN_IF_ERROR(
      txn.Scan(Cf::kWaiting, "", "", [&](absl::string_view key, absl::string_view) {
        if (key.size() == 8) seqs.push_back(keys::ReadU64(key, 0));
        return true;
      }));
  int resolved = 0;
  for (uint64_t seq : seqs) {
    FARM_ASSIGN_OR_RETURN(std::optional<Job> job, jobs::Load(txn, seq));
    if (!job.has_value() || job->state() != farm::v1::WAITING) {
      txn.Delete(Cf::kWaiting, keys::JobKey(seq));  // stale
      continue;
    }
    const std::optional<uint64_t> pseq = keys::ParsePipelineId(job->pipeline_id());
    FARM_ASSIGN_OR_RETURN(std::optional<Pipeline> pipeline,
                          p_.pipelines->Load(txn, pseq.value_or(0)));
    if (!pipeline.has_value()) {
      return absl::DataLossError(absl::StrCat("job ", seq, " waits in a missing pipeline"));
    }
    FARM_ASSIGN_OR_RETURN(std::optional<NeedsDecision> d,
                          p_.pipelines->Decide(txn, *pipeline, *std::move(job)));
    if (!d.has_value()) continue;
    ++resolved;
    if (d->end != farm::v1::JOB_STATE_UNSPECIFIED) {
      FARM_RETURN_IF_ERROR(p_.lifecycle->Transition(txn, d->job, d->end, std::move(d->reason)));
    } else {
      FARM_RETURN_IF_ERROR(p_.lifecycle->MakeReady(txn, d->job));
    }
  }
  if (resolved > 0) FARM_LOG(WARNING) << resolved << " waiting jobs were resolved at start";
  return absl::OkStatus();
}

}  // namespace farm::coordinator
