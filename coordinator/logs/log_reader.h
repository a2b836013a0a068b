// Reads committed step output from the store. Any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/store/store.h"

namespace farm::coordinator {

struct StoredChunk {
  int64_t offset = 0;
  std::string data;
};

// Output of (job, attempt, step) from `offset` on, at most about max_bytes (at least one chunk
// when any exists). A chunk that starts before `offset` is cut to start at it.
absl::StatusOr<std::vector<StoredChunk>> ReadLog(Store* store, uint64_t seq, uint32_t attempt,
                                                 uint32_t step, int64_t offset, size_t max_bytes);

// Where retention removed a finished job's output (scheduler/retention.h): when, and the policy
// ("log_retention" or "max_log_bytes"). nullopt while the output is there.
struct LogsRemoved {
  int64_t removed_ms = 0;
  std::string policy;
};
absl::StatusOr<std::optional<LogsRemoved>> ReadLogsRemoved(Store* store, uint64_t seq);
// The error a reader of removed output gets: FAILED_PRECONDITION (the job is there, its output
// is not), saying what became of it.
absl::Status LogsRemovedError(uint64_t seq, const LogsRemoved& removed);

// The committed length of a step's output (the end of its last chunk).
absl::StatusOr<int64_t> CommittedLogLength(Store* store, uint64_t seq, uint32_t attempt,
                                           uint32_t step);

}  // namespace farm::coordinator
