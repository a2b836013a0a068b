// ActionCache retention (action_cache.h): results expire a while after they were stored.
#include <string>
#include <vector>

#include "common/status_macros.h"
#include "coordinator/cas/action_cache.h"
#include "coordinator/cas/action_cache_keys.h"
#include "coordinator/store/keys.h"

namespace farm::coordinator {

absl::Status ActionCache::Backfill(size_t max) {
  FARM_ASSIGN_OR_RETURN(std::optional<std::string> cursor, store_->Get(Cf::kMeta, kAcBackfillKey));
  if (cursor.has_value() && *cursor == "done") return absl::OkStatus();
  std::vector<std::string> keys;
  FARM_RETURN_IF_ERROR(store_->Scan(Cf::kActionCache, cursor.value_or(""), "",
                                    [&](absl::string_view key, absl::string_view) {
                                      keys.emplace_back(key);
                                      return keys.size() < max;
                                    }));
  const int64_t now = clock_->NowMs();
  WriteBatch batch;
  for (const std::string& key : keys) {
    FARM_ASSIGN_OR_RETURN(std::optional<std::string> age,
                          store_->Get(Cf::kRetention, AcStoredKey(key)));
    if (age.has_value()) continue;
    batch.Put(Cf::kRetention, AcStoredKey(key), keys::U64(static_cast<uint64_t>(now)));
    batch.Put(Cf::kRetention, AgeKey(now, key), "");
  }
  batch.Put(Cf::kMeta, std::string(kAcBackfillKey),
            keys.size() < max ? std::string("done") : keys.back() + std::string(1, '\0'));
  return store_->Write(batch, /*sync=*/false);
}

absl::StatusOr<ActionCache::Expired> ActionCache::Expire(int64_t cutoff_ms, bool dry_run,
                                                         size_t max) {
  if (!dry_run) FARM_RETURN_IF_ERROR(Backfill(max));
  Expired out;
  if (cutoff_ms <= 0) return out;
  std::vector<std::string> aged;
  FARM_RETURN_IF_ERROR(store_->Scan(Cf::kRetention, "a", AgeKey(cutoff_ms, ""),
                                    [&](absl::string_view key, absl::string_view) {
                                      aged.emplace_back(key);
                                      return aged.size() < max;
                                    }));
  out.more = aged.size() >= max;
  WriteBatch batch;
  for (const std::string& age_key : aged) {
    if (age_key.size() < 9) continue;
    const std::string key = age_key.substr(9);
    const int64_t stored = static_cast<int64_t>(keys::ReadU64(age_key, 1));
    FARM_ASSIGN_OR_RETURN(std::optional<std::string> current,
                          store_->Get(Cf::kRetention, AcStoredKey(key)));
    const bool live = current.has_value() && current->size() == 8 &&
                      static_cast<int64_t>(keys::ReadU64(*current, 0)) == stored;
    if (live) ++out.removed;
    if (dry_run) continue;
    batch.Delete(Cf::kRetention, age_key);  // stale (the result was stored again) or due
    if (!live) continue;
    batch.Delete(Cf::kRetention, AcStoredKey(key));
    batch.Delete(Cf::kActionCache, key);
  }
  // Unsynced like the action cache's other deletes: a crash brings back an expired result,
  // which the next pass removes again.
  if (!batch.empty()) FARM_RETURN_IF_ERROR(store_->Write(batch, /*sync=*/false));
  return out;
}

}  // namespace farm::coordinator
