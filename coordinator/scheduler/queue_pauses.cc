// The queue index's pauses and reprioritize (queue_index.h).
#include "absl/strings/str_cat.h"
#include "coordinator/scheduler/queue_index.h"
#include "coordinator/store/keys.h"

namespace farm::coordinator {
namespace {

constexpr absl::string_view kPausePrefix = "queue_pause/";

std::string PauseKey(const Labels& selector) {
  return absl::StrCat(kPausePrefix, keys::CanonicalLabels(selector));
}

}  // namespace

void QueueIndex::Reprioritize(Txn& txn, farm::v1::Job& job, int32_t priority) {
  Remove(txn, job);
  job.mutable_spec()->set_priority(priority);
  Add(txn, job);
}

absl::Status QueueIndex::RecoverPauses(Store* store) {
  pauses_.clear();
  const std::string prefix(kPausePrefix);
  return store->Scan(Cf::kMeta, prefix, keys::PrefixEnd(prefix),
                     [&](absl::string_view key, absl::string_view value) {
                       Labels selector = keys::ParseCanonicalLabels(key.substr(prefix.size()));
                       // A malformed entry pauses nothing: an empty selector would pause all.
                       if (selector.empty() || value.size() != 8) return true;
                       pauses_[std::move(selector)] = static_cast<int64_t>(keys::ReadU64(value, 0));
                       return true;
                     });
}

bool QueueIndex::Pause(Txn& txn, const Labels& selector, int64_t now_ms) {
  if (!pauses_.emplace(selector, now_ms).second) return false;
  txn.Put(Cf::kMeta, PauseKey(selector), keys::U64(static_cast<uint64_t>(now_ms)));
  return true;
}

bool QueueIndex::Resume(Txn& txn, const Labels& selector) {
  if (pauses_.erase(selector) == 0) return false;
  txn.Delete(Cf::kMeta, PauseKey(selector));
  for (uint64_t id : sets_->Ids()) {
    const Labels* labels = sets_->Find(id);
    if (LabelsMatch(*labels, selector) && !Paused(id)) new_work_.insert(id);
  }
  return true;
}

bool QueueIndex::Paused(uint64_t labelset) const {
  if (pauses_.empty()) return false;
  const Labels* labels = sets_->Find(labelset);
  if (labels == nullptr) return false;
  for (const auto& [selector, since] : pauses_) {
    if (LabelsMatch(*labels, selector)) return true;
  }
  return false;
}

}  // namespace farm::coordinator
