// JobService.GetFactoryReport: the request checked at once, the agents asked of the engine, the
// events read and the report built on the read pool (factory/factory_report.h).
#include "common/clock.h"
#include "common/grpc_status.h"
#include "coordinator/factory/factory_report.h"
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
      // A caller that gave up (its deadline, or it went away) frees the read pool.
      FinishWith(reactor,
                 resp)(factory::BuildReport({events_, &scheduler_->reads()}, req, agents, open,
                                            now_ms, [ctx] { return ctx->IsCancelled(); }));
    });
  });
  return reactor;
}

}  // namespace farm::coordinator
