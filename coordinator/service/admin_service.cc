#include "coordinator/service/admin_service.h"

#include "common/logging.h"
#include "coordinator/service/request_text.h"
#include "coordinator/service/unary.h"

namespace farm::coordinator {

grpc::ServerUnaryReactor* AdminServiceImpl::ListAgents(grpc::CallbackServerContext* ctx,
                                                       const farm::v1::ListAgentsRequest* req,
                                                       farm::v1::ListAgentsResponse* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  auto* reactor = ctx->DefaultReactor();
  scheduler_->ListAgents(FinishWith(reactor, resp));
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::CreateToken(grpc::CallbackServerContext* ctx,
                                                        const farm::v1::CreateTokenRequest* req,
                                                        farm::v1::CreateTokenResponse* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  absl::StatusOr<Principal> caller = auth_->CallerOf(*ctx);
  const std::string by = caller.ok() ? caller->name : "";
  return RunOnPool(ctx, pool_, resp,
                   [this, req, by]() -> absl::StatusOr<farm::v1::CreateTokenResponse> {
                     absl::StatusOr<TokenRegistry::Created> created =
                         tokens_->Create(req->name(), req->role(), req->ttl_ms(), by);
                     if (!created.ok()) return created.status();
                     FARM_LOG(INFO) << "token " << created->info.id() << " created for "
                                    << created->info.name() << " (role " << created->info.role()
                                    << ") by " << (by.empty() ? "an insecure caller" : by);
                     farm::v1::CreateTokenResponse out;
                     out.set_token(std::move(created->token));
                     *out.mutable_info() = std::move(created->info);
                     return out;
                   });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListTokens(grpc::CallbackServerContext* ctx,
                                                       const farm::v1::ListTokensRequest* req,
                                                       farm::v1::ListTokensResponse* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  auto* reactor = ctx->DefaultReactor();
  for (farm::v1::TokenInfo& info : tokens_->List()) *resp->add_tokens() = std::move(info);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::RevokeToken(grpc::CallbackServerContext* ctx,
                                                        const farm::v1::RevokeTokenRequest* req,
                                                        farm::v1::RevokeTokenResponse* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  return RunOnPool(
      ctx, pool_, resp, [this, req]() -> absl::StatusOr<farm::v1::RevokeTokenResponse> {
        absl::StatusOr<farm::v1::TokenInfo> revoked = tokens_->Revoke(req->id());
        if (!revoked.ok()) return revoked.status();
        FARM_LOG(INFO) << "token " << revoked->id() << " of " << revoked->name() << " revoked";
        farm::v1::RevokeTokenResponse out;
        *out.mutable_revoked() = *std::move(revoked);
        return out;
      });
}

// Agent enrollment.
grpc::ServerUnaryReactor* AdminServiceImpl::CreateEnrollToken(
    grpc::CallbackServerContext* ctx, const farm::v1::CreateEnrollTokenRequest* req,
    farm::v1::CreateEnrollTokenResponse* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  absl::StatusOr<Principal> caller = auth_->CallerOf(*ctx);
  const std::string by = caller.ok() ? caller->name : "";
  return RunOnPool(ctx, pool_, resp,
                   [this, req, by]() -> absl::StatusOr<farm::v1::CreateEnrollTokenResponse> {
                     absl::StatusOr<TokenRegistry::Created> created = tokens_->CreateEnrollment(
                         {req->labels().begin(), req->labels().end()}, req->ttl_ms(), by);
                     if (!created.ok()) return created.status();
                     FARM_LOG(INFO) << "enrollment token " << created->info.id() << " created by "
                                    << (by.empty() ? "an insecure caller" : by);
                     farm::v1::CreateEnrollTokenResponse out;
                     out.set_token(std::move(created->token));
                     *out.mutable_info() = std::move(created->info);
                     return out;
                   });
}

}  // namespace farm::coordinator
