#include "coordinator/scheduler/request_ids.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/store/keys.h"

namespace farm::coordinator {
namespace {

std::string Scoped(RequestIds::Kind kind, const std::string& request_id) {
  if (kind == RequestIds::Kind::kRetry) return absl::StrCat("\x01retry/", request_id);
  return kind == RequestIds::Kind::kJob ? request_id : absl::StrCat("\x01pipeline/", request_id);
}

}  // namespace

absl::Status RequestIds::Validate(const std::string& request_id) {
  if (request_id.size() > 256) {
    return absl::InvalidArgumentError("request_id is longer than 256 bytes");
  }
  for (unsigned char c : request_id) {
    if (c < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError("request_id contains a control character");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<uint64_t>> RequestIds::Find(Txn& txn, Kind kind,
                                                         const std::string& request_id) {
  if (request_id.empty()) return std::nullopt;
  FARM_ASSIGN_OR_RETURN(auto existing,
                        txn.Get(Cf::kRequests, keys::RequestKey(Scoped(kind, request_id))));
  if (!existing.has_value() || existing->size() < 8) return std::nullopt;
  return keys::ReadU64(*existing, 0);
}

void RequestIds::Remember(Txn& txn, Kind kind, const std::string& request_id, uint64_t seq,
                          int64_t now_ms) {
  if (request_id.empty()) return;
  const std::string scoped = Scoped(kind, request_id);
  std::string value = keys::U64(seq);
  keys::AppendU64(value, static_cast<uint64_t>(now_ms));
  txn.Put(Cf::kRequests, keys::RequestKey(scoped), std::move(value));
  txn.PutBlind(Cf::kRequests, keys::RequestTimeKey(now_ms, scoped), "");
}

absl::Status RequestIds::Sweep(Txn& txn) {
  // Bounded work per sweep; a backlog of expired ids drains over several sweeps.
  constexpr size_t kMaxPerSweep = 1000;
  const int64_t cutoff = clock_->NowMs() - retention_ms_;
  if (cutoff <= 0) return absl::OkStatus();
  const std::string start(keys::kRequestTimePrefix);
  std::vector<std::string> expired;
  absl::Status s = txn.Scan(Cf::kRequests, start, keys::RequestTimeKey(cutoff, ""),
                            [&](absl::string_view key, absl::string_view) {
                              expired.emplace_back(key);
                              return expired.size() < kMaxPerSweep;
                            });
  for (const std::string& key : expired) {
    txn.Delete(Cf::kRequests, keys::RequestKey(absl::string_view(key).substr(start.size() + 8)));
    txn.Delete(Cf::kRequests, key);
  }
  return s;
}

}  // namespace farm::coordinator
