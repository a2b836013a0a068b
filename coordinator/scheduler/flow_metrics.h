// The flow of jobs through the line, as Prometheus metrics: how long each job waited in its queue,
// ran and took from submit to end, per label set, and how its attempts ended. JobLifecycle tells
// it of every transition, AttemptTracker of every lease that expired.
//
// Observations of a group are applied once it commits (one callback per group), so a group that
// fails counts nothing. Each label set's series are looked up once and kept by label-set id: the
// hot path takes no lock after a label set's first job.
//
// Names (the README's "Metrics"):
//   farm_job_queue_wait_seconds{labels}        QUEUED -> leased, per attempt
//   farm_job_run_seconds{labels}               leased -> attempt ended, per attempt
//   farm_job_lead_time_seconds{labels,state}   submitted -> ended, per job
//   farm_attempts_total{outcome}               succeeded, failed, cancelled, lost
//   farm_lease_expirations_total               leases that ran out (their attempts are lost)
//
// Engine thread only (the families themselves are thread-safe).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/metrics.h"
#include "coordinator/scheduler/engine.h"
#include "coordinator/scheduler/label_sets.h"
#include "farm/v1/farm.pb.h"

namespace farm::coordinator {

// The metrics, registered once in a registry that outlives every scheduler using them.
struct FlowFamilies {
  common::metrics::Family<common::metrics::Histogram>* queue_wait = nullptr;
  common::metrics::Family<common::metrics::Histogram>* run = nullptr;
  common::metrics::Family<common::metrics::Histogram>* lead_time = nullptr;
  std::array<common::metrics::Counter*, farm::v1::AttemptOutcome_ARRAYSIZE> attempts{};
  common::metrics::Counter* lease_expirations = nullptr;

  static FlowFamilies Register(common::metrics::Registry& registry);
};

// "k=v,k2=v2" (keys in order; "" for none): how metrics name a label set.
std::string LabelSetText(const Labels& labels);

class FlowMetrics {
 public:
  FlowMetrics(const FlowFamilies& families, const LabelSets* sets) : f_(families), sets_(sets) {}

  // `job` just moved from `from` to its state at `now`; `labelset` is the id of its labels.
  void Transitioned(Txn& txn, const farm::v1::Job& job, uint64_t labelset, farm::v1::JobState from,
                    int64_t now);
  void LeaseExpired(Txn& txn);

 private:
  struct Series {
    common::metrics::Histogram* queue_wait;
    common::metrics::Histogram* run;
    std::array<common::metrics::Histogram*, farm::v1::JobState_ARRAYSIZE> lead_time{};
  };
  struct Pending {
    std::vector<std::pair<common::metrics::Histogram*, double>> observations;
    std::vector<common::metrics::Counter*> counts;
  };
  Series& SeriesOf(uint64_t labelset);
  // This group's observations (applied when it commits).
  Pending& PendingOf(Txn& txn);

  const FlowFamilies f_;
  const LabelSets* const sets_;
  absl::flat_hash_map<uint64_t, Series> series_;
  std::shared_ptr<Pending> pending_;
  uint64_t pending_group_ = 0;
};

}  // namespace farm::coordinator
