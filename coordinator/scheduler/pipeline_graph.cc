#include "coordinator/scheduler/pipeline_graph.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/job_state.h"
#include "common/status_macros.h"
#include "coordinator/scheduler/job_records.h"
#include "coordinator/store/keys.h"

namespace farm::coordinator {

using farm::v1::Job;
using farm::v1::Pipeline;

absl::StatusOr<Pipeline> ParsePipeline(absl::string_view raw, uint64_t seq) {
  Pipeline p;
  if (!p.ParseFromArray(raw.data(), static_cast<int>(raw.size()))) {
    return absl::DataLossError(absl::StrCat("pipeline ", keys::PipelineId(seq), " is corrupt"));
  }
  return p;
}

void FillView(Pipeline& p,
              const std::function<std::optional<farm::v1::PipelineJob>(size_t index)>& summary_of) {
  bool all_ended = true, all_succeeded = true, any_started = false;
  int64_t finished = 0;
  for (int i = 0; i < p.jobs_size(); ++i) {
    farm::v1::PipelineJob& pj = *p.mutable_jobs(i);
    std::optional<farm::v1::PipelineJob> job = summary_of(static_cast<size_t>(i));
    if (!job.has_value()) {
      pj.set_state(farm::v1::JOB_STATE_UNSPECIFIED);
      all_ended = all_succeeded = false;
      continue;
    }
    pj.set_state(job->state());
    pj.set_started_ms(job->started_ms());
    pj.set_finished_ms(job->finished_ms());
    pj.set_attempts(job->attempts());
    const bool ended = common::IsTerminal(job->state());
    all_ended &= ended;
    all_succeeded &= job->state() == farm::v1::SUCCEEDED;
    any_started |= job->state() == farm::v1::RUNNING || job->attempts() > 0 || ended;
    finished = std::max(finished, job->finished_ms());
  }
  if (all_ended) {
    p.set_state(all_succeeded          ? farm::v1::SUCCEEDED
                : p.cancel_requested() ? farm::v1::CANCELLED
                                       : farm::v1::FAILED);
    p.set_finished_ms(finished);
  } else {
    p.set_state(any_started ? farm::v1::RUNNING : farm::v1::QUEUED);
    p.set_finished_ms(0);
  }
}

absl::Status FillViewFromSummaries(Pipeline& pipeline,
                                   const std::map<uint64_t, farm::v1::PipelineJob>& summaries,
                                   const LoadJob& load_job) {
  absl::Status error;
  FillView(pipeline, [&](size_t i) -> std::optional<farm::v1::PipelineJob> {
    const uint64_t seq = keys::ParseJobId(pipeline.jobs(static_cast<int>(i)).job_id()).value_or(0);
    auto it = summaries.find(seq);
    if (it != summaries.end()) return it->second;
    absl::StatusOr<std::optional<Job>> job = load_job(seq);
    if (!job.ok()) {
      if (error.ok()) error = job.status();
      return std::nullopt;
    }
    if (!job->has_value()) return std::nullopt;
    return jobs::Summary(**job);
  });
  return error;
}

absl::Status FillViewFromSummaries(Pipeline& pipeline, const ScanRange& scan_summaries,
                                   const LoadJob& load_job) {
  std::map<uint64_t, farm::v1::PipelineJob> summaries;
  const std::string prefix = keys::U64(pipeline.seq());
  absl::Status parse_error;
  FARM_RETURN_IF_ERROR(scan_summaries(
      prefix, keys::PrefixEnd(prefix), [&](absl::string_view key, absl::string_view value) {
        if (key.size() != 16) return true;
        farm::v1::PipelineJob summary;
        if (!summary.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
          parse_error = absl::DataLossError(
              absl::StrCat("pipeline ", pipeline.id(), " has a corrupt job summary"));
          return false;
        }
        summaries.emplace(keys::ReadU64(key, 8), std::move(summary));
        return true;
      }));
  FARM_RETURN_IF_ERROR(parse_error);
  return FillViewFromSummaries(pipeline, summaries, load_job);
}

absl::Status PipelineGraph::Recover(Store* store) {
  FARM_ASSIGN_OR_RETURN(auto v, store->Get(Cf::kMeta, keys::kNextPipelineSeq));
  last_pipeline_seq_ = 0;
  if (v.has_value()) {
    if (v->size() != 8) return absl::DataLossError("meta next_pipeline_seq is malformed");
    last_pipeline_seq_ = keys::ReadU64(*v, 0);
  }
  return absl::OkStatus();
}

absl::Status PipelineGraph::CheckRecordSize(const std::vector<common::ExpandedJob>& jobs) {
  size_t bytes = 0;
  for (const common::ExpandedJob& job : jobs) {
    bytes += job.spec.name().size() + job.input_dir.size() + 32;
    for (int need : job.needs) bytes += jobs[static_cast<size_t>(need)].spec.name().size() + 2;
  }
  if (bytes > kMaxRecordBytes) {
    return absl::InvalidArgumentError(absl::StrCat("the pipeline's job names and needs take ",
                                                   bytes, " bytes; at most ", kMaxRecordBytes));
  }
  return absl::OkStatus();
}

Pipeline PipelineGraph::Create(Txn& txn, const std::string& name, const std::string& request_id,
                               int64_t now_ms, std::vector<common::ExpandedJob> expanded,
                               const std::function<uint64_t()>& next_job_seq,
                               std::vector<Job>* jobs, const std::string& submitted_by) {
  const uint64_t pseq = ++last_pipeline_seq_;
  txn.Put(Cf::kMeta, std::string(keys::kNextPipelineSeq), keys::U64(last_pipeline_seq_));
  Pipeline pipeline;
  pipeline.set_id(keys::PipelineId(pseq));
  pipeline.set_seq(pseq);
  pipeline.set_name(name);
  pipeline.set_request_id(request_id);
  pipeline.set_submitted_ms(now_ms);
  pipeline.set_submitted_by(submitted_by);
  jobs->assign(expanded.size(), Job());
  for (size_t i = 0; i < expanded.size(); ++i) {
    const uint64_t seq = next_job_seq();
    (*jobs)[i].set_id(keys::JobId(seq));
    (*jobs)[i].set_seq(seq);
    (*jobs)[i].set_submitted_by(submitted_by);
    (*jobs)[i].set_pipeline_job(expanded[i].spec.name());
  }
  for (size_t i = 0; i < expanded.size(); ++i) {
    Job& job = (*jobs)[i];
    job.set_pipeline_id(pipeline.id());
    job.set_submitted_ms(now_ms);
    farm::v1::PipelineJob* pj = pipeline.add_jobs();
    pj->set_name(job.pipeline_job());
    pj->set_job_id(job.id());
    pj->set_input_dir(expanded[i].input_dir);
    for (int need : expanded[i].needs) {
      const Job& needed = (*jobs)[static_cast<size_t>(need)];
      pj->add_needs(needed.pipeline_job());
      job.add_needs(needed.id());
    }
    *job.mutable_spec() = std::move(expanded[i].spec);
  }
  txn.Put(Cf::kPipelines, keys::JobKey(pseq), pipeline.SerializeAsString());
  return pipeline;
}

absl::StatusOr<std::optional<Pipeline>> PipelineGraph::Load(Txn& txn, uint64_t pseq) {
  FARM_ASSIGN_OR_RETURN(auto raw, txn.Get(Cf::kPipelines, keys::JobKey(pseq)));
  if (!raw.has_value()) return std::nullopt;
  FARM_ASSIGN_OR_RETURN(Pipeline p, ParsePipeline(*raw, pseq));
  return p;
}

void PipelineGraph::MarkCancelled(Txn& txn, Pipeline& pipeline) {
  if (pipeline.cancel_requested()) return;
  pipeline.set_cancel_requested(true);
  txn.Put(Cf::kPipelines, keys::JobKey(pipeline.seq()), pipeline.SerializeAsString());
}

absl::StatusOr<std::vector<NeedsDecision>> PipelineGraph::Resolve(Txn& txn,
                                                                  const std::string& pipeline_id,
                                                                  const std::string& ended) {
  std::vector<NeedsDecision> out;
  const std::optional<uint64_t> pseq = keys::ParsePipelineId(pipeline_id);
  if (!pseq.has_value()) return out;
  FARM_ASSIGN_OR_RETURN(std::optional<Pipeline> pipeline, Load(txn, *pseq));
  if (!pipeline.has_value()) {
    return absl::DataLossError(absl::StrCat("pipeline ", pipeline_id, " is missing"));
  }
  for (const farm::v1::PipelineJob& pj : pipeline->jobs()) {
    if (std::find(pj.needs().begin(), pj.needs().end(), ended) == pj.needs().end()) {
      continue;
    }
    const std::optional<uint64_t> seq = keys::ParseJobId(pj.job_id());
    if (!seq.has_value()) continue;
    FARM_ASSIGN_OR_RETURN(std::optional<Job> job, jobs::Load(txn, *seq));
    // A WAITING job that needs `ended` waits for its needs (a job waits for a group place only
    // once all of them succeeded, and `ended` ended just now).
    if (!job.has_value() || job->state() != farm::v1::WAITING) continue;
    FARM_ASSIGN_OR_RETURN(std::optional<NeedsDecision> decision,
                          Decide(txn, *pipeline, *std::move(job)));
    if (decision.has_value()) out.push_back(*std::move(decision));
  }
  return out;
}

absl::StatusOr<std::optional<NeedsDecision>> PipelineGraph::Decide(Txn& txn,
                                                                   const Pipeline& pipeline,
                                                                   Job job) {
  std::vector<farm::v1::JobInput> inputs;
  bool all_succeeded = true;
  for (const std::string& need_id : job.needs()) {
    const std::optional<uint64_t> need_seq = keys::ParseJobId(need_id);
    if (!need_seq.has_value()) continue;
    FARM_ASSIGN_OR_RETURN(std::optional<Job> need, jobs::Load(txn, *need_seq));
    if (!need.has_value()) {
      return absl::DataLossError(
          absl::StrCat("job ", job.id(), " needs job ", need_id, ", which has no record"));
    }
    if (common::IsTerminal(need->state()) && need->state() != farm::v1::SUCCEEDED) {
      const bool cancel = pipeline.cancel_requested();
      NeedsDecision d{std::move(job), cancel ? farm::v1::CANCELLED : farm::v1::SKIPPED,
                      cancel ? "pipeline cancelled"
                             : absl::StrCat("needs ", need->pipeline_job(), ", which ended ",
                                            farm::v1::JobState_Name(need->state()))};
      return d;
    }
    if (need->state() != farm::v1::SUCCEEDED) {
      all_succeeded = false;
      continue;
    }
    farm::v1::JobInput& input = inputs.emplace_back();
    for (const farm::v1::PipelineJob& other : pipeline.jobs()) {
      if (other.job_id() == need_id) input.set_dir(other.input_dir());
    }
    input.set_job_id(need_id);
    *input.mutable_artifacts() = need->artifacts();
  }
  if (!all_succeeded) return std::nullopt;
  size_t input_bytes = 0;
  for (const auto& input : inputs) input_bytes += input.ByteSizeLong();
  if (input_bytes > kMaxInputListBytes) {
    NeedsDecision d{std::move(job), farm::v1::FAILED,
                    absl::StrCat("the artifacts of the jobs it needs are ", input_bytes,
                                 " bytes of metadata; at most ", kMaxInputListBytes)};
    return d;
  }
  job.clear_inputs();
  for (auto& input : inputs) *job.add_inputs() = std::move(input);
  return NeedsDecision{std::move(job), farm::v1::JOB_STATE_UNSPECIFIED, ""};
}

}  // namespace farm::coordinator
