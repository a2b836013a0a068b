// Scheduler: garbage collection on demand (scheduler.h, "retention").
#include "coordinator/scheduler/replies.h"
#include "coordinator/scheduler/scheduler.h"

namespace farm::coordinator {

void Scheduler::CollectGarbage(bool dry_run, Done<GcPass> done) {
  Post(
      [this, dry_run, done](Txn& txn) {
        GcPass pass;
        absl::StatusOr<RetentionReport> r = retention_.Sweep(txn, dry_run, /*force=*/true);
        absl::StatusOr<size_t> events = r.ok() ? events_.Expire(txn, dry_run) : r.status();
        if (!events.ok()) {
          // Some of the pass may be in the group already: none of it is written.
          if (!dry_run && !txn.failed()) txn.Fail(events.status());
          return done(events.status());
        }
        pass.retention = *r;
        pass.events = static_cast<int64_t>(*events);
        if (dry_run) return done(pass);
        pass.removed_range = retention_.TakeRemovedRange();
        ReplyAfterCommit(txn, done, std::move(pass));
      },
      [&](absl::Status s) { done(s); });
}

}  // namespace farm::coordinator
