// FileBlobStore's maintenance: writes the uses collected in memory (touches_) to the metadata,
// sweeps idle uploads, and evicts least recently used blobs above max_bytes. Runs on its own
// thread (StartMaintenance) or in the caller (RunMaintenance, for tests); RunMaintenance calls
// never overlap. Holds one stripe at a time.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "coordinator/cas/file_blob_store.h"
#include "coordinator/cas/file_blob_store_internal.h"
#include "coordinator/store/keys.h"

namespace farm::coordinator {

using cas_internal::EncodeMeta;
using cas_internal::LruKey;

absl::Status FileBlobStore::RunMaintenance() {
  absl::MutexLock lock(&maintenance_mu_);
  absl::Status flushed = FlushTouches();
  SweepUploads();
  // Evict even when the flush failed: eviction still honours the unflushed uses (see Evict).
  absl::Status evicted = Evict();
  return flushed.ok() ? evicted : flushed;
}

absl::Status FileBlobStore::FlushTouches() {
  absl::flat_hash_map<std::string, int64_t> pending;
  {
    absl::MutexLock lock(&touch_mu_);
    pending.swap(touches_);
  }
  for (const auto& [hash, when] : pending) {
    absl::MutexLock lock(&StripeFor(hash));
    FARM_ASSIGN_OR_RETURN(std::optional<Meta> meta, GetMeta(hash));
    if (!meta.has_value() || when <= meta->accessed_ms) continue;
    WriteBatch batch;
    batch.Delete(Cf::kCasLru, LruKey(meta->accessed_ms, hash));
    batch.Put(Cf::kCasBlobs, hash,
              EncodeMeta(meta->size, meta->created_ms, when, meta->pinned_until_ms));
    batch.Put(Cf::kCasLru, LruKey(when, hash), "");
    FARM_RETURN_IF_ERROR(store_->Write(batch, /*sync=*/false));
  }
  return absl::OkStatus();
}

void FileBlobStore::SweepUploads() {
  const int64_t cutoff = clock_->NowMs() - options_.upload_idle_ttl_ms;
  std::vector<std::shared_ptr<Upload>> expired;
  {
    absl::MutexLock lock(&uploads_mu_);
    for (const auto& [key, upload] : uploads_) {
      absl::MutexLock upload_lock(&upload->mu);
      if (upload->last_active_ms < cutoff) expired.push_back(upload);
    }
  }
  for (const auto& upload : expired) DiscardUpload(upload);
  if (!expired.empty()) {
    FARM_LOG(INFO) << "CAS: swept " << expired.size() << " upload(s) idle for more than "
                   << options_.upload_idle_ttl_ms / 1000 << "s";
  }
}

int64_t FileBlobStore::BytesOverBudget() const {
  const int64_t bytes = bytes_.load();
  if (bytes <= options_.max_bytes) return 0;
  return bytes - options_.max_bytes / 100 * options_.low_watermark_percent;
}

absl::Status FileBlobStore::Evict() {
  if (BytesOverBudget() == 0) return absl::OkStatus();
  if (eviction_holds_.load() > 0) return absl::OkStatus();  // a backup is running
  const int64_t target = options_.max_bytes / 100 * options_.low_watermark_percent;
  const int64_t now = clock_->NowMs();
  const int64_t cutoff = now - options_.min_age_ms;
  const int64_t before = bytes_.load();
  int64_t evicted = 0;
  std::string start;
  bool exhausted = false;
  while (bytes_.load() > target && !exhausted) {
    constexpr size_t kBatch = 256;
    std::vector<std::string> batch;
    FARM_RETURN_IF_ERROR(
        store_->Scan(Cf::kCasLru, start, "", [&](absl::string_view key, absl::string_view) {
          if (key.size() != 8 + common::kSha256HexLength) return true;  // not ours; skip
          if (static_cast<int64_t>(keys::ReadU64(key, 0)) > cutoff) {
            exhausted = true;  // this and everything after it is too young
            return false;
          }
          batch.emplace_back(key);
          return batch.size() < kBatch;
        }));
    if (batch.empty()) break;
    if (batch.size() < kBatch) exhausted = true;
    start = batch.back() + std::string(1, '\0');
    FARM_RETURN_IF_ERROR(EvictCandidates(batch, target, cutoff, now, &evicted));
  }
  FARM_LOG(INFO) << "CAS eviction: removed " << evicted << " blob(s), " << before << " -> "
                 << bytes_.load() << " bytes (limit " << options_.max_bytes << ")";
  if (bytes_.load() > options_.max_bytes) {
    FARM_LOG(WARNING) << "CAS is still above --cas_max_bytes: the remaining blobs are pinned or "
                         "were used within --cas_min_age";
  }
  return absl::OkStatus();
}

absl::Status FileBlobStore::EvictCandidates(const std::vector<std::string>& lru_keys,
                                            int64_t target, int64_t cutoff, int64_t now,
                                            int64_t* evicted) {
  for (const std::string& key : lru_keys) {
    if (bytes_.load() <= target) break;
    const int64_t accessed = static_cast<int64_t>(keys::ReadU64(key, 0));
    const absl::string_view hash = absl::string_view(key).substr(8);
    absl::MutexLock lock(&StripeFor(hash));
    FARM_ASSIGN_OR_RETURN(std::optional<Meta> meta, GetMeta(hash));
    if (!meta.has_value() || meta->accessed_ms != accessed) {
      // A stale index entry (its blob is gone or was used later).
      WriteBatch stale;
      stale.Delete(Cf::kCasLru, key);
      FARM_RETURN_IF_ERROR(store_->Write(stale, /*sync=*/false));
      continue;
    }
    if (meta->pinned_until_ms > now) continue;
    {
      absl::MutexLock touch_lock(&touch_mu_);
      auto it = touches_.find(hash);
      if (it != touches_.end() && it->second > cutoff) continue;  // used, not yet flushed
    }
    FARM_RETURN_IF_ERROR(RemoveLocked(hash, *meta));
    ++evicted_;
    ++*evicted;
  }
  return absl::OkStatus();
}

void FileBlobStore::WakeMaintenance() {
  absl::MutexLock lock(&wake_mu_);
  wake_ = true;
}

void FileBlobStore::StartMaintenance() {
  if (maintenance_.joinable()) return;
  {
    absl::MutexLock lock(&wake_mu_);
    stop_ = false;
  }
  maintenance_ = std::thread([this] { MaintenanceLoop(); });
}

void FileBlobStore::StopMaintenance() {
  if (!maintenance_.joinable()) return;
  {
    absl::MutexLock lock(&wake_mu_);
    stop_ = true;
  }
  maintenance_.join();
}

void FileBlobStore::MaintenanceLoop() {
  while (true) {
    {
      absl::MutexLock lock(&wake_mu_);
      auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(wake_mu_) { return wake_ || stop_; };
      wake_mu_.AwaitWithTimeout(absl::Condition(&woken),
                                absl::Milliseconds(options_.maintenance_interval_ms));
      if (stop_) return;
      wake_ = false;
    }
    if (absl::Status s = RunMaintenance(); !s.ok()) {
      FARM_LOG(WARNING) << "CAS maintenance: " << s;
    }
  }
}

}  // namespace farm::coordinator
