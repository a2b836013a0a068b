// The queue index: which queued job runs next. A queued job is a key in the queue family
// (keys.h: label set | priority | position → job seq), so the queue itself is durable and
// costs no memory; per label set this index keeps only a window of the next keys in dispatch
// order (priority descending, then position: requeued jobs ahead of new ones, each in order),
// refilled from the store when it runs dry. Memory therefore grows with the number of label
// sets, not with the backlog.
//
// Pauses (an operator's `farmctl admin pause`; queue_pauses.cc): a pause is a selector, a set of
// labels k=v. A label set is paused while some selector is contained in it (every k=v of the
// selector is among the set's required labels; the set may require more). A paused set's jobs
// stay queued, in order, and are never popped; submits to it queue as usual. Pauses are durable
// (Cf::kMeta, "queue_pause/" canonical selector → paused_ms(8)); a resume marks the sets it frees
// as having new work, so that the epilogue's dispatch hands them to parked Lease calls at once.
//
// Owns: the windows and the "where to scan from" bound of each label set, and the pauses. Engine
// thread only.
// Errors: the store's read errors (a refill scans the queue family); the index is then unchanged
// and may be used again.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/scheduler/engine.h"
#include "coordinator/scheduler/label_sets.h"
#include "coordinator/store/keys.h"
#include "farm/v1/farm.pb.h"

namespace farm::coordinator {

class QueueIndex {
 public:
  // `window`: keys held in memory per label set (up to twice as many between refills).
  QueueIndex(LabelSets* sets, size_t window) : sets_(sets), window_(window) {}

  // Forgets every window: each known label set refills from the store on demand. After the
  // label sets were recovered.
  void Reset();

  // Queues `job` (its key written in this group) and marks its label set as having new work.
  void Add(Txn& txn, const farm::v1::Job& job);
  // Takes a queued job out (a cancel): deletes its key.
  void Remove(Txn& txn, const farm::v1::Job& job);

  // Removes and returns the first queued job that an agent with `agent` labels may run: the
  // best head among the label sets it matches that are not paused. nullopt when there is none.
  absl::StatusOr<std::optional<uint64_t>> PopFor(Txn& txn, const Labels& agent);
  // Removes and returns the head of one label set; nullopt when it has nothing queued or is
  // paused.
  absl::StatusOr<std::optional<uint64_t>> PopHead(Txn& txn, uint64_t labelset);

  // Whether an agent with `agent` labels may run the jobs of `labelset`.
  bool Matches(uint64_t labelset, const Labels& agent) const;

  // The label sets that got work since the last call (to offer it to parked agents).
  std::vector<uint64_t> TakeNewWork();

  // Moves a QUEUED job (its record as queued, unchanged) to `priority`: its key is rewritten in
  // this group and job.spec().priority set; the caller writes the record in the same group.
  void Reprioritize(Txn& txn, farm::v1::Job& job, int32_t priority);

  // --- Pauses (queue_pauses.cc; see above).
  // Loads the pauses from the store. With Reset, after the label sets were recovered.
  absl::Status RecoverPauses(Store* store);
  // Pauses `selector` (non-empty, checked by the caller) from `now_ms`; false (nothing written)
  // when it was paused already.
  bool Pause(Txn& txn, const Labels& selector, int64_t now_ms);
  // Lifts the pause of exactly `selector`; false when there is none. The sets it frees (no other
  // pause holds them) are offered to parked agents after this command.
  bool Resume(Txn& txn, const Labels& selector);
  // Whether `labelset` is paused now.
  bool Paused(uint64_t labelset) const;
  // Every pause: selector → paused_ms.
  const std::map<Labels, int64_t>& pauses() const { return pauses_; }

 private:
  struct Window {
    std::map<keys::QueueKey, uint64_t> keys;  // the first keys in dispatch order → seq
    bool complete = false;                    // holds every queued key of the set
    // Every key of the set that sorts below this one has been leased (deleted): refills scan
    // from here, not over the tombstones of a drained backlog. Empty: from the set's start.
    std::string scan_from;
  };

  keys::QueueKey KeyOf(const farm::v1::Job& job, uint64_t labelset) const;
  Window& WindowOf(uint64_t labelset);
  // Makes sure the window holds the set's head (refilling it when it ran dry).
  absl::Status Fill(Txn& txn, uint64_t labelset, Window& window);
  absl::Status Refill(Txn& txn, uint64_t labelset, Window& window);
  uint64_t Pop(Txn& txn, Window& window);

  LabelSets* const sets_;
  const size_t window_;
  std::map<uint64_t, Window> windows_;
  std::set<uint64_t> new_work_;
  std::map<Labels, int64_t> pauses_;  // selector → paused_ms
};

}  // namespace farm::coordinator
