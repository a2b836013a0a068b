// Idempotent submits: a client's request id maps to what its first submit created (a job or a
// pipeline), so that a retried submit returns it instead of creating another. Kept for at least
// `retention_ms` (Cf::kRequests: the id → seq | time, and a time-ordered index for expiry).
// Pipelines' ids live under a prefix no client id can start with (ids have no control
// characters), so a job's id can never pass for a pipeline's.
//
// Engine thread only. Errors: INVALID_ARGUMENT (Validate), the store's read errors.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "coordinator/scheduler/engine.h"

namespace farm::coordinator {

class RequestIds {
 public:
  // kRetry: an operator's retry (the caller scopes the id by what it retries).
  enum class Kind { kJob, kPipeline, kRetry };

  RequestIds(common::Clock* clock, int64_t retention_ms)
      : clock_(clock), retention_ms_(retention_ms) {}

  // At most 256 bytes, no control characters.
  static absl::Status Validate(const std::string& request_id);

  // The seq an earlier submit with this id created; nullopt when there was none (or the id is
  // empty).
  absl::StatusOr<std::optional<uint64_t>> Find(Txn& txn, Kind kind, const std::string& request_id);
  // Remembers that this id created `seq` (nothing for an empty id).
  void Remember(Txn& txn, Kind kind, const std::string& request_id, uint64_t seq, int64_t now_ms);
  // Forgets ids past the retention, a bounded number per call.
  absl::Status Sweep(Txn& txn);

 private:
  common::Clock* const clock_;
  const int64_t retention_ms_;
};

}  // namespace farm::coordinator
