// AdminService's queue RPCs (admin_service.h): thin adapters over the scheduler's operator
// commands (scheduler.h). ListQueues takes the engine's snapshot, then reads the queue family on
// the read pool (queue_report.h), never on the engine thread or gRPC's callback threads.
#include "coordinator/scheduler/queue_report.h"
#include "coordinator/service/admin_service.h"
#include "coordinator/service/request_text.h"
#include "coordinator/service/unary.h"

namespace farm::coordinator {

grpc::ServerUnaryReactor* AdminServiceImpl::PauseQueue(grpc::CallbackServerContext* ctx,
                                                       const farm::v1::PauseQueueRequest* req,
                                                       farm::v1::PauseQueueResponse* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  auto* reactor = ctx->DefaultReactor();
  scheduler_->PauseQueue(ToLabels(req->labels()), FinishWith(reactor, resp));
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::ResumeQueue(grpc::CallbackServerContext* ctx,
                                                        const farm::v1::ResumeQueueRequest* req,
                                                        farm::v1::ResumeQueueResponse* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  auto* reactor = ctx->DefaultReactor();
  scheduler_->ResumeQueue(ToLabels(req->labels()), FinishWith(reactor, resp));
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListQueues(grpc::CallbackServerContext* ctx,
                                                       const farm::v1::ListQueuesRequest* req,
                                                       farm::v1::ListQueuesResponse* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  auto* reactor = ctx->DefaultReactor();
  scheduler_->SnapshotQueues(
      [this, done = FinishWith(reactor, resp)](absl::StatusOr<QueueSnapshot> snapshot) {
        if (!snapshot.ok()) return done(snapshot.status());
        pool_->Post([this, done, snapshot = *std::move(snapshot)] {
          done(BuildQueueReport(scheduler_->store(), snapshot));
        });
      });
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::ReprioritizeJob(
    grpc::CallbackServerContext* ctx, const farm::v1::ReprioritizeJobRequest* req,
    farm::v1::Job* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  auto* reactor = ctx->DefaultReactor();
  scheduler_->Reprioritize(req->job_id(), req->priority(), FinishWith(reactor, resp));
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::Retry(grpc::CallbackServerContext* ctx,
                                                  const farm::v1::RetryRequest* req,
                                                  farm::v1::RetryResponse* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  auto* reactor = ctx->DefaultReactor();
  scheduler_->Retry(req->id(), req->request_id(), FinishWith(reactor, resp));
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::BulkCancel(grpc::CallbackServerContext* ctx,
                                                       const farm::v1::BulkCancelRequest* req,
                                                       farm::v1::BulkCancelResponse* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  auto* reactor = ctx->DefaultReactor();
  scheduler_->BulkCancel(ToLabels(req->labels()), req->state(), FinishWith(reactor, resp));
  return reactor;
}

}  // namespace farm::coordinator
