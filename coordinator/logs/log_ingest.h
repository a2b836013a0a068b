// Log ingest: decides what of an uploaded chunk of a running attempt's output is stored, and
// keeps the byte accounting that decision needs. Output is addressed by (job, attempt, step,
// byte offset); an upload may be resent after any failure, so a chunk's bytes that are already
// committed are skipped, a chunk that would leave a gap is refused, and past the job's limit
// one truncation marker is stored and the rest accepted but dropped (so that the agent moves
// on). The decision is pure: the caller writes the returned record (in the same group as
// everything else) and answers the committed length once it is durable.
//
// Owns: per running attempt, the committed length of each step's output and the job's total.
// Engine thread only (it is the scheduler's, beside the leases). Errors: INVALID_ARGUMENT (a
// bad step index or offset), OUT_OF_RANGE (a gap), FAILED_PRECONDITION (an attempt it does not
// track: the lease ended).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "coordinator/store/store.h"

namespace farm::coordinator {

class LogIngest {
 public:
  explicit LogIngest(int64_t max_bytes_per_job) : max_bytes_per_job_(max_bytes_per_job) {}

  // Starts accounting for a running attempt with `steps` steps and nothing stored yet.
  void Track(uint64_t seq, uint32_t attempt, size_t steps);
  // The same after a restart: reads the committed length of each step from the store.
  absl::Status Recover(Store* store, uint64_t seq, uint32_t attempt, size_t steps);
  // The attempt ended.
  void Forget(uint64_t seq);
  // Forgets every attempt (before recovery).
  void Clear() { attempts_.clear(); }

  struct Accepted {
    // What to store, when there is something: the key in Cf::kLogs and the bytes.
    std::optional<std::pair<std::string, std::string>> record;
    int64_t committed = 0;  // the step's committed length once `record` is written
  };
  absl::StatusOr<Accepted> Accept(uint64_t seq, uint32_t attempt, uint32_t step, int64_t offset,
                                  absl::string_view data);

  // The committed length of a step's output (0 for an untracked attempt).
  int64_t Committed(uint64_t seq, uint32_t step) const;

 private:
  struct Attempt {
    uint32_t number = 0;
    std::vector<int64_t> steps;  // committed length of each step's output
    int64_t total = 0;           // bytes stored for the job in this attempt
  };

  const int64_t max_bytes_per_job_;
  std::map<uint64_t, Attempt> attempts_;
};

}  // namespace farm::coordinator
