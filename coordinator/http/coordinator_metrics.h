// The coordinator's metrics (served by http_port.h on /metrics): the registry, the metrics the
// engine updates (its group commit; gRPC calls: service/call_metrics.h), and the collectors that
// read the rest when Prometheus scrapes (jobs by state, agents, the store, the CAS). Names: the
// README's "Metrics" table.
//
// Thread-safety: as common::metrics. The collectors read the scheduler, the store and the CAS
// from the scraping thread; each read is bounded (the agents' list waits at most 2 s).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/metrics.h"
#include "coordinator/cas/blob_store.h"
#include "coordinator/scheduler/flow_metrics.h"
#include "coordinator/scheduler/scheduler.h"
#include "coordinator/store/store.h"

namespace farm::coordinator {

class CoordinatorMetrics {
 public:
  CoordinatorMetrics();

  common::metrics::Registry& registry() { return registry_; }
  const common::metrics::Registry& registry() const { return registry_; }

  // For EngineOptions: commands per group written, and the write's seconds (fsync included).
  common::metrics::Histogram* group_commands() const { return group_commands_; }
  common::metrics::Histogram* write_seconds() const { return write_seconds_; }
  // For SchedulerOptions: the jobs' flow (scheduler/flow_metrics.h).
  const FlowFamilies& flow() const { return flow_; }
  // For the services: job output uploaded by agents, and sent to readers.
  common::metrics::Counter* log_bytes_received() const { return log_bytes_received_; }
  common::metrics::Counter* log_bytes_sent() const { return log_bytes_sent_; }

  // What the collectors read; each outlives this object.
  struct Sources {
    std::string version;
    int64_t started_ms = 0;
    Scheduler* scheduler = nullptr;
    Store* store = nullptr;
    BlobStore* cas = nullptr;
  };
  void AddCollectors(const Sources& sources);

 private:
  common::metrics::Registry registry_;
  common::metrics::Histogram* group_commands_;
  common::metrics::Histogram* write_seconds_;
  FlowFamilies flow_;
  common::metrics::Counter* log_bytes_received_;
  common::metrics::Counter* log_bytes_sent_;
};

}  // namespace farm::coordinator
