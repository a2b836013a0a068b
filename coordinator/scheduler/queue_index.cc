#include "coordinator/scheduler/queue_index.h"

#include "common/status_macros.h"

namespace farm::coordinator {

void QueueIndex::Reset() {
  windows_.clear();
  new_work_.clear();
  for (uint64_t id : sets_->Ids()) windows_.try_emplace(id);
}

QueueIndex::Window& QueueIndex::WindowOf(uint64_t labelset) {
  // A set known from an earlier process may have queued keys: not complete until a refill
  // has looked.
  return windows_[labelset];
}

keys::QueueKey QueueIndex::KeyOf(const farm::v1::Job& job, uint64_t labelset) const {
  keys::QueueKey k;
  k.labelset = labelset;
  k.priority = job.spec().priority();
  k.pos = job.attempts().empty()
              ? keys::NewJobPosition(job.seq())
              : keys::RequeuePosition(job.attempts(job.attempts_size() - 1).epoch());
  return k;
}

void QueueIndex::Add(Txn& txn, const farm::v1::Job& job) {
  bool new_set = false;
  const uint64_t labelset = sets_->Intern(txn, job.spec().labels(), &new_set);
  Window& w = WindowOf(labelset);
  // A set never seen before has nothing queued: its empty window is the whole of it.
  if (new_set) w.complete = true;
  const keys::QueueKey key = KeyOf(job, labelset);
  std::string encoded = key.Encode();
  // A key below the refill bound (a higher priority) moves the bound down to it.
  if (!w.scan_from.empty() && encoded < w.scan_from) w.scan_from = encoded;
  txn.Put(Cf::kQueue, std::move(encoded), keys::U64(job.seq()));
  // Keep the window a prefix of the set's dispatch order: a key past its end stays in the
  // store until a refill reaches it.
  if (w.complete || (!w.keys.empty() && key < w.keys.rbegin()->first)) {
    w.keys.emplace(key, job.seq());
    if (w.keys.size() > 2 * window_) {
      w.keys.erase(std::prev(w.keys.end()));
      w.complete = false;
    }
  }
  new_work_.insert(labelset);
}

void QueueIndex::Remove(Txn& txn, const farm::v1::Job& job) {
  const uint64_t labelset = sets_->Intern(txn, job.spec().labels());
  const keys::QueueKey key = KeyOf(job, labelset);
  txn.Delete(Cf::kQueue, key.Encode());
  auto it = windows_.find(labelset);
  if (it != windows_.end()) it->second.keys.erase(key);
}

absl::Status QueueIndex::Refill(Txn& txn, uint64_t labelset, Window& w) {
  w.keys.clear();
  const std::string prefix = keys::QueuePrefix(labelset);
  const std::string& start = w.scan_from.empty() ? prefix : w.scan_from;
  size_t seen = 0;
  FARM_RETURN_IF_ERROR(txn.Scan(Cf::kQueue, start, keys::PrefixEnd(prefix),
                                [&](absl::string_view key, absl::string_view value) {
                                  if (key.size() != 20 || value.size() != 8) return true;
                                  if (++seen > window_) return false;
                                  w.keys.emplace(keys::QueueKey::Decode(key),
                                                 keys::ReadU64(value, 0));
                                  return true;
                                }));
  w.complete = seen <= window_;
  return absl::OkStatus();
}

absl::Status QueueIndex::Fill(Txn& txn, uint64_t labelset, Window& w) {
  if (!w.keys.empty() || w.complete) return absl::OkStatus();
  return Refill(txn, labelset, w);
}

uint64_t QueueIndex::Pop(Txn& txn, Window& w) {
  auto head = w.keys.begin();
  const uint64_t seq = head->second;
  // The window is a prefix of the set's order, so the head is its smallest queued key.
  w.scan_from = head->first.Encode();
  txn.Delete(Cf::kQueue, w.scan_from);
  w.keys.erase(head);
  return seq;
}

absl::StatusOr<std::optional<uint64_t>> QueueIndex::PopFor(Txn& txn, const Labels& agent) {
  Window* best = nullptr;
  for (auto& [labelset, w] : windows_) {
    const Labels* required = sets_->Find(labelset);
    if (required == nullptr || !LabelsMatch(agent, *required) || Paused(labelset)) continue;
    FARM_RETURN_IF_ERROR(Fill(txn, labelset, w));
    if (w.keys.empty()) continue;
    if (best == nullptr || w.keys.begin()->first < best->keys.begin()->first) best = &w;
  }
  if (best == nullptr) return std::nullopt;
  return Pop(txn, *best);
}

absl::StatusOr<std::optional<uint64_t>> QueueIndex::PopHead(Txn& txn, uint64_t labelset) {
  if (Paused(labelset)) return std::nullopt;
  Window& w = WindowOf(labelset);
  FARM_RETURN_IF_ERROR(Fill(txn, labelset, w));
  if (w.keys.empty()) return std::nullopt;
  return Pop(txn, w);
}

bool QueueIndex::Matches(uint64_t labelset, const Labels& agent) const {
  const Labels* required = sets_->Find(labelset);
  return required != nullptr && LabelsMatch(agent, *required);
}

std::vector<uint64_t> QueueIndex::TakeNewWork() {
  std::vector<uint64_t> out(new_work_.begin(), new_work_.end());
  new_work_.clear();
  return out;
}

}  // namespace farm::coordinator
