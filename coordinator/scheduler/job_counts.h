// How many jobs the store holds in each state, kept exact without scanning (issue 13, `admin
// status`): the lifecycle reports every transition (job_lifecycle.h, the one place a job's state
// changes), and whatever deletes job records (retention) reports each deletion. The counts are
// one value in Cf::kMeta ("job_counts": a u64 per JobState, big-endian), rewritten by each group
// that changes them, in the group's batch, so that they are exactly as durable as the jobs.
//
// A store written before the counts existed has no value: Load then counts the jobs once (one
// scan of Cf::kJobs, logged) and writes the result.
//
// Thread-safety: Load, Moved and Removed on the engine thread (Load also before it starts);
// Snapshot from any thread (it may see a group's counts before its write commits, or after it
// failed, until the reload).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "coordinator/scheduler/engine.h"
#include "coordinator/store/store.h"
#include "farm/v1/farm.pb.h"

namespace farm::coordinator {

class JobCounts {
 public:
  static constexpr int kStates = farm::v1::JobState_ARRAYSIZE;
  static constexpr absl::string_view kKey = "job_counts";

  // (Re)loads the counts from the store (after a failed write too), counting them once when
  // the store has none. Store errors as they come; DATA_LOSS for a malformed value.
  absl::Status Load(Store* store);
  // A job went from `from` (JOB_STATE_UNSPECIFIED: a new job) to `to` in this group.
  void Moved(Txn& txn, farm::v1::JobState from, farm::v1::JobState to);
  // A job record in `state` is deleted in this group.
  void Removed(Txn& txn, farm::v1::JobState state);

  // The count of each state, indexed by JobState (UNSPECIFIED stays 0).
  std::array<int64_t, kStates> Snapshot() const;

 private:
  void Add(farm::v1::JobState state, int64_t delta);
  // Writes the counts in the group's batch, once per group, after its last command.
  void WriteOnce(Txn& txn);

  std::array<std::atomic<int64_t>, kStates> counts_{};
  uint64_t written_group_ = 0;  // the last group that writes the counts
};

}  // namespace farm::coordinator
