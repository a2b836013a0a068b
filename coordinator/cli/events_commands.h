// The events group: `farmctl events`, the farm's event history (JobService.ListEvents) as a
// timeline, oldest first, and followed live with --follow (the RPC's wait_ms long poll, going on
// with the page token; no polling interval).
#pragma once

#include <string>

#include "absl/time/time.h"
#include "farm/v1/farm.pb.h"

namespace farm::cli {

// One line (with its newline) for an event: the local time (RFC 3339 with milliseconds), the
// kind, the job id (with "pipeline/job name" when it belongs to a pipeline), then the fields
// that matter for that kind: agent, attempt, epoch, step, exit code, outcome, state, reason.
//   2026-11-29T10:00:00.123+01:00 JOB_LEASED 17 (p3/build) agent=a1 attempt=1 epoch=42
std::string FormatEventLine(const farm::v1::Event& event, absl::TimeZone time_zone);

}  // namespace farm::cli
