// AdminService's garbage collection RPC (admin_service.h). A run is blocking (seconds for a
// large backlog): it runs on the read pool, never on gRPC's callback threads.
#include "common/logging.h"
#include "coordinator/service/admin_service.h"
#include "coordinator/service/unary.h"

namespace farm::coordinator {

grpc::ServerUnaryReactor* AdminServiceImpl::CollectGarbage(
    grpc::CallbackServerContext* ctx, const farm::v1::CollectGarbageRequest* req,
    farm::v1::CollectGarbageResponse* resp) {
  absl::StatusOr<Principal> caller = auth_->CallerOf(*ctx);
  const std::string by = caller.ok() ? caller->name : "";
  return RunOnPool(
      ctx, pool_, resp,
      [this, dry_run = req->dry_run(), by]() -> absl::StatusOr<farm::v1::CollectGarbageResponse> {
        if (!gc_) return absl::UnavailableError("garbage collection is not available");
        absl::StatusOr<farm::v1::CollectGarbageResponse> out = gc_(dry_run);
        if (out.ok()) {
          FARM_LOG(INFO) << "garbage collection" << (dry_run ? " (dry run)" : "") << " asked by "
                         << (by.empty() ? "an insecure caller" : by) << ": " << out->jobs()
                         << " job(s), output of " << out->logs() << " (" << out->log_bytes()
                         << " bytes), " << out->events() << " event(s), "
                         << out->action_cache_entries() << " action result(s), " << out->blobs()
                         << " blob(s)";
        }
        return out;
      });
}

}  // namespace farm::coordinator
