// The factory report from the coordinator's own records: checks the request, reads the event
// history of its window (and one window before it, see flow_report.h) and the pipelines' names,
// and builds the report with what the caller knows now (the agents, the open jobs). With
// targets recorded, the history of the compare window is read too, for their trend; the
// overstock reads the records of the jobs that ended last (overstock.h).
//
// Runs on a read pool: a scan of the window's events (about 1 s per million here). Thread-safe.
// Errors: INVALID_ARGUMENT naming the field, DATA_LOSS for a corrupt event, the store's errors.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "coordinator/events/event_reader.h"
#include "coordinator/factory/overstock.h"
#include "coordinator/factory/targets.h"
#include "coordinator/scheduler/job_reads.h"
#include "farm/v1/farm.pb.h"

namespace farm::coordinator::factory {

// The longest window a report covers.
inline constexpr int64_t kMaxWindowMs = 400LL * 24 * 3600'000;

// Checks the request against the clock's `now_ms` (INVALID_ARGUMENT naming the field).
absl::Status ValidateReportRequest(const farm::v1::FactoryReportRequest& req, int64_t now_ms);

struct ReportSources {
  EventReader* events;
  const JobReads* reads;
  const TargetStore* targets = nullptr;  // null: no targets
  OverstockSources overstock;            // its `reads` null: no overstock
};

// The compare window of a request: its own, or the window a week earlier.
std::pair<int64_t, int64_t> CompareWindow(const farm::v1::FactoryReportRequest& req,
                                          int64_t until_ms);

// `agents`: ListAgents now; `open_now`: jobs waiting, queued or running at `now_ms` (the farm's
// exact count), used when the window ends now. `cancelled` (may be empty) is asked now and then
// during the scan; once it says true the report stops with CANCELLED.
absl::StatusOr<farm::v1::FactoryReport> BuildReport(const ReportSources& sources,
                                                    farm::v1::FactoryReportRequest req,
                                                    const farm::v1::ListAgentsResponse& agents,
                                                    int64_t open_now, int64_t now_ms,
                                                    const std::function<bool()>& cancelled = {});

}  // namespace farm::coordinator::factory
