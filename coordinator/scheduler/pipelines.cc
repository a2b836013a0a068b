// Pipelines (jobs that need each other), exit-code retries and concurrency groups: the parts of
// the Scheduler that decide when a job may be queued at all. See scheduler.h.
//
// A pipeline is created in one write: its record (Cf::kPipelines: the jobs' names, ids, needs
// and input directories) and every job. Jobs that need nothing are made ready at once; the
// others are WAITING. When a job reaches a final state, JobEnded frees its concurrency-group
// place and resolves the jobs that need it, in the same group commit: each one is SKIPPED
// (CANCELLED once the pipeline was cancelled) if the job did not succeed, else made ready when
// all of its needs have succeeded, with their artifacts as its inputs. A pipeline's own state
// is never stored: it is derived from its jobs whenever it is read.
#include <algorithm>
#include <deque>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/job_limits.h"
#include "common/job_state.h"
#include "common/logging.h"
#include "common/pipeline.h"
#include "common/status_macros.h"
#include "coordinator/scheduler/internal.h"
#include "coordinator/scheduler/scheduler.h"

namespace farm::coordinator {
namespace {

using common::IsTerminal;
using farm::v1::Job;
using farm::v1::Pipeline;
using internal::ReplyAfterCommit;

// Request ids of pipelines share the requests family with jobs', under a prefix that no
// client's id can start with (ValidateRequestId refuses control characters).
std::string PipelineRequestId(absl::string_view request_id) {
  return absl::StrCat("\x01pipeline/", request_id);
}

// A job's inputs (the artifact lists of the jobs it needs) are part of its record and of the
// lease sent to the agent, next to its spec and its own artifacts: at most this many bytes.
constexpr size_t kMaxInputListBytes = 2 << 20;

// Its record (each job's name, id, input directory and needs), read back whole by GetPipeline.
constexpr size_t kMaxPipelineRecordBytes = 2 << 20;

int32_t GroupLimit(const farm::v1::JobSpec& spec) {
  return spec.concurrency() > 0 ? spec.concurrency() : 1;
}

// Fills each job's state, times and attempts from `job_of` and derives the pipeline's state.
void FillView(Pipeline& p, const std::function<std::optional<Job>(const std::string&)>& job_of) {
  bool all_ended = true, all_succeeded = true, any_started = false;
  int64_t finished = 0;
  for (farm::v1::PipelineJob& pj : *p.mutable_jobs()) {
    std::optional<Job> job = job_of(pj.job_id());
    if (!job.has_value()) {
      pj.set_state(farm::v1::JOB_STATE_UNSPECIFIED);
      all_ended = all_succeeded = false;
      continue;
    }
    pj.set_state(job->state());
    pj.set_started_ms(job->started_ms());
    pj.set_finished_ms(job->finished_ms());
    pj.set_attempts(static_cast<uint32_t>(job->attempts_size()));
    all_ended &= IsTerminal(job->state());
    all_succeeded &= job->state() == farm::v1::SUCCEEDED;
    any_started |=
        job->state() == farm::v1::RUNNING || job->attempts_size() > 0 || IsTerminal(job->state());
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

absl::StatusOr<Pipeline> ParsePipeline(absl::string_view raw, uint64_t seq) {
  Pipeline p;
  if (!p.ParseFromString(std::string(raw))) {
    return absl::DataLossError(absl::StrCat("pipeline ", keys::PipelineId(seq), " is corrupt"));
  }
  return p;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Readiness, concurrency groups, retries

absl::Status Scheduler::Release(Txn& txn, Job& job) {
  if (job.spec().steps_size() > 0 || job.attempts_size() > 0) return Enqueue(txn, job);
  // A pipeline job without steps (a gate) succeeds as soon as it may run.
  const int64_t now = clock_->NowMs();
  job.set_state(farm::v1::SUCCEEDED);
  job.set_reason("no steps to run");
  job.set_started_ms(now);
  job.set_finished_ms(now);
  PutJob(txn, job);
  NotifyAfterCommit(txn, job.seq());
  JobEnded(txn, job);
  return absl::OkStatus();
}

absl::Status Scheduler::MakeReady(Txn& txn, Job& job) {
  const std::string& name = job.spec().concurrency_group();
  if (name.empty()) return Release(txn, job);
  Group& group = groups_[name];
  // First come, first served: nobody overtakes a job already waiting for the group.
  if (group.waiting == 0 && group.admitted.size() < static_cast<size_t>(GroupLimit(job.spec()))) {
    group.admitted.insert(job.seq());
    txn.Put(Cf::kGroups, keys::GroupKey(keys::kGroupAdmitted, name, job.seq()), "");
    return Release(txn, job);
  }
  ++group.waiting;
  txn.Put(Cf::kGroups, keys::GroupKey(keys::kGroupWaiting, name, job.seq()), "");
  job.set_state(farm::v1::WAITING);
  job.set_reason(absl::StrCat("waiting for a place in concurrency group ", name, " (",
                              group.admitted.size(), " of ", GroupLimit(job.spec()), " taken)"));
  PutJob(txn, job);
  return absl::OkStatus();
}

absl::Status Scheduler::AdmitWaiters(Txn& txn, const std::string& name) {
  auto it = groups_.find(name);
  if (it == groups_.end()) return absl::OkStatus();
  Group& group = it->second;
  const std::string prefix = keys::GroupPrefix(keys::kGroupWaiting, name);
  while (group.waiting > 0) {
    uint64_t seq = 0;
    FARM_RETURN_IF_ERROR(txn.Scan(Cf::kGroups, prefix, keys::PrefixEnd(prefix),
                                  [&](absl::string_view key, absl::string_view) {
                                    seq = keys::ReadU64(key, prefix.size());
                                    return false;
                                  }));
    if (seq == 0) {  // the count was off; the store is the truth
      group.waiting = 0;
      break;
    }
    FARM_ASSIGN_OR_RETURN(std::optional<Job> job, LoadJob(txn, seq));
    if (job.has_value() && job->state() == farm::v1::WAITING &&
        group.admitted.size() >= static_cast<size_t>(GroupLimit(job->spec()))) {
      break;
    }
    txn.Delete(Cf::kGroups, keys::GroupKey(keys::kGroupWaiting, name, seq));
    --group.waiting;
    if (!job.has_value() || job->state() != farm::v1::WAITING) continue;  // stale entry
    group.admitted.insert(seq);
    txn.Put(Cf::kGroups, keys::GroupKey(keys::kGroupAdmitted, name, seq), "");
    job->clear_reason();
    NotifyAfterCommit(txn, seq);
    // May end a gate at once and so come back here (groups_ entries are never erased while
    // the engine runs, so `group` stays valid).
    FARM_RETURN_IF_ERROR(Release(txn, *job));
  }
  return absl::OkStatus();
}

bool Scheduler::RetriesAfterFailure(const Job& job) {
  const farm::v1::RetryPolicy& retry = job.spec().retry();
  if (retry.max_attempts() <= 1 || job.cancel_requested() || job.attempts().empty()) return false;
  int failed = 0;  // lost attempts have retries of their own
  for (const auto& a : job.attempts()) failed += a.outcome() == farm::v1::ATTEMPT_FAILED;
  if (failed >= retry.max_attempts()) return false;
  if (retry.on_exit_codes().empty()) return true;
  const farm::v1::Attempt& last = job.attempts(job.attempts_size() - 1);
  for (const farm::v1::StepResult& step : last.steps()) {
    if (step.state() == farm::v1::STEP_FAILED || step.state() == farm::v1::STEP_TIMED_OUT) {
      if (step.state() != farm::v1::STEP_FAILED || step.signal() != 0) return false;
      const auto& codes = retry.on_exit_codes();
      return std::find(codes.begin(), codes.end(), step.exit_code()) != codes.end();
    }
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Ends and their consequences

void Scheduler::JobEnded(Txn& txn, const Job& job) {
  const std::string& name = job.spec().concurrency_group();
  if (!name.empty()) {
    auto group = groups_.find(name);
    if (group != groups_.end() && group->second.admitted.erase(job.seq()) > 0) {
      txn.Delete(Cf::kGroups, keys::GroupKey(keys::kGroupAdmitted, name, job.seq()));
      if (absl::Status s = AdmitWaiters(txn, name); !s.ok()) {
        FARM_LOG(ERROR) << "[group=" << name << "] cannot admit waiting jobs: " << s;
      }
    }
  }
  if (!job.pipeline_id().empty()) {
    if (absl::Status s = ResolveDependants(txn, job); !s.ok()) {
      FARM_LOG(ERROR) << "[job=" << job.seq() << "] cannot resolve the jobs that need it: " << s;
    }
  }
}

absl::Status Scheduler::ResolveDependants(Txn& txn, const Job& ended) {
  const std::optional<uint64_t> pseq = keys::ParsePipelineId(ended.pipeline_id());
  if (!pseq.has_value()) return absl::OkStatus();
  FARM_ASSIGN_OR_RETURN(std::optional<Pipeline> pipeline, LoadPipeline(txn, *pseq));
  if (!pipeline.has_value()) {
    return absl::DataLossError(absl::StrCat("pipeline ", ended.pipeline_id(), " is missing"));
  }
  for (const farm::v1::PipelineJob& pj : pipeline->jobs()) {
    if (std::find(pj.needs().begin(), pj.needs().end(), ended.pipeline_job()) == pj.needs().end()) {
      continue;
    }
    const std::optional<uint64_t> seq = keys::ParseJobId(pj.job_id());
    if (!seq.has_value()) continue;
    FARM_ASSIGN_OR_RETURN(std::optional<Job> job, LoadJob(txn, *seq));
    // A WAITING job that needs `ended` is waiting for its needs (a job waits for a group place
    // only once all of them succeeded, and `ended` ended just now).
    if (!job.has_value() || job->state() != farm::v1::WAITING) continue;
    if (ended.state() != farm::v1::SUCCEEDED) {
      const bool cancel = pipeline->cancel_requested();
      job->set_state(cancel ? farm::v1::CANCELLED : farm::v1::SKIPPED);
      job->set_reason(cancel ? "pipeline cancelled"
                             : absl::StrCat("needs ", ended.pipeline_job(), ", which ended ",
                                            farm::v1::JobState_Name(ended.state())));
      job->set_finished_ms(clock_->NowMs());
      PutJob(txn, *job);
      NotifyAfterCommit(txn, *seq);
      JobEnded(txn, *job);  // its own dependants in turn
      continue;
    }
    // Every need succeeded? Then its artifacts become this job's inputs.
    std::vector<farm::v1::JobInput> inputs;
    bool ready = true;
    for (const std::string& need_id : job->needs()) {
      const std::optional<uint64_t> need_seq = keys::ParseJobId(need_id);
      if (!need_seq.has_value()) continue;
      FARM_ASSIGN_OR_RETURN(std::optional<Job> need, LoadJob(txn, *need_seq));
      if (!need.has_value() || need->state() != farm::v1::SUCCEEDED) {
        ready = false;
        break;
      }
      farm::v1::JobInput& input = inputs.emplace_back();
      for (const farm::v1::PipelineJob& other : pipeline->jobs()) {
        if (other.job_id() == need_id) input.set_dir(other.input_dir());
      }
      input.set_job_id(need_id);
      *input.mutable_artifacts() = need->artifacts();
    }
    if (!ready) continue;
    size_t input_bytes = 0;
    for (const auto& input : inputs) input_bytes += input.ByteSizeLong();
    if (input_bytes > kMaxInputListBytes) {
      job->set_state(farm::v1::FAILED);
      job->set_reason(absl::StrCat("the artifacts of the jobs it needs are ", input_bytes,
                                   " bytes of metadata; at most ", kMaxInputListBytes));
      job->set_finished_ms(clock_->NowMs());
      PutJob(txn, *job);
      NotifyAfterCommit(txn, *seq);
      JobEnded(txn, *job);
      continue;
    }
    for (auto& input : inputs) *job->add_inputs() = std::move(input);
    job->clear_reason();
    FARM_RETURN_IF_ERROR(MakeReady(txn, *job));
    NotifyAfterCommit(txn, *seq);
  }
  return absl::OkStatus();
}

absl::Status Scheduler::CancelInTxn(Txn& txn, Job& job) {
  const int64_t now = clock_->NowMs();
  switch (job.state()) {
    case farm::v1::QUEUED:
    case farm::v1::WAITING:
      if (job.state() == farm::v1::QUEUED) {
        RemoveFromQueue(txn, job);
      } else if (const std::string& name = job.spec().concurrency_group(); !name.empty()) {
        // Waiting for a group place (or for its needs: then there is no key to delete).
        auto group = groups_.find(name);
        const std::string key = keys::GroupKey(keys::kGroupWaiting, name, job.seq());
        FARM_ASSIGN_OR_RETURN(auto entry, txn.Get(Cf::kGroups, key));
        if (entry.has_value()) {
          txn.Delete(Cf::kGroups, key);
          if (group != groups_.end() && group->second.waiting > 0) --group->second.waiting;
        }
      }
      job.set_state(farm::v1::CANCELLED);
      job.set_cancel_requested(true);
      job.set_reason("cancelled by user");
      job.set_finished_ms(now);
      PutJob(txn, job);
      NotifyAfterCommit(txn, job.seq());
      JobEnded(txn, job);
      return absl::OkStatus();
    case farm::v1::RUNNING: {
      auto it = active_.find(job.seq());
      if (it == active_.end()) {
        return absl::InternalError(absl::StrCat("job ", job.id(), " is RUNNING without a lease"));
      }
      job.set_cancel_requested(true);
      it->second.job.set_cancel_requested(true);
      PutJob(txn, job);
      WakeHeartbeat(txn, it->second.agent);
      NotifyAfterCommit(txn, job.seq());
      return absl::OkStatus();
    }
    default:
      return absl::FailedPreconditionError(absl::StrCat(
          "job ", job.id(), " already finished: ", farm::v1::JobState_Name(job.state())));
  }
}

// ---------------------------------------------------------------------------------------------
// Pipelines

absl::Status Scheduler::FillViewInTxn(Txn& txn, Pipeline& pipeline) {
  absl::Status read_error;
  FillView(pipeline, [&](const std::string& id) -> std::optional<Job> {
    auto job = LoadJob(txn, keys::ParseJobId(id).value_or(0));
    if (!job.ok()) read_error = job.status();
    return job.ok() ? *std::move(job) : std::nullopt;
  });
  return read_error;
}

absl::StatusOr<std::optional<Pipeline>> Scheduler::LoadPipeline(Txn& txn, uint64_t seq) {
  FARM_ASSIGN_OR_RETURN(auto raw, txn.Get(Cf::kPipelines, keys::JobKey(seq)));
  if (!raw.has_value()) return std::nullopt;
  FARM_ASSIGN_OR_RETURN(Pipeline p, ParsePipeline(*raw, seq));
  return p;
}

void Scheduler::SubmitPipeline(farm::v1::PipelineSpec spec, std::string request_id,
                               Done<farm::v1::SubmitPipelineResponse> done) {
  if (absl::Status s = internal::ValidateRequestId(request_id); !s.ok()) return done(s);
  auto expanded = common::ExpandPipeline(spec);
  if (!expanded.ok()) return done(expanded.status());
  // The pipeline is read back whole (the jobs' own size is bounded by ExpandPipeline).
  size_t record_bytes = 0;
  for (const common::ExpandedJob& job : *expanded) {
    record_bytes += job.spec.name().size() + job.input_dir.size() + 32;
    for (int need : job.needs) record_bytes += (*expanded)[need].spec.name().size() + 2;
  }
  if (record_bytes > kMaxPipelineRecordBytes) {
    return done(absl::InvalidArgumentError(absl::StrCat("the pipeline's job names and needs take ",
                                                        record_bytes, " bytes; at most ",
                                                        kMaxPipelineRecordBytes)));
  }
  PostOrFail(
      [this, name = spec.name(), jobs = std::move(*expanded), request_id, done](Txn& txn) mutable {
        farm::v1::SubmitPipelineResponse resp;
        const std::string request_key =
            request_id.empty() ? "" : keys::RequestKey(PipelineRequestId(request_id));
        if (!request_key.empty()) {
          auto existing = txn.Get(Cf::kRequests, request_key);
          if (!existing.ok()) return done(existing.status());
          if (existing->has_value() && (*existing)->size() >= 8) {
            const uint64_t pseq = keys::ReadU64(**existing, 0);
            auto pipeline = LoadPipeline(txn, pseq);
            if (!pipeline.ok()) return done(pipeline.status());
            if (!pipeline->has_value()) {
              return done(absl::InternalError("a request id names a missing pipeline"));
            }
            Pipeline& existing_pipeline = **pipeline;
            if (absl::Status s = FillViewInTxn(txn, existing_pipeline); !s.ok()) return done(s);
            *resp.mutable_pipeline() = std::move(existing_pipeline);
            resp.set_existing(true);
            ReplyAfterCommit(txn, done, resp);
            return;
          }
        }
        const int64_t now = clock_->NowMs();
        const uint64_t pseq = ++next_pipeline_seq_;
        txn.Put(Cf::kMeta, std::string(keys::kNextPipelineSeq), keys::U64(next_pipeline_seq_));
        Pipeline pipeline;
        pipeline.set_id(keys::PipelineId(pseq));
        pipeline.set_seq(pseq);
        pipeline.set_name(name);
        pipeline.set_submitted_ms(now);
        pipeline.set_request_id(request_id);
        std::vector<Job> created(jobs.size());
        for (size_t i = 0; i < jobs.size(); ++i) {
          const uint64_t seq = ++next_seq_;
          created[i].set_id(keys::JobId(seq));
          created[i].set_seq(seq);
          created[i].set_pipeline_job(jobs[i].spec.name());
        }
        txn.Put(Cf::kMeta, std::string(keys::kNextSeq), keys::U64(next_seq_));
        for (size_t i = 0; i < jobs.size(); ++i) {
          Job& job = created[i];
          farm::v1::PipelineJob* pj = pipeline.add_jobs();
          pj->set_name(job.pipeline_job());
          pj->set_job_id(job.id());
          pj->set_input_dir(jobs[i].input_dir);
          job.set_pipeline_id(pipeline.id());
          for (int need : jobs[i].needs) {
            pj->add_needs(created[need].pipeline_job());
            job.add_needs(created[need].id());
          }
          *job.mutable_spec() = std::move(jobs[i].spec);
          job.set_submitted_ms(now);
        }
        txn.Put(Cf::kPipelines, keys::JobKey(pseq), pipeline.SerializeAsString());
        if (!request_key.empty()) {
          std::string v = keys::U64(pseq);
          keys::AppendU64(v, static_cast<uint64_t>(now));
          txn.Put(Cf::kRequests, request_key, v);
          txn.Put(Cf::kRequests, keys::RequestTimeKey(now, PipelineRequestId(request_id)), "");
        }
        // Every job is written before any is made ready: a job with no steps ends at once and
        // resolves the jobs that need it, which must be there to be found.
        for (size_t i = 0; i < created.size(); ++i) {
          Job& job = created[i];
          job.set_state(farm::v1::WAITING);
          if (!job.needs().empty()) {
            job.set_reason(
                absl::StrCat("waiting for ", absl::StrJoin(pipeline.jobs(i).needs(), ", ")));
          }
          PutJob(txn, job);
          NotifyAfterCommit(txn, job.seq());
        }
        for (Job& job : created) {
          if (!job.needs().empty()) continue;
          if (absl::Status s = MakeReady(txn, job); !s.ok()) return done(s);
        }
        if (absl::Status s = FillViewInTxn(txn, pipeline); !s.ok()) return done(s);
        FARM_LOG(INFO) << "[pipeline=" << pipeline.id() << "] submitted: " << pipeline.name()
                       << ", " << created.size() << " jobs";
        *resp.mutable_pipeline() = std::move(pipeline);
        ReplyAfterCommit(txn, done, resp);
      },
      [&](absl::Status s) { done(s); });
}

void Scheduler::CancelPipeline(std::string pipeline_id, Done<Pipeline> done) {
  const std::optional<uint64_t> pseq = keys::ParsePipelineId(pipeline_id);
  if (!pseq.has_value()) {
    return done(absl::NotFoundError(absl::StrCat("pipeline ", pipeline_id, " not found")));
  }
  PostOrFail(
      [this, pseq = *pseq, pipeline_id, done](Txn& txn) {
        auto loaded = LoadPipeline(txn, pseq);
        if (!loaded.ok()) return done(loaded.status());
        if (!loaded->has_value()) {
          return done(absl::NotFoundError(absl::StrCat("pipeline ", pipeline_id, " not found")));
        }
        Pipeline pipeline = std::move(**loaded);
        if (!pipeline.cancel_requested()) {
          pipeline.set_cancel_requested(true);
          // Written first: the cascade below reads it to cancel rather than skip.
          txn.Put(Cf::kPipelines, keys::JobKey(pseq), pipeline.SerializeAsString());
        }
        for (const farm::v1::PipelineJob& pj : pipeline.jobs()) {
          const uint64_t seq = keys::ParseJobId(pj.job_id()).value_or(0);
          auto job = LoadJob(txn, seq);
          if (!job.ok()) return done(job.status());
          if (!job->has_value() || IsTerminal((*job)->state()) || (*job)->cancel_requested()) {
            continue;
          }
          if (absl::Status s = CancelInTxn(txn, **job); !s.ok()) return done(s);
        }
        FARM_LOG(INFO) << "[pipeline=" << pipeline_id << "] cancel requested";
        if (absl::Status s = FillViewInTxn(txn, pipeline); !s.ok()) return done(s);
        ReplyAfterCommit(txn, done, pipeline);
      },
      [&](absl::Status s) { done(s); });
}

absl::StatusOr<Pipeline> Scheduler::GetPipeline(absl::string_view pipeline_id) const {
  const std::optional<uint64_t> pseq = keys::ParsePipelineId(pipeline_id);
  auto not_found = [&] {
    return absl::NotFoundError(absl::StrCat("pipeline ", pipeline_id, " not found"));
  };
  if (!pseq.has_value()) return not_found();
  FARM_ASSIGN_OR_RETURN(auto raw, store_->Get(Cf::kPipelines, keys::JobKey(*pseq)));
  if (!raw.has_value()) return not_found();
  FARM_ASSIGN_OR_RETURN(Pipeline pipeline, ParsePipeline(*raw, *pseq));
  absl::Status error;
  FillView(pipeline, [&](const std::string& id) -> std::optional<Job> {
    absl::StatusOr<Job> job = GetJob(id);
    if (!job.ok()) {
      if (error.ok()) error = job.status();
      return std::nullopt;
    }
    return *std::move(job);
  });
  FARM_RETURN_IF_ERROR(error);
  return pipeline;
}

absl::StatusOr<farm::v1::ListPipelinesResponse> Scheduler::ListPipelines(
    const farm::v1::ListPipelinesRequest& req) const {
  FARM_ASSIGN_OR_RETURN(internal::Page page,
                        internal::ParsePage(req.limit(), req.page_token(), keys::ParsePipelineId));
  const int limit = page.limit;
  std::vector<uint64_t> seqs;
  FARM_RETURN_IF_ERROR(store_->Scan(
      Cf::kPipelines, "", page.upper,
      [&](absl::string_view key, absl::string_view) {
        seqs.push_back(keys::ReadU64(key, 0));
        return seqs.size() < static_cast<size_t>(limit);
      },
      /*reverse=*/true));
  farm::v1::ListPipelinesResponse resp;
  size_t page_bytes = 0;
  uint64_t last = 0;  // the last pipeline returned
  for (uint64_t seq : seqs) {
    absl::StatusOr<Pipeline> p = GetPipeline(keys::PipelineId(seq));
    if (absl::IsNotFound(p.status())) continue;  // expired between the scan and the read
    FARM_RETURN_IF_ERROR(p.status());
    // Far below the gRPC message limit; one pipeline always fits (kMaxPipelineRecordBytes).
    const size_t bytes = p->ByteSizeLong();
    if (resp.pipelines_size() > 0 && page_bytes + bytes > internal::Page::kMaxBytes) break;
    page_bytes += bytes;
    *resp.add_pipelines() = *std::move(p);
    last = seq;
  }
  const bool more = last != 0 && (last != seqs.back() || seqs.size() == static_cast<size_t>(limit));
  if (more && last > 1) resp.set_next_page_token(keys::PipelineId(last));
  return resp;
}

absl::Status Scheduler::RecoverGroups() {
  groups_.clear();
  return store_->Scan(Cf::kGroups, "", "", [&](absl::string_view key, absl::string_view) {
    const size_t zero = key.find('\0');
    if (key.size() < 2 || zero == absl::string_view::npos || key.size() != zero + 9) return true;
    Group& group = groups_[std::string(key.substr(1, zero - 1))];
    if (key[0] == keys::kGroupAdmitted) group.admitted.insert(keys::ReadU64(key, zero + 1));
    if (key[0] == keys::kGroupWaiting) ++group.waiting;
    return true;
  });
}

}  // namespace farm::coordinator
