// What `farmctl admin queues` shows: each label set with queued jobs (or paused), its depth, the
// earliest submit among its queued jobs, whether it is paused and how many agents could run it.
// Two halves: a snapshot of the engine's state (label sets, pauses, agents), taken on the engine
// thread (Scheduler::SnapshotQueues), and the report built from it and from the store's queue
// family on any other thread, so that a deep backlog's scan never holds up the engine.
//
// Cost: one scan of the queue family (every queued key), plus one job read per priority class
// of a set and per requeued job.
//
// Errors: the store's read errors; DATA_LOSS for a job record that does not parse.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/scheduler/label_sets.h"
#include "coordinator/store/store.h"
#include "farm/v1/farm.pb.h"

namespace farm::coordinator {

struct QueueSnapshot {
  int64_t now_ms = 0;
  std::map<uint64_t, Labels> sets;   // every known label set
  std::map<uint64_t, bool> paused;   // by label set
  std::map<Labels, int64_t> pauses;  // selector → paused_ms
  std::vector<Labels> agents;        // online and not draining
};

absl::StatusOr<farm::v1::ListQueuesResponse> BuildQueueReport(Store* store,
                                                              const QueueSnapshot& snapshot);

}  // namespace farm::coordinator
