// The factory's RPCs: JobService.GetFactoryReport (the request checked at once, the agents asked
// of the engine, the events read and the report built on the read pool: factory/factory_report.h)
// and GetProvenance (factory/provenance.h, signed with common/dsse.h), and AdminService's target
// conditions (factory/targets.h).
#include "common/clock.h"
#include "common/dsse.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "coordinator/factory/factory_report.h"
#include "coordinator/factory/provenance.h"
#include "coordinator/service/admin_service.h"
#include "coordinator/service/job_service.h"
#include "coordinator/service/request_text.h"
#include "coordinator/service/unary.h"

namespace farm::coordinator {

grpc::ServerUnaryReactor* JobServiceImpl::GetFactoryReport(
    grpc::CallbackServerContext* ctx, const farm::v1::FactoryReportRequest* req,
    farm::v1::FactoryReport* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  const int64_t now_ms = common::RealClock()->NowMs();
  if (absl::Status bad = factory::ValidateReportRequest(*req, now_ms); !bad.ok()) {
    reactor->Finish(common::ToGrpcStatus(bad));
    return reactor;
  }
  // The open jobs at the window's end (now), before anything else waits.
  const auto counts = scheduler_->job_counts().Snapshot();
  const int64_t open =
      counts[farm::v1::WAITING] + counts[farm::v1::QUEUED] + counts[farm::v1::RUNNING];
  scheduler_->ListAgents([this, ctx, reactor, resp, req = *req, now_ms,
                          open](absl::StatusOr<farm::v1::ListAgentsResponse> agents) {
    if (!agents.ok()) {
      reactor->Finish(common::ToGrpcStatus(agents.status()));
      return;
    }
    pool_->Post([this, ctx, reactor, resp, req, now_ms, open, agents = *std::move(agents)] {
      factory::ReportSources sources{events_, &scheduler_->reads(), factory_.targets,
                                     factory_.overstock};
      // A caller that gave up (its deadline, or it went away) frees the read pool.
      FinishWith(reactor, resp)(factory::BuildReport(sources, req, agents, open, now_ms,
                                                     [ctx] { return ctx->IsCancelled(); }));
    });
  });
  return reactor;
}

grpc::ServerUnaryReactor* JobServiceImpl::GetProvenance(grpc::CallbackServerContext* ctx,
                                                        const farm::v1::GetProvenanceRequest* req,
                                                        farm::v1::Provenance* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  return RunOnPool(
      ctx, pool_, resp, [this, id = req->job_id()]() -> absl::StatusOr<farm::v1::Provenance> {
        if (id.empty()) return absl::InvalidArgumentError("job_id is required");
        FARM_ASSIGN_OR_RETURN(
            std::string statement,
            factory::ProvenanceStatement(scheduler_->reads(), id, factory_.builder_id));
        farm::v1::Provenance out;
        if (factory_.tls == nullptr) {
          out.set_envelope(common::UnsignedEnvelope(common::kInTotoPayloadType, statement));
          return out;
        }
        // The key and chain in use now (a reload replaces both at once).
        const common::TlsMaterial::Pems pems = factory_.tls->Current();
        FARM_ASSIGN_OR_RETURN(*out.mutable_envelope(),
                              common::SignEnvelope(common::kInTotoPayloadType, statement,
                                                   pems.identity, pems.identity));
        out.set_signed_(true);
        return out;
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::SetFactoryTarget(
    grpc::CallbackServerContext* ctx, const farm::v1::SetFactoryTargetRequest* req,
    farm::v1::SetFactoryTargetResponse* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  absl::StatusOr<Principal> caller = auth_->CallerOf(*ctx);
  const std::string by = caller.ok() ? caller->name : "";
  return RunOnPool(ctx, pool_, resp,
                   [this, req, by]() -> absl::StatusOr<farm::v1::SetFactoryTargetResponse> {
                     if (targets_ == nullptr) return absl::UnavailableError("no target store");
                     FARM_ASSIGN_OR_RETURN(
                         auto set, targets_->Set(req->target(), by, common::RealClock()->NowMs()));
                     FARM_LOG(INFO) << "factory target for " << set.first.scope() << " set by "
                                    << (by.empty() ? "an insecure caller" : by);
                     farm::v1::SetFactoryTargetResponse out;
                     *out.mutable_target() = std::move(set.first);
                     out.set_replaced(set.second);
                     return out;
                   });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListFactoryTargets(
    grpc::CallbackServerContext* ctx, const farm::v1::ListFactoryTargetsRequest* /*req*/,
    farm::v1::ListFactoryTargetsResponse* resp) {
  return RunOnPool(
      ctx, pool_, resp, [this]() -> absl::StatusOr<farm::v1::ListFactoryTargetsResponse> {
        if (targets_ == nullptr) return absl::UnavailableError("no target store");
        FARM_ASSIGN_OR_RETURN(std::vector<farm::v1::FactoryTarget> all, targets_->List());
        farm::v1::ListFactoryTargetsResponse out;
        for (farm::v1::FactoryTarget& t : all) *out.add_targets() = std::move(t);
        return out;
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::DeleteFactoryTarget(
    grpc::CallbackServerContext* ctx, const farm::v1::DeleteFactoryTargetRequest* req,
    farm::v1::DeleteFactoryTargetResponse* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  return RunOnPool(ctx, pool_, resp,
                   [this, req]() -> absl::StatusOr<farm::v1::DeleteFactoryTargetResponse> {
                     if (targets_ == nullptr) return absl::UnavailableError("no target store");
                     farm::v1::DeleteFactoryTargetResponse out;
                     FARM_ASSIGN_OR_RETURN(*out.mutable_deleted(), targets_->Delete(*req));
                     return out;
                   });
}

}  // namespace farm::coordinator
