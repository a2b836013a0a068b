// Garbage collection across the coordinator's stores: the engine's retention passes (finished
// jobs, their output, events: scheduler/retention.h), the action cache's expiry, the CAS's
// eviction, then a compaction of what was deleted so that the space goes back to the file
// system (Store::Compact). Run on demand (farmctl admin gc: Run) and in the background every
// `interval_ms` (Start); the engine's own sweep removes continuously in between, and the
// background run compacts after it.
//
// Thread-safe: Run may be called from any thread (not the engine's); runs never overlap (one
// waits for the other). Blocking: seconds for a large backlog. Errors: the store's, and
// UNAVAILABLE when the scheduler is stopping.
#pragma once

#include <cstdint>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "coordinator/cas/action_cache.h"
#include "coordinator/cas/file_blob_store.h"
#include "coordinator/scheduler/scheduler.h"
#include "coordinator/store/store.h"
#include "farm/v1/farm.pb.h"

namespace farm::coordinator {

struct GcOptions {
  int64_t action_cache_retention_ms = 30LL * 24 * 3600'000;  // 0: keep forever
  int64_t event_retention_ms = 0;                            // for the compaction's range
  int64_t interval_ms = 3600'000;                            // background runs
  std::string store_dir;                                     // measured after a run
};

class GarbageCollector {
 public:
  // Engine passes one run makes at most (each removes up to Retention::kMaxPerSweep jobs).
  static constexpr int kMaxPasses = 50;

  // Not owned; all outlive the collector.
  GarbageCollector(GcOptions options, Scheduler* scheduler, Store* store, ActionCache* ac,
                   FileBlobStore* cas)
      : options_(std::move(options)), scheduler_(scheduler), store_(store), ac_(ac), cas_(cas) {}
  ~GarbageCollector() { Stop(); }

  absl::StatusOr<farm::v1::CollectGarbageResponse> Run(bool dry_run);

  void Start();
  void Stop();

 private:
  absl::Status RunEngine(bool dry_run, farm::v1::CollectGarbageResponse& out,
                         std::pair<uint64_t, uint64_t>& removed);
  void Loop();

  const GcOptions options_;
  Scheduler* const scheduler_;
  Store* const store_;
  ActionCache* const ac_;
  FileBlobStore* const cas_;
  absl::Mutex run_mu_;  // one run at a time
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace farm::coordinator
