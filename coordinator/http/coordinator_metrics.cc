#include "coordinator/http/coordinator_metrics.h"

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "coordinator/http/web_internal.h"
#include "coordinator/scheduler/queue_report.h"

namespace farm::coordinator {
namespace {

namespace metrics = common::metrics;

// What a scheduler call answers (web_internal.h's Await), waited for at most 2 s; nullopt on an
// error or when the engine is too busy to answer a scrape in time.
template <typename T>
std::optional<T> Ask(const std::function<void(Done<T>)>& ask) {
  absl::StatusOr<T> answer = web::Await<T>(ask, absl::Seconds(2));
  if (!answer.ok()) return std::nullopt;
  return *std::move(answer);
}

// The agents by state ("idle", "busy", "draining", "offline"), as ListAgents reports them.
void CollectAgents(Scheduler* scheduler, metrics::Exposition& out) {
  std::optional<farm::v1::ListAgentsResponse> agents = Ask<farm::v1::ListAgentsResponse>(
      [scheduler](Done<farm::v1::ListAgentsResponse> done) { scheduler->ListAgents(done); });
  if (!agents.has_value()) return;
  std::map<std::string, int64_t> by_state = {
      {"busy", 0}, {"draining", 0}, {"idle", 0}, {"offline", 0}};
  int64_t slots = 0;
  int64_t busy = 0;
  for (const farm::v1::AgentInfo& a : agents->agents()) {
    ++by_state[a.state()];
    if (a.state() == "offline") continue;
    slots += a.slots();
    busy += a.jobs_size();
  }
  out.Begin("farm_agents", "Agents known to the coordinator, by state.", metrics::Type::kGauge);
  for (const auto& [state, n] : by_state) out.Sample("", {{"state", state}}, n);
  out.Begin("farm_slots", "Job slots of the agents that are not offline.", metrics::Type::kGauge);
  out.Sample("", {}, static_cast<double>(slots));
  out.Begin("farm_slots_busy", "Slots running a job (leases held).", metrics::Type::kGauge);
  out.Sample("", {}, static_cast<double>(busy));
}

std::string LabelsText(const google::protobuf::Map<std::string, std::string>& labels) {
  return LabelSetText(ToLabels(labels));
}

// Each label set's queue, from the report `admin queues` prints (queue_report.h): one scan of
// the queue family per scrape, off the engine thread, so a scrape's cost grows with the backlog
// and the engine's does not.
void CollectQueues(Scheduler* scheduler, metrics::Exposition& out) {
  std::optional<QueueSnapshot> snapshot = Ask<QueueSnapshot>(
      [scheduler](Done<QueueSnapshot> done) { scheduler->SnapshotQueues(done); });
  if (!snapshot.has_value()) return;
  absl::StatusOr<farm::v1::ListQueuesResponse> report =
      BuildQueueReport(scheduler->store(), *snapshot);
  if (!report.ok()) return;
  out.Begin("farm_queue_depth", "Queued jobs per label set (the labels they require, k=v,...).",
            metrics::Type::kGauge);
  for (const farm::v1::QueueInfo& q : report->queues()) {
    out.Sample("", {{"labels", LabelsText(q.labels())}}, static_cast<double>(q.depth()));
  }
  out.Begin("farm_queue_oldest_age_seconds",
            "How long the oldest queued job of each label set has waited since its submit.",
            metrics::Type::kGauge);
  for (const farm::v1::QueueInfo& q : report->queues()) {
    const int64_t age_ms = q.oldest_submitted_ms() > 0
                               ? std::max<int64_t>(0, report->now_ms() - q.oldest_submitted_ms())
                               : 0;
    out.Sample("", {{"labels", LabelsText(q.labels())}}, static_cast<double>(age_ms) / 1000);
  }
  out.Begin("farm_queue_paused", "1 when dispatching a label set's jobs is paused.",
            metrics::Type::kGauge);
  for (const farm::v1::QueueInfo& q : report->queues()) {
    out.Sample("", {{"labels", LabelsText(q.labels())}}, q.paused() ? 1 : 0);
  }
  out.Begin("farm_queue_agents", "Agents online and not draining whose labels satisfy a label set.",
            metrics::Type::kGauge);
  for (const farm::v1::QueueInfo& q : report->queues()) {
    out.Sample("", {{"labels", LabelsText(q.labels())}}, q.agents());
  }
}

void CollectStore(Store* store, metrics::Exposition& out) {
  absl::StatusOr<StoreStats> stats = store->Stats();
  if (!stats.ok()) return;
  out.Begin("farm_store_sst_bytes", "The job store's table files on disk, by column family.",
            metrics::Type::kGauge);
  for (const StoreStats::Family& f : stats->families) {
    out.Sample("", {{"family", f.name}}, static_cast<double>(f.sst_bytes));
  }
  out.Begin("farm_store_memtable_bytes", "The job store's memtables, by column family.",
            metrics::Type::kGauge);
  for (const StoreStats::Family& f : stats->families) {
    out.Sample("", {{"family", f.name}}, static_cast<double>(f.memtable_bytes));
  }
  out.Begin("farm_store_wal_bytes", "The job store's live write-ahead logs.",
            metrics::Type::kGauge);
  out.Sample("", {}, static_cast<double>(stats->wal_bytes));
  out.Begin("farm_store_pending_compaction_bytes",
            "Bytes RocksDB estimates it must compact; writes stall when this grows too large.",
            metrics::Type::kGauge);
  out.Sample("", {}, static_cast<double>(stats->pending_compaction_bytes));
  out.Begin("farm_store_write_stalled",
            "1 while RocksDB delays or stops writes (too many files or bytes to compact).",
            metrics::Type::kGauge);
  out.Sample("", {}, stats->write_stalled ? 1 : 0);
  out.Begin("farm_store_write_stalls_total",
            "Times RocksDB began to stop or to slow down writes since the coordinator started.",
            metrics::Type::kCounter);
  out.Sample("", {{"kind", "stop"}}, static_cast<double>(stats->stalls_stopped));
  out.Sample("", {{"kind", "slowdown"}}, static_cast<double>(stats->stalls_slowed));
}

void CollectCas(BlobStore* cas, metrics::Exposition& out) {
  const BlobStoreStats s = cas->Stats();
  out.Begin("farm_cas_bytes", "Bytes of the blobs in the content-addressed store.",
            metrics::Type::kGauge);
  out.Sample("", {}, static_cast<double>(s.bytes));
  out.Begin("farm_cas_blobs", "Blobs in the content-addressed store.", metrics::Type::kGauge);
  out.Sample("", {}, static_cast<double>(s.blobs));
  out.Begin("farm_cas_evicted_blobs_total",
            "Blobs evicted (least recently used, above --cas_max_bytes) since the start.",
            metrics::Type::kCounter);
  out.Sample("", {}, static_cast<double>(s.evicted_blobs));
  out.Begin("farm_cas_corrupt_blobs_total",
            "Blobs found corrupt on read and removed since the start.", metrics::Type::kCounter);
  out.Sample("", {}, static_cast<double>(s.corrupt_blobs));
  out.Begin("farm_cas_written_bytes_total", "Bytes of new blobs stored (uploads and batches).",
            metrics::Type::kCounter);
  out.Sample("", {}, static_cast<double>(s.written_bytes));
  out.Begin("farm_cas_read_bytes_total",
            "Bytes of blobs read (downloads, batch reads, the action cache's reads of trees).",
            metrics::Type::kCounter);
  out.Sample("", {}, static_cast<double>(s.read_bytes));
  out.Begin("farm_cas_lookups_total",
            "Digests looked up (FindMissingBlobs, and the action cache checking a result's "
            "outputs), found present (hit) or missing (miss).",
            metrics::Type::kCounter);
  out.Sample("", {{"result", "hit"}}, static_cast<double>(s.found));
  out.Sample("", {{"result", "miss"}}, static_cast<double>(s.missing));
}

}  // namespace

CoordinatorMetrics::CoordinatorMetrics()
    : group_commands_(&registry_.AddHistogram(
          "farm_engine_group_commands",
          "Commands (submits, completions, timers...) per group the engine wrote in one "
          "synced batch.",
          metrics::ExponentialBuckets(1, 2, 12))),
      write_seconds_(
          &registry_.AddHistogram("farm_engine_write_seconds",
                                  "Time of each group's write to the job store, fsync included.",
                                  metrics::FastLatencyBuckets())),
      flow_(FlowFamilies::Register(registry_)),
      log_bytes_received_(
          &registry_.AddCounter("farm_log_received_bytes_total",
                                "Bytes of job output agents uploaded (resent bytes too).")),
      log_bytes_sent_(&registry_.AddCounter("farm_log_sent_bytes_total",
                                            "Bytes of job output sent to WatchLogs readers.")) {}

void CoordinatorMetrics::AddCollectors(const Sources& src) {
  registry_.AddCollector([src](metrics::Exposition& out) {
    out.Begin("farm_build_info", "The coordinator's version (value 1).", metrics::Type::kGauge);
    out.Sample("", {{"version", src.version}}, 1);
    out.Begin("farm_start_time_seconds", "When the coordinator started, Unix time.",
              metrics::Type::kGauge);
    out.Sample("", {}, static_cast<double>(src.started_ms) / 1000);
    const auto counts = src.scheduler->job_counts().Snapshot();
    out.Begin("farm_jobs", "Jobs in the store, by state.", metrics::Type::kGauge);
    for (int state = 1; state < JobCounts::kStates; ++state) {
      const std::string name =
          absl::AsciiStrToLower(farm::v1::JobState_Name(static_cast<farm::v1::JobState>(state)));
      out.Sample("", {{"state", name}}, static_cast<double>(counts[state]));
    }
    CollectAgents(src.scheduler, out);
    CollectQueues(src.scheduler, out);
    CollectStore(src.store, out);
    CollectCas(src.cas, out);
  });
}

}  // namespace farm::coordinator
