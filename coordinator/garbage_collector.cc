#include "coordinator/garbage_collector.h"

#include <vector>

#include "absl/synchronization/notification.h"
#include "common/io_pool.h"
#include "common/logging.h"
#include "common/posix_io.h"
#include "common/status_macros.h"
#include "coordinator/store/keys.h"

namespace farm::coordinator {

absl::Status GarbageCollector::RunEngine(bool dry_run, farm::v1::CollectGarbageResponse& out,
                                         std::pair<uint64_t, uint64_t>& removed) {
  for (int pass = 0; pass < (dry_run ? 1 : kMaxPasses); ++pass) {
    absl::Notification done;
    absl::StatusOr<Scheduler::GcPass> result;
    scheduler_->CollectGarbage(dry_run, [&](absl::StatusOr<Scheduler::GcPass> r) {
      result = std::move(r);
      done.Notify();
    });
    done.WaitForNotification();
    FARM_RETURN_IF_ERROR(result.status());
    const RetentionReport& r = result->retention;
    out.set_jobs(out.jobs() + r.jobs);
    out.set_pipelines(out.pipelines() + r.pipelines);
    out.set_logs(out.logs() + r.logs);
    out.set_log_bytes(out.log_bytes() + r.log_bytes);
    out.set_events(out.events() + result->events);
    const auto [lo, hi] = result->removed_range;
    if (hi > 0) {
      removed.first = removed.first == 0 ? lo : std::min(removed.first, lo);
      removed.second = std::max(removed.second, hi);
    }
    const bool more =
        r.more || static_cast<uint64_t>(result->events) >= EventRecorder::kMaxDeletesPerSweep;
    out.set_more(more);
    if (!more) break;
  }
  return absl::OkStatus();
}

absl::StatusOr<farm::v1::CollectGarbageResponse> GarbageCollector::Run(bool dry_run) {
  absl::MutexLock lock(&run_mu_);
  farm::v1::CollectGarbageResponse out;
  out.set_dry_run(dry_run);
  std::pair<uint64_t, uint64_t> removed{0, 0};
  FARM_RETURN_IF_ERROR(RunEngine(dry_run, out, removed));
  if (ac_ != nullptr && options_.action_cache_retention_ms > 0) {
    const int64_t cutoff = common::RealClock()->NowMs() - options_.action_cache_retention_ms;
    for (int pass = 0; pass < (dry_run ? 1 : kMaxPasses); ++pass) {
      FARM_ASSIGN_OR_RETURN(ActionCache::Expired expired, ac_->Expire(cutoff, dry_run));
      out.set_action_cache_entries(out.action_cache_entries() + expired.removed);
      if (!expired.more) break;
      if (dry_run) out.set_more(true);
    }
  }
  if (cas_ != nullptr && !dry_run) {
    const BlobStoreStats before = cas_->Stats();
    FARM_RETURN_IF_ERROR(cas_->RunMaintenance());
    const BlobStoreStats after = cas_->Stats();
    out.set_blobs(after.evicted_blobs - before.evicted_blobs);
    out.set_blob_bytes(std::max<int64_t>(0, before.bytes - after.bytes));
  }
  if (cas_ != nullptr && dry_run) out.set_blob_bytes(cas_->BytesOverBudget());
  if (dry_run) return out;
  std::vector<Store::Range> ranges;
  if (removed.second > 0) {
    for (Cf cf : {Cf::kLogs, Cf::kJobs}) {
      ranges.push_back({cf, keys::U64(removed.first), keys::U64(removed.second + 1)});
    }
    ranges.push_back({Cf::kPipelineJobs, "", ""});
  }
  if (out.events() > 0 && options_.event_retention_ms > 0) {
    const int64_t cutoff = common::RealClock()->NowMs() - options_.event_retention_ms;
    ranges.push_back({Cf::kEvents, "", keys::EventKey(cutoff, 0)});
    ranges.push_back({Cf::kJobEvents, "", ""});
  }
  if (out.action_cache_entries() > 0) ranges.push_back({Cf::kActionCache, "", ""});
  if (!ranges.empty()) ranges.push_back({Cf::kRetention, "", ""});
  FARM_RETURN_IF_ERROR(store_->Compact(ranges));
  if (!options_.store_dir.empty()) out.set_store_bytes(common::DirectoryBytes(options_.store_dir));
  return out;
}

void GarbageCollector::Start() {
  if (thread_.joinable() || options_.interval_ms <= 0) return;
  thread_ = std::thread([this] { Loop(); });
}

void GarbageCollector::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void GarbageCollector::Loop() {
  common::SetThreadName("gc");
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_; };
      mu_.AwaitWithTimeout(absl::Condition(&stopping), absl::Milliseconds(options_.interval_ms));
      if (stop_) return;
    }
    absl::StatusOr<farm::v1::CollectGarbageResponse> r = Run(/*dry_run=*/false);
    if (!r.ok()) {
      FARM_LOG(WARNING) << "garbage collection: " << r.status();
    } else if (r->jobs() + r->logs() + r->events() + r->action_cache_entries() + r->blobs() > 0) {
      FARM_LOG(INFO) << "garbage collection: removed " << r->jobs() << " job(s), the output of "
                     << r->logs() << " (" << r->log_bytes() << " bytes), " << r->events()
                     << " event(s), " << r->action_cache_entries() << " action result(s), "
                     << r->blobs() << " blob(s); the store takes " << r->store_bytes() << " bytes";
    }
  }
}

}  // namespace farm::coordinator
