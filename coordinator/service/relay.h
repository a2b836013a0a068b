// A reactor's link to the threads that wake it. The follower hub and the read pool hold the
// relay (a shared_ptr), never the reactor itself, so a wake-up that arrives after the call
// ended finds nothing to do instead of a deleted reactor.
//
// Schedule() is what a wake-up does: it posts one Pump() of the call to the pool, coalescing
// wake-ups that come before that has started, and it never blocks (the engine thread calls it
// through FollowerHub). Pump() calls run one at a time. Detach() (from the reactor's OnDone)
// waits for a running Pump to return; after it, nothing reaches the call.
//
// Call must have `void Pump()` (reads and writes or finishes) and `void Abort()` (ends the call
// because the coordinator is shutting down). Thread-safe.
#pragma once

#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/io_pool.h"
#include "coordinator/logs/follower_hub.h"

namespace farm::coordinator {

template <typename Call>
class Relay final : public Watcher, public std::enable_shared_from_this<Relay<Call>> {
 public:
  Relay(Call* call, common::IoPool* pool) : call_(call), pool_(pool) {}

  void OnChanged() override { Schedule(); }
  void OnShutdown() override {
    absl::MutexLock lock(&run_mu_);
    if (call_ != nullptr) call_->Abort();
  }

  void Schedule() {
    {
      absl::MutexLock lock(&flag_mu_);
      if (scheduled_ || detached_) return;
      scheduled_ = true;
    }
    pool_->Post([self = this->shared_from_this()] { self->Run(); });
  }

  void Detach() {
    {
      absl::MutexLock lock(&flag_mu_);
      detached_ = true;
    }
    absl::MutexLock lock(&run_mu_);
    call_ = nullptr;
  }

 private:
  void Run() {
    {
      absl::MutexLock lock(&flag_mu_);
      scheduled_ = false;  // a wake-up from now on schedules another run
    }
    absl::MutexLock lock(&run_mu_);
    if (call_ != nullptr) call_->Pump();
  }

  absl::Mutex run_mu_;
  Call* call_ ABSL_GUARDED_BY(run_mu_);
  absl::Mutex flag_mu_;
  bool scheduled_ ABSL_GUARDED_BY(flag_mu_) = false;
  bool detached_ ABSL_GUARDED_BY(flag_mu_) = false;
  common::IoPool* const pool_;
};

}  // namespace farm::coordinator
