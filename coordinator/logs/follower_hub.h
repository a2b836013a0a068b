// Wakes readers that follow something live: a job (its output, its state: WatchLogs) or the
// event history (ListEvents with wait_ms). Notifications carry no data; a woken reader reads
// the committed state from the store, so a wake-up can never announce something it cannot read.
//
// Notify runs on the engine thread after a group commits, so a watcher's On* callback must be
// quick and must not block or read the store: it only schedules the reader's work elsewhere
// (an IoPool), coalescing wake-ups that arrive before that work has run.
//
// Thread-safe. Callbacks run on the notifying thread outside the hub's lock, so they may call
// Unsubscribe; a watcher may therefore be called once more after it unsubscribed, and must
// tolerate that (the shared_ptr keeps it alive).
#pragma once

#include <cstdint>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace farm::coordinator {

class Watcher {
 public:
  virtual ~Watcher() = default;
  // What it follows changed. Quick, non-blocking (see above).
  virtual void OnChanged() = 0;
  // The coordinator is shutting down: end the call.
  virtual void OnShutdown() = 0;
};

class FollowerHub {
 public:
  // Followers of job `seq`.
  void Subscribe(uint64_t seq, std::shared_ptr<Watcher> watcher);
  void Unsubscribe(uint64_t seq, const Watcher* watcher);
  void Notify(uint64_t seq);

  // Followers of the event history.
  void SubscribeEvents(std::shared_ptr<Watcher> watcher) { Subscribe(kEvents, std::move(watcher)); }
  void UnsubscribeEvents(const Watcher* watcher) { Unsubscribe(kEvents, watcher); }
  void NotifyEvents() { Notify(kEvents); }

  // Calls OnShutdown on every watcher, now and on any that subscribes later.
  void Shutdown();

 private:
  // Job seqs start at 1: 0 stands for the event history.
  static constexpr uint64_t kEvents = 0;

  absl::Mutex mu_;
  absl::flat_hash_map<uint64_t, absl::flat_hash_map<const Watcher*, std::shared_ptr<Watcher>>>
      watchers_ ABSL_GUARDED_BY(mu_);
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace farm::coordinator
