// AdminService.GetStatus (admin_service.h): what an operator checks first. Everything comes from
// counters kept anyway, never from a scan: the store's own statistics (RocksDB properties), the
// CAS's counters, the scheduler's job counts (scheduler/job_counts.h), the agent registry, and
// statvfs(2) of the data directory.
#include <sys/statvfs.h>

#include "common/clock.h"
#include "coordinator/service/admin_service.h"
#include "coordinator/service/request_text.h"
#include "coordinator/service/unary.h"

namespace farm::coordinator {
namespace {

// The parts of the status that read the store, the CAS and the disk (blocking; on the pool).
absl::StatusOr<farm::v1::GetStatusResponse> ReadStatus(const AdminServiceImpl::StatusSources& src) {
  farm::v1::GetStatusResponse out;
  const int64_t now = common::RealClock()->NowMs();
  out.set_version(src.version);
  out.set_started_ms(src.started_ms);
  out.set_uptime_ms(now - src.started_ms);
  out.set_data_dir(src.data_dir);
  absl::StatusOr<StoreStats> stats = src.store->Stats();
  if (!stats.ok()) return stats.status();
  for (const StoreStats::Family& f : stats->families) {
    farm::v1::StoreFamilyStatus* family = out.add_families();
    family->set_name(f.name);
    family->set_estimated_keys(f.estimated_keys);
    family->set_live_bytes(f.live_bytes);
    family->set_sst_bytes(f.sst_bytes);
    family->set_memtable_bytes(f.memtable_bytes);
  }
  out.set_store_bytes(stats->sst_bytes + stats->wal_bytes);
  out.set_pending_compaction_bytes(stats->pending_compaction_bytes);
  const BlobStoreStats cas = src.cas->Stats();
  out.set_cas_blobs(cas.blobs);
  out.set_cas_bytes(cas.bytes);
  out.set_cas_max_bytes(src.cas_max_bytes);
  out.set_cas_uploads(cas.uploads);
  out.set_cas_evicted_blobs(cas.evicted_blobs);
  out.set_cas_corrupt_blobs(cas.corrupt_blobs);
  out.set_data_dir_bytes(out.store_bytes() + cas.bytes);
  struct statvfs fs;
  if (statvfs(src.data_dir.c_str(), &fs) == 0) {
    out.set_disk_free_bytes(static_cast<int64_t>(fs.f_bavail) * static_cast<int64_t>(fs.f_frsize));
    out.set_disk_total_bytes(static_cast<int64_t>(fs.f_blocks) * static_cast<int64_t>(fs.f_frsize));
  }
  return out;
}

}  // namespace

grpc::ServerUnaryReactor* AdminServiceImpl::GetStatus(grpc::CallbackServerContext* ctx,
                                                      const farm::v1::GetStatusRequest* req,
                                                      farm::v1::GetStatusResponse* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  auto* reactor = ctx->DefaultReactor();
  if (status_.store == nullptr || status_.cas == nullptr) {
    reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the status is not ready"));
    return reactor;
  }
  pool_->Post([this, reactor, resp] {
    absl::StatusOr<farm::v1::GetStatusResponse> read = ReadStatus(status_);
    if (!read.ok()) {
      reactor->Finish(common::ToGrpcStatus(read.status()));
      return;
    }
    *resp = *std::move(read);
    const auto counts = scheduler_->job_counts().Snapshot();
    for (int state = 1; state < JobCounts::kStates; ++state) {
      farm::v1::JobStateCount* count = resp->add_jobs();
      count->set_state(static_cast<farm::v1::JobState>(state));
      count->set_count(counts[state]);
    }
    scheduler_->ListAgents([reactor, resp](absl::StatusOr<farm::v1::ListAgentsResponse> agents) {
      if (!agents.ok()) {
        reactor->Finish(common::ToGrpcStatus(agents.status()));
        return;
      }
      for (const farm::v1::AgentInfo& agent : agents->agents()) {
        if (agent.state() == "offline") {
          resp->set_agents_offline(resp->agents_offline() + 1);
        } else if (agent.state() == "draining") {
          resp->set_agents_draining(resp->agents_draining() + 1);
        } else {
          resp->set_agents_online(resp->agents_online() + 1);
        }
      }
      reactor->Finish(grpc::Status::OK);
    });
  });
  return reactor;
}

}  // namespace farm::coordinator
