// Reads committed step output from the store. Any thread.
#pragma once

#include <cstdint>
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

// The committed length of a step's output (the end of its last chunk).
absl::StatusOr<int64_t> CommittedLogLength(Store* store, uint64_t seq, uint32_t attempt,
                                           uint32_t step);

}  // namespace farm::coordinator
