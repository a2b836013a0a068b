#include "coordinator/store/memory_store.h"

#include <vector>

namespace farm::coordinator {

absl::Status MemoryStore::ReadFault(Cf cf) {
  const int i = static_cast<int>(cf);
  if (read_fail_times_[i] <= 0) return absl::OkStatus();
  --read_fail_times_[i];
  return read_fail_[i];
}

void MemoryStore::FailReads(Cf cf, absl::Status status, int times) {
  absl::MutexLock lock(&mu_);
  read_fail_[static_cast<int>(cf)] = std::move(status);
  read_fail_times_[static_cast<int>(cf)] = times;
}

absl::StatusOr<std::optional<std::string>> MemoryStore::Get(Cf cf, absl::string_view key) {
  absl::MutexLock lock(&mu_);
  if (absl::Status fault = ReadFault(cf); !fault.ok()) return fault;
  const auto& m = data_[static_cast<int>(cf)];
  auto it = m.find(std::string(key));
  if (it == m.end()) return std::nullopt;
  return it->second;
}

absl::Status MemoryStore::Scan(Cf cf, absl::string_view start, absl::string_view limit,
                               const ScanFn& fn, bool reverse) {
  // Copy the range first so that fn may call back into the store.
  std::vector<std::pair<std::string, std::string>> items;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status fault = ReadFault(cf); !fault.ok()) return fault;
    const auto& m = data_[static_cast<int>(cf)];
    auto begin = m.lower_bound(std::string(start));
    auto end = limit.empty() ? m.end() : m.lower_bound(std::string(limit));
    for (auto it = begin; it != end; ++it) items.emplace_back(it->first, it->second);
  }
  if (reverse) {
    for (auto it = items.rbegin(); it != items.rend(); ++it) {
      if (!fn(it->first, it->second)) break;
    }
  } else {
    for (const auto& [k, v] : items) {
      if (!fn(k, v)) break;
    }
  }
  return absl::OkStatus();
}

absl::Status MemoryStore::Write(const WriteBatch& batch, bool sync) {
  absl::MutexLock lock(&mu_);
  if (!fail_.ok()) return fail_;
  ++writes_;
  for (const auto& op : batch.ops()) {
    auto& m = data_[static_cast<int>(op.cf)];
    if (op.is_range) {
      m.erase(m.lower_bound(op.key), op.value.empty() ? m.end() : m.lower_bound(op.value));
    } else if (op.is_delete) {
      m.erase(op.key);
    } else {
      m[op.key] = op.value;
    }
  }
  return absl::OkStatus();
}

void MemoryStore::FailWrites(absl::Status status) {
  absl::MutexLock lock(&mu_);
  fail_ = std::move(status);
}

int64_t MemoryStore::writes() const {
  absl::MutexLock lock(&mu_);
  return writes_;
}

}  // namespace farm::coordinator
