// The agent's metrics, served by `farm-agent --http_listen` on /metrics (Prometheus text
// format; /healthz answers "ok"). The agent's HTTP port is plain HTTP without credentials (the
// agent has no server certificate): its figures are counts and durations, never job contents;
// serve it on loopback or a network only Prometheus reaches. Names: the README's "Metrics".
//
// The attempts update theirs without locks (every series is made at registration); the rest is
// read when scraped. Thread-safe, as common::metrics.
#pragma once

#include <array>

#include "absl/time/time.h"
#include "common/metrics.h"
#include "farm/v1/farm.pb.h"

namespace farm::agent {

struct AttemptMetrics {
  // From a lease's arrival to its work's start (workspace made, inputs staged).
  common::metrics::Histogram* step_start_seconds = nullptr;
  // Attempts ended, by outcome (indexed by farm::v1::AttemptOutcome).
  std::array<common::metrics::Counter*, farm::v1::AttemptOutcome_ARRAYSIZE> attempts{};
  // Artifacts uploaded: the blobs the CAS lacked, and their bytes.
  common::metrics::Counter* uploaded_blobs = nullptr;
  common::metrics::Counter* uploaded_bytes = nullptr;
};

// Registers the attempts' metrics in `registry` (which outlives what they point to).
AttemptMetrics AddAttemptMetrics(common::metrics::Registry& registry);

// farm_agent_heartbeat_rtt_seconds: a heartbeat's round trip, less the time the coordinator held
// it (a heartbeat is parked by design until something changes or its wait ends).
common::metrics::Histogram* AddHeartbeatRtt(common::metrics::Registry& registry);
// Observes a heartbeat answered with `response` after `elapsed`; nothing when the coordinator
// did not say how long it held the call (an older one).
void ObserveHeartbeatRtt(common::metrics::Histogram* rtt, absl::Duration elapsed,
                         const farm::v1::HeartbeatResponse& response);

}  // namespace farm::agent
