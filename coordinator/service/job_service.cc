#include "coordinator/service/job_service.h"

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/text.h"
#include "coordinator/service/list_events.h"
#include "coordinator/service/request_text.h"
#include "coordinator/service/unary.h"
#include "coordinator/service/watch_logs.h"

namespace farm::coordinator {
namespace {

using common::ToGrpcStatus;

// OK when every secret the specs name exists (NOT_FOUND naming one that does not), so that a
// job never waits in the queue for a secret it cannot get.
absl::Status CheckSecrets(const SecretRegistry* secrets, const farm::v1::JobSpec& spec) {
  if (spec.secrets().empty()) return absl::OkStatus();
  if (secrets == nullptr) return absl::FailedPreconditionError("this coordinator keeps no secrets");
  return secrets->CheckExist(spec.secrets());
}

// Who submits: the caller's name (empty where nobody is identified, with --insecure).
std::string SubmitterOf(const Authenticator* auth, const grpc::CallbackServerContext& ctx) {
  absl::StatusOr<Principal> caller = auth->CallerOf(ctx);
  return caller.ok() ? caller->name : "";
}

}  // namespace

grpc::ServerUnaryReactor* JobServiceImpl::Submit(grpc::CallbackServerContext* ctx,
                                                 const farm::v1::SubmitJobRequest* req,
                                                 farm::v1::SubmitJobResponse* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  auto* reactor = ctx->DefaultReactor();
  if (absl::Status s = CheckSecrets(secrets_, req->spec()); !s.ok()) {
    reactor->Finish(ToGrpcStatus(s));
    return reactor;
  }
  scheduler_->Submit(req->spec(), req->request_id(), FinishWith(reactor, resp),
                     SubmitterOf(auth_, *ctx));
  return reactor;
}

grpc::ServerUnaryReactor* JobServiceImpl::Get(grpc::CallbackServerContext* ctx,
                                              const farm::v1::GetJobRequest* req,
                                              farm::v1::Job* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  return RunOnPool(ctx, pool_, resp,
                   [this, req] { return scheduler_->reads().GetJob(req->job_id()); });
}

grpc::ServerUnaryReactor* JobServiceImpl::List(grpc::CallbackServerContext* ctx,
                                               const farm::v1::ListJobsRequest* req,
                                               farm::v1::ListJobsResponse* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  return RunOnPool(ctx, pool_, resp, [this, req] { return scheduler_->reads().ListJobs(*req); });
}

grpc::ServerUnaryReactor* JobServiceImpl::Cancel(grpc::CallbackServerContext* ctx,
                                                 const farm::v1::CancelJobRequest* req,
                                                 farm::v1::CancelJobResponse* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  auto* reactor = ctx->DefaultReactor();
  scheduler_->Cancel(req->job_id(), [reactor, resp](absl::StatusOr<farm::v1::Job> r) {
    if (r.ok()) *resp->mutable_job() = *std::move(r);
    reactor->Finish(ToGrpcStatus(r.status()));
  });
  return reactor;
}

grpc::ServerUnaryReactor* JobServiceImpl::SubmitPipeline(grpc::CallbackServerContext* ctx,
                                                         const farm::v1::SubmitPipelineRequest* req,
                                                         farm::v1::SubmitPipelineResponse* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  auto* reactor = ctx->DefaultReactor();
  for (const farm::v1::PipelineJobSpec& job : req->spec().jobs()) {
    if (absl::Status s = CheckSecrets(secrets_, job.spec()); !s.ok()) {
      reactor->Finish(ToGrpcStatus(absl::Status(
          s.code(), absl::StrCat("jobs: ", common::Quote(job.name()), ": ", s.message()))));
      return reactor;
    }
  }
  scheduler_->SubmitPipeline(req->spec(), req->request_id(), FinishWith(reactor, resp),
                             SubmitterOf(auth_, *ctx));
  return reactor;
}

grpc::ServerUnaryReactor* JobServiceImpl::GetPipeline(grpc::CallbackServerContext* ctx,
                                                      const farm::v1::GetPipelineRequest* req,
                                                      farm::v1::Pipeline* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  return RunOnPool(ctx, pool_, resp,
                   [this, req] { return scheduler_->reads().GetPipeline(req->pipeline_id()); });
}

grpc::ServerUnaryReactor* JobServiceImpl::ListPipelines(grpc::CallbackServerContext* ctx,
                                                        const farm::v1::ListPipelinesRequest* req,
                                                        farm::v1::ListPipelinesResponse* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  return RunOnPool(ctx, pool_, resp,
                   [this, req] { return scheduler_->reads().ListPipelines(*req); });
}

grpc::ServerUnaryReactor* JobServiceImpl::CancelPipeline(grpc::CallbackServerContext* ctx,
                                                         const farm::v1::CancelPipelineRequest* req,
                                                         farm::v1::Pipeline* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  auto* reactor = ctx->DefaultReactor();
  scheduler_->CancelPipeline(req->pipeline_id(), FinishWith(reactor, resp));
  return reactor;
}

grpc::ServerWriteReactor<farm::v1::WatchLogsResponse>* JobServiceImpl::WatchLogs(
    grpc::CallbackServerContext* ctx, const farm::v1::WatchLogsRequest* req) {
  return NewWatchLogsCall(scheduler_->store(), &scheduler_->reads(), hub_, pool_, *req,
                          watch_cap_->Acquire(CapIdentity(*auth_, *ctx)), log_bytes_sent_);
}

grpc::ServerUnaryReactor* JobServiceImpl::ListEvents(grpc::CallbackServerContext* ctx,
                                                     const farm::v1::ListEventsRequest* req,
                                                     farm::v1::ListEventsResponse* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  return NewListEventsCall(ctx, events_, hub_, pool_, *req, resp);
}

}  // namespace farm::coordinator
