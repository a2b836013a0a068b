// AdminService's agent commands (admin_service.h): drain, resume, remove and label, each a
// scheduler command (scheduler.h) that names the calling operator in its event.
#include "coordinator/service/admin_service.h"
#include "coordinator/service/request_text.h"
#include "coordinator/service/unary.h"

namespace farm::coordinator {
namespace {

// The operator's name for events; empty for a farm without authentication.
std::string CallerName(const Authenticator* auth, const grpc::CallbackServerContext& ctx) {
  absl::StatusOr<Principal> caller = auth->CallerOf(ctx);
  return caller.ok() ? caller->name : "";
}

// Finishes the call with the agent the command left, in the response's field `field`.
template <typename Response>
Scheduler::Done<farm::v1::AgentInfo> FinishWithAgent(grpc::ServerUnaryReactor* reactor,
                                                     Response* resp,
                                                     farm::v1::AgentInfo* (Response::*field)()) {
  return [reactor, resp, field](absl::StatusOr<farm::v1::AgentInfo> info) {
    if (info.ok()) *(resp->*field)() = *std::move(info);
    reactor->Finish(common::ToGrpcStatus(info.status()));
  };
}

}  // namespace

grpc::ServerUnaryReactor* AdminServiceImpl::DrainAgent(grpc::CallbackServerContext* ctx,
                                                       const farm::v1::DrainAgentRequest* req,
                                                       farm::v1::DrainAgentResponse* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  auto* reactor = ctx->DefaultReactor();
  scheduler_->DrainAgent(
      req->name(), true, CallerName(auth_, *ctx),
      FinishWithAgent(reactor, resp, &farm::v1::DrainAgentResponse::mutable_agent));
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::ResumeAgent(grpc::CallbackServerContext* ctx,
                                                        const farm::v1::ResumeAgentRequest* req,
                                                        farm::v1::ResumeAgentResponse* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  auto* reactor = ctx->DefaultReactor();
  scheduler_->DrainAgent(
      req->name(), false, CallerName(auth_, *ctx),
      FinishWithAgent(reactor, resp, &farm::v1::ResumeAgentResponse::mutable_agent));
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::RemoveAgent(grpc::CallbackServerContext* ctx,
                                                        const farm::v1::RemoveAgentRequest* req,
                                                        farm::v1::RemoveAgentResponse* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  auto* reactor = ctx->DefaultReactor();
  scheduler_->RemoveAgent(
      req->name(), CallerName(auth_, *ctx),
      FinishWithAgent(reactor, resp, &farm::v1::RemoveAgentResponse::mutable_removed));
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::LabelAgent(grpc::CallbackServerContext* ctx,
                                                       const farm::v1::LabelAgentRequest* req,
                                                       farm::v1::LabelAgentResponse* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  auto* reactor = ctx->DefaultReactor();
  scheduler_->LabelAgent(
      req->name(), ToLabels(req->set()), {req->remove().begin(), req->remove().end()},
      CallerName(auth_, *ctx),
      FinishWithAgent(reactor, resp, &farm::v1::LabelAgentResponse::mutable_agent));
  return reactor;
}

}  // namespace farm::coordinator
