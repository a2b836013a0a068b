// AdminService's secret RPCs (admin_service.h). Values travel in the request only; nothing here
// logs or returns them.
#include <openssl/crypto.h>

#include "common/logging.h"
#include "coordinator/service/admin_service.h"
#include "coordinator/service/request_text.h"
#include "coordinator/service/unary.h"

namespace farm::coordinator {

grpc::ServerUnaryReactor* AdminServiceImpl::SetSecret(grpc::CallbackServerContext* ctx,
                                                      const farm::v1::SetSecretRequest* req,
                                                      farm::v1::SetSecretResponse* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  absl::StatusOr<Principal> caller = auth_->CallerOf(*ctx);
  const std::string by = caller.ok() ? caller->name : "";
  return RunOnPool(
      ctx, pool_, resp, [this, req, by]() -> absl::StatusOr<farm::v1::SetSecretResponse> {
        absl::StatusOr<farm::v1::SecretInfo> info = secrets_->Set(req->name(), req->value(), by);
        // The request stays alive until the call finishes; wipe the value now that it is sealed.
        auto* value = const_cast<std::string*>(&req->value());
        OPENSSL_cleanse(value->data(), value->size());
        if (!info.ok()) return info.status();
        FARM_LOG(INFO) << "secret " << info->name() << " set by "
                       << (by.empty() ? "an insecure caller" : by) << " (key " << info->key_id()
                       << ")";
        farm::v1::SetSecretResponse out;
        *out.mutable_info() = *std::move(info);
        return out;
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListSecrets(grpc::CallbackServerContext* ctx,
                                                        const farm::v1::ListSecretsRequest* req,
                                                        farm::v1::ListSecretsResponse* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  auto* reactor = ctx->DefaultReactor();
  absl::StatusOr<std::vector<farm::v1::SecretInfo>> list = secrets_->List();
  if (list.ok()) {
    for (farm::v1::SecretInfo& info : *list) *resp->add_secrets() = std::move(info);
  }
  reactor->Finish(common::ToGrpcStatus(list.status()));
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::DeleteSecret(grpc::CallbackServerContext* ctx,
                                                         const farm::v1::DeleteSecretRequest* req,
                                                         farm::v1::DeleteSecretResponse* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  absl::StatusOr<Principal> caller = auth_->CallerOf(*ctx);
  const std::string by = caller.ok() ? caller->name : "";
  return RunOnPool(ctx, pool_, resp,
                   [this, req, by]() -> absl::StatusOr<farm::v1::DeleteSecretResponse> {
                     absl::StatusOr<farm::v1::SecretInfo> deleted = secrets_->Delete(req->name());
                     if (!deleted.ok()) return deleted.status();
                     FARM_LOG(INFO) << "secret " << deleted->name() << " removed by "
                                    << (by.empty() ? "an insecure caller" : by);
                     farm::v1::DeleteSecretResponse out;
                     *out.mutable_deleted() = *std::move(deleted);
                     return out;
                   });
}

}  // namespace farm::coordinator
