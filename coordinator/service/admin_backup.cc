// AdminService.Backup (admin_service.h): the backup itself is coordinator/backup/backup.h.
#include "common/logging.h"
#include "coordinator/service/admin_service.h"
#include "coordinator/service/request_text.h"
#include "coordinator/service/unary.h"

namespace farm::coordinator {

grpc::ServerUnaryReactor* AdminServiceImpl::Backup(grpc::CallbackServerContext* ctx,
                                                   const farm::v1::BackupRequest* req,
                                                   farm::v1::BackupResponse* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  absl::StatusOr<Principal> caller = auth_->CallerOf(*ctx);
  const std::string by = caller.ok() ? caller->name : "";
  return RunOnPool(ctx, pool_, resp, [this, req, by]() -> absl::StatusOr<farm::v1::BackupResponse> {
    if (status_.backups == nullptr) return absl::UnavailableError("backups are not ready");
    FARM_LOG(INFO) << "backup into " << req->dir() << " asked by "
                   << (by.empty() ? "an insecure caller" : by);
    absl::StatusOr<BackupSummary> made = status_.backups->CreateBackup(req->dir());
    if (!made.ok()) return made.status();
    farm::v1::BackupResponse out;
    out.set_dir(made->dir);
    out.set_created_ms(made->created_ms);
    out.set_db_files(made->db_files);
    out.set_db_bytes(made->db_bytes);
    out.set_blobs(made->blobs);
    out.set_blob_bytes(made->blob_bytes);
    out.set_linked_files(made->linked_files);
    out.set_copied_files(made->copied_files);
    out.set_took_ms(made->took_ms);
    return out;
  });
}

}  // namespace farm::coordinator
