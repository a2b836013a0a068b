#include "coordinator/factory/overstock.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "common/status_macros.h"

namespace farm::coordinator::factory {
namespace {

constexpr int64_t kDayMs = 24 * 3600'000LL;

// Whether a job that needs `job` (in its pipeline) has started: it staged the artifacts.
class Consumers {
 public:
  explicit Consumers(const JobReads* reads) : reads_(reads) {}

  absl::StatusOr<bool> Consumed(const farm::v1::Job& job) {
    if (job.pipeline_id().empty()) return false;
    auto [it, is_new] = pipelines_.try_emplace(job.pipeline_id());
    if (is_new) {
      absl::StatusOr<farm::v1::Pipeline> p = reads_->GetPipeline(job.pipeline_id());
      if (!p.ok() && !absl::IsNotFound(p.status())) return p.status();
      if (p.ok()) it->second = *std::move(p);
    }
    for (const farm::v1::PipelineJob& other : it->second.jobs()) {
      if (other.started_ms() == 0) continue;
      if (std::find(other.needs().begin(), other.needs().end(), job.pipeline_job()) !=
          other.needs().end()) {
        return true;
      }
    }
    return false;
  }

 private:
  const JobReads* const reads_;
  absl::flat_hash_map<std::string, farm::v1::Pipeline> pipelines_;
};

absl::Status AddCas(BlobStore* blobs, int64_t now_ms, farm::v1::Overstock& out) {
  static const std::vector<int64_t> kBounds = {kDayMs, 7 * kDayMs, 30 * kDayMs};
  static const char* const kNames[] = {"< 1d", "1d-7d", "7d-30d", ">= 30d"};
  FARM_ASSIGN_OR_RETURN(std::vector<BlobStore::AgeCount> ages, blobs->CountByAge(kBounds, now_ms));
  for (size_t i = 0; i < ages.size() && i < 4; ++i) {
    farm::v1::Overstock::Age* age = out.add_cas_by_age();
    age->set_age(kNames[i]);
    age->set_blobs(ages[i].blobs);
    age->set_bytes(ages[i].bytes);
    out.set_cas_bytes(out.cas_bytes() + ages[i].bytes);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<farm::v1::Overstock> BuildOverstock(const OverstockSources& sources,
                                                   const std::vector<std::string>& ended,
                                                   int64_t ended_total, int64_t window_ms,
                                                   int64_t now_ms) {
  farm::v1::Overstock out;
  Consumers consumers(sources.reads);
  for (const std::string& id : ended) {
    absl::StatusOr<farm::v1::Job> job = sources.reads->GetJob(id);
    if (absl::IsNotFound(job.status())) continue;
    FARM_RETURN_IF_ERROR(job.status());
    out.set_jobs_read(out.jobs_read() + 1);
    for (const farm::v1::Attempt& a : job->attempts()) {
      for (const farm::v1::StepResult& s : a.steps())
        out.set_log_bytes(out.log_bytes() + s.log_bytes());
    }
    if (job->artifacts().empty()) continue;
    FARM_ASSIGN_OR_RETURN(bool consumed, consumers.Consumed(*job));
    for (const farm::v1::Artifact& a : job->artifacts()) {
      out.set_artifacts(out.artifacts() + 1);
      out.set_artifact_bytes(out.artifact_bytes() + a.size());
      if (consumed || sources.blobs == nullptr) continue;
      FARM_ASSIGN_OR_RETURN(std::optional<BlobStore::Use> use, sources.blobs->UseOf(a.hash()));
      // Gone from the store (evicted): no longer stock.
      if (use.has_value() && use->accessed_ms <= job->finished_ms()) {
        out.set_unused_artifacts(out.unused_artifacts() + 1);
        out.set_unused_bytes(out.unused_bytes() + a.size());
      }
    }
  }
  out.set_sampled(ended_total > static_cast<int64_t>(ended.size()));
  if (window_ms > 0 && out.jobs_read() > 0) {
    // Per day over the window; a sample stands for every job that ended in it.
    const double scale =
        static_cast<double>(std::max<int64_t>(ended_total, out.jobs_read())) / out.jobs_read();
    out.set_log_bytes_per_day(static_cast<double>(out.log_bytes()) * scale * kDayMs / window_ms);
  }
  if (sources.blobs != nullptr) FARM_RETURN_IF_ERROR(AddCas(sources.blobs, now_ms, out));
  if (sources.store != nullptr) {
    absl::StatusOr<StoreStats> stats = sources.store->Stats();
    if (stats.ok() && static_cast<size_t>(Cf::kLogs) < stats->families.size()) {
      // Flushed (estimated) and still in memory.
      const StoreStats::Family& logs = stats->families[static_cast<size_t>(Cf::kLogs)];
      out.set_log_store_bytes(logs.live_bytes + logs.memtable_bytes);
    }
  }
  if (sources.gc) {
    FARM_ASSIGN_OR_RETURN(*out.mutable_reclaimable(), sources.gc(/*dry_run=*/true));
  }
  return out;
}

}  // namespace farm::coordinator::factory
