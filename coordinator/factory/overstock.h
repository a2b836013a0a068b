// The factory report's overstock (farm.v1.Overstock): what was made and not used, what the
// stores hold, and what a garbage collection would give back now.
//
// An artifact is unused when no job that needs its job has started (none staged it) and its
// blob was not used after its job ended (not downloaded, not read by anyone; the CAS's access
// times are hints flushed every maintenance run). Only the newest kMaxOverstockJobs jobs that
// ended in the window are read (one record each); beyond them the figures are a sample and say
// so. Blocking (store reads): run it on a read pool. Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/cas/blob_store.h"
#include "coordinator/scheduler/job_reads.h"
#include "coordinator/store/store.h"
#include "farm/v1/farm.pb.h"

namespace farm::coordinator::factory {

inline constexpr size_t kMaxOverstockJobs = 10'000;

struct OverstockSources {
  const JobReads* reads = nullptr;
  BlobStore* blobs = nullptr;  // null: the CAS figures stay 0
  Store* store = nullptr;      // its Stats give the output's size; null or UNIMPLEMENTED: 0
  // A garbage collection's dry run; empty: `reclaimable` stays empty.
  std::function<absl::StatusOr<farm::v1::CollectGarbageResponse>(bool dry_run)> gc;
};

// `ended`: the ids of the jobs to read (FlowReportBuilder::EndedJobs), `ended_total` how many
// ended in the window. NOT_FOUND jobs (removed by retention since) are skipped.
absl::StatusOr<farm::v1::Overstock> BuildOverstock(const OverstockSources& sources,
                                                   const std::vector<std::string>& ended,
                                                   int64_t ended_total, int64_t window_ms,
                                                   int64_t now_ms);

}  // namespace farm::coordinator::factory
