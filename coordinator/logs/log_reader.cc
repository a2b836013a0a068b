#include "coordinator/logs/log_reader.h"

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "coordinator/store/keys.h"

namespace farm::coordinator {

absl::StatusOr<std::vector<StoredChunk>> ReadLog(Store* store, uint64_t seq, uint32_t attempt,
                                                 uint32_t step, int64_t offset, size_t max_bytes) {
  const std::string prefix = keys::LogStepPrefix(seq, attempt, step);
  const std::string end = keys::PrefixEnd(prefix);
  std::vector<StoredChunk> out;
  size_t total = 0;
  // The chunk that holds `offset` may start before it: find the last chunk starting at or
  // before offset first.
  std::string start = keys::LogKey(seq, attempt, step, static_cast<uint64_t>(offset));
  absl::Status s = store->Scan(
      Cf::kLogs, prefix, keys::LogKey(seq, attempt, step, static_cast<uint64_t>(offset) + 1),
      [&](absl::string_view key, absl::string_view value) {
        start = std::string(key);
        return false;
      },
      /*reverse=*/true);
  if (!s.ok()) return s;
  s = store->Scan(Cf::kLogs, start, end, [&](absl::string_view key, absl::string_view value) {
    const int64_t chunk_offset = static_cast<int64_t>(keys::DecodeLogKey(key).offset);
    const int64_t chunk_end = chunk_offset + static_cast<int64_t>(value.size());
    if (chunk_end <= offset) return true;
    const size_t skip = offset > chunk_offset ? static_cast<size_t>(offset - chunk_offset) : 0;
    StoredChunk c;
    c.offset = chunk_offset + static_cast<int64_t>(skip);
    c.data = std::string(value.substr(skip));
    total += c.data.size();
    out.push_back(std::move(c));
    return total < max_bytes;
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<int64_t> CommittedLogLength(Store* store, uint64_t seq, uint32_t attempt,
                                           uint32_t step) {
  const std::string prefix = keys::LogStepPrefix(seq, attempt, step);
  int64_t length = 0;
  absl::Status s = store->Scan(
      Cf::kLogs, prefix, keys::PrefixEnd(prefix),
      [&](absl::string_view key, absl::string_view value) {
        length = static_cast<int64_t>(keys::DecodeLogKey(key).offset + value.size());
        return false;
      },
      /*reverse=*/true);
  if (!s.ok()) return s;
  return length;
}

absl::StatusOr<std::optional<LogsRemoved>> ReadLogsRemoved(Store* store, uint64_t seq) {
  FARM_ASSIGN_OR_RETURN(std::optional<std::string> raw,
                        store->Get(Cf::kLogs, keys::LogsRemovedKey(seq)));
  if (!raw.has_value() || raw->size() < 8) return std::nullopt;
  return LogsRemoved{static_cast<int64_t>(keys::ReadU64(*raw, 0)), raw->substr(8)};
}

absl::Status LogsRemovedError(uint64_t seq, const LogsRemoved& removed) {
  return absl::FailedPreconditionError(absl::StrCat(
      "the output of job ", seq, " was removed by retention (--", removed.policy, ") at ",
      absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", absl::FromUnixMillis(removed.removed_ms),
                       absl::UTCTimeZone()),
      "; the job's record is kept"));
}

}  // namespace farm::coordinator
