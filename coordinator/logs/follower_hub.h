// Wakes readers that follow a job (log followers, waiters) when the job changes: new output
// committed, a step or the job finished. Notifications carry no data; a woken reader reads
// the committed state from the store, so a wake-up can never announce something it cannot
// read.
//
// Thread-safe. Callbacks run on the notifying thread (the engine thread) outside the hub's
// lock, so they may call Unsubscribe; a watcher may therefore be called once more after it
// unsubscribed, and must tolerate that (the shared_ptr keeps it alive).
#pragma once

#include <cstdint>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"

namespace farm::coordinator {

class JobWatcher {
 public:
  virtual ~JobWatcher() = default;
  virtual void OnJobChanged() = 0;
  // The coordinator is shutting down: end the call.
  virtual void OnShutdown() = 0;
};

class LogHub {
 public:
  void Subscribe(uint64_t seq, std::shared_ptr<JobWatcher> watcher);
  void Unsubscribe(uint64_t seq, const JobWatcher* watcher);
  void Notify(uint64_t seq);
  // Calls OnShutdown on every watcher, now and on any that subscribes later.
  void Shutdown();

 private:
  absl::Mutex mu_;
  absl::flat_hash_map<uint64_t, absl::flat_hash_map<const JobWatcher*, std::shared_ptr<JobWatcher>>>
      watchers_ ABSL_GUARDED_BY(mu_);
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace farm::coordinator
