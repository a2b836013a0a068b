#include "coordinator/scheduler/job_records.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/store/keys.h"

namespace farm::coordinator::jobs {

absl::StatusOr<farm::v1::Job> Parse(absl::string_view raw, uint64_t seq) {
  farm::v1::Job job;
  if (!job.ParseFromArray(raw.data(), static_cast<int>(raw.size()))) {
    return absl::DataLossError(absl::StrCat("job ", seq, " record is corrupt"));
  }
  return job;
}

absl::StatusOr<std::optional<farm::v1::Job>> Load(Txn& txn, uint64_t seq) {
  FARM_ASSIGN_OR_RETURN(auto raw, txn.Get(Cf::kJobs, keys::JobKey(seq)));
  if (!raw.has_value()) return std::nullopt;
  FARM_ASSIGN_OR_RETURN(farm::v1::Job job, Parse(*raw, seq));
  return job;
}

farm::v1::PipelineJob Summary(const farm::v1::Job& job) {
  farm::v1::PipelineJob summary;
  summary.set_state(job.state());
  summary.set_started_ms(job.started_ms());
  summary.set_finished_ms(job.finished_ms());
  summary.set_attempts(static_cast<uint32_t>(job.attempts_size()));
  return summary;
}

void Put(Txn& txn, const farm::v1::Job& job) {
  txn.Put(Cf::kJobs, keys::JobKey(job.seq()), job.SerializeAsString());
  if (job.pipeline_id().empty()) return;
  const std::optional<uint64_t> pseq = keys::ParsePipelineId(job.pipeline_id());
  if (!pseq.has_value()) return;
  txn.Put(Cf::kPipelineJobs, keys::PipelineJobKey(*pseq, job.seq()),
          Summary(job).SerializeAsString());
}

void PutProgress(Txn& txn, uint64_t seq, const farm::v1::Attempt& attempt) {
  txn.PutBlind(Cf::kProgress, keys::JobKey(seq), attempt.SerializeAsString());
}

void DeleteProgress(Txn& txn, uint64_t seq) { txn.Delete(Cf::kProgress, keys::JobKey(seq)); }

bool MergeProgress(farm::v1::Job& job, const farm::v1::Attempt& progress) {
  if (job.state() != farm::v1::RUNNING || job.attempts().empty()) return false;
  farm::v1::Attempt* last = job.mutable_attempts(job.attempts_size() - 1);
  if (last->number() != progress.number() || last->epoch() != progress.epoch()) return false;
  *last = progress;
  return true;
}

absl::StatusOr<std::optional<farm::v1::Job>> Read(Store* store, uint64_t seq) {
  // Progress first: if the job changes in between, the record read second is the newer one,
  // and MergeProgress ignores progress that is not its current attempt's.
  FARM_ASSIGN_OR_RETURN(auto progress_raw, store->Get(Cf::kProgress, keys::JobKey(seq)));
  FARM_ASSIGN_OR_RETURN(auto raw, store->Get(Cf::kJobs, keys::JobKey(seq)));
  if (!raw.has_value()) return std::nullopt;
  FARM_ASSIGN_OR_RETURN(farm::v1::Job job, Parse(*raw, seq));
  if (progress_raw.has_value()) {
    farm::v1::Attempt progress;
    if (!progress.ParseFromString(*progress_raw)) {
      return absl::DataLossError(absl::StrCat("job ", seq, " progress record is corrupt"));
    }
    MergeProgress(job, progress);
  }
  return job;
}

}  // namespace farm::coordinator::jobs
