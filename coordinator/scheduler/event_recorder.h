// Writes the event history (Cf::kEvents, with a per-job index in Cf::kJobEvents): every change
// of a job, an attempt or an agent is appended to the same group as the change itself, so an
// event is durable exactly when what it records is. Events are compact: no specs, the job's
// labels as their label-set id.
//
// The index has one entry per job per group, written just before the group (Txn::BeforeWrite):
// its key is the job's seq and the position of its first event in the group, its value the
// positions of the others (16 bytes each, keys of Cf::kEvents). A submit's two events, or a
// completion's three, thus cost one index key.
//
// Keys are (time, seq): seq increases by one per event; time is the wall clock, but never
// less than the previous event's, so key order is append order and a follower that goes on
// after the last key it read misses nothing. Followers (FollowerHub::NotifyEvents) are woken
// once per group that appended events, after it commits.
//
// Retention: Sweep deletes events older than `retention_ms`, a bounded number per call.
//
// Engine thread only. Errors: the store's read errors from Recover and Sweep.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "common/clock.h"
#include "coordinator/logs/follower_hub.h"
#include "coordinator/scheduler/engine.h"
#include "coordinator/scheduler/label_sets.h"
#include "farm/v1/farm.pb.h"

namespace farm::coordinator {

class EventRecorder {
 public:
  static constexpr int64_t kDefaultRetentionMs = 30LL * 24 * 3600'000;
  // Events deleted per sweep, at most.
  static constexpr size_t kMaxDeletesPerSweep = 20'000;

  EventRecorder(common::Clock* clock, LabelSets* sets, FollowerHub* hub, int64_t retention_ms)
      : clock_(clock), sets_(sets), hub_(hub), retention_ms_(retention_ms) {}

  // Finds where the history ends (the last seq and time).
  absl::Status Recover(Store* store);

  // An event about `job`: its id, pipeline, name within it, and label set.
  farm::v1::Event ForJob(Txn& txn, const farm::v1::Job& job, farm::v1::EventKind kind);
  // Appends `event` to this group, with the next seq and its time: the time_ms the caller set
  // (the instant its own record carries, e.g. the job's finished_ms), else now; never earlier
  // than the last event's.
  void Append(Txn& txn, farm::v1::Event event);

  // Deletes events past the retention (and the index entries they begin). Cheap when nothing is
  // due: it looks again a minute later, or at once while it still finds more than it may delete.
  absl::Status Sweep(Txn& txn);
  // Deletes (or with dry_run, counts) up to kMaxDeletesPerSweep events past the retention now,
  // whenever the last sweep was. Returns how many.
  absl::StatusOr<size_t> Expire(Txn& txn, bool dry_run);

  uint64_t last_seq() const { return last_seq_; }

 private:
  // Adds the event at `event_key` to the job's index entry of this group.
  void IndexBeforeWrite(Txn& txn, uint64_t job, std::string event_key);
  void WriteIndex(Txn& txn);

  common::Clock* const clock_;
  LabelSets* const sets_;
  FollowerHub* const hub_;
  const int64_t retention_ms_;
  uint64_t last_seq_ = 0;
  int64_t last_time_ms_ = 0;
  uint64_t notified_group_ = 0;  // the last group that will wake the followers
  int64_t next_sweep_ms_ = 0;    // monotonic
  // This group's index entries: job seq -> its events' keys, in order.
  std::map<uint64_t, std::string> index_;
  uint64_t index_group_ = 0;
};

}  // namespace farm::coordinator
