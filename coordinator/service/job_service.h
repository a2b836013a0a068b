// farm.v1.JobService on the gRPC callback API: a thin adapter over Scheduler (state changes)
// and the store (committed reads). Thread-safe; owned by the Coordinator.
#pragma once

#include "coordinator/logs/log_hub.h"
#include "coordinator/scheduler/scheduler.h"
#include "farm/v1/farm.grpc.pb.h"

namespace farm::coordinator {

class JobServiceImpl final : public farm::v1::JobService::CallbackService {
 public:
  JobServiceImpl(Scheduler* scheduler, LogHub* hub) : scheduler_(scheduler), hub_(hub) {}

  grpc::ServerUnaryReactor* Submit(grpc::CallbackServerContext* ctx,
                                   const farm::v1::SubmitJobRequest* req,
                                   farm::v1::SubmitJobResponse* resp) override;
  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* ctx,
                                const farm::v1::GetJobRequest* req, farm::v1::Job* resp) override;
  grpc::ServerUnaryReactor* List(grpc::CallbackServerContext* ctx,
                                 const farm::v1::ListJobsRequest* req,
                                 farm::v1::ListJobsResponse* resp) override;
  grpc::ServerUnaryReactor* Cancel(grpc::CallbackServerContext* ctx,
                                   const farm::v1::CancelJobRequest* req,
                                   farm::v1::CancelJobResponse* resp) override;
  grpc::ServerUnaryReactor* SubmitPipeline(grpc::CallbackServerContext* ctx,
                                           const farm::v1::SubmitPipelineRequest* req,
                                           farm::v1::SubmitPipelineResponse* resp) override;
  grpc::ServerUnaryReactor* GetPipeline(grpc::CallbackServerContext* ctx,
                                        const farm::v1::GetPipelineRequest* req,
                                        farm::v1::Pipeline* resp) override;
  grpc::ServerUnaryReactor* ListPipelines(grpc::CallbackServerContext* ctx,
                                          const farm::v1::ListPipelinesRequest* req,
                                          farm::v1::ListPipelinesResponse* resp) override;
  grpc::ServerUnaryReactor* CancelPipeline(grpc::CallbackServerContext* ctx,
                                           const farm::v1::CancelPipelineRequest* req,
                                           farm::v1::Pipeline* resp) override;
  grpc::ServerWriteReactor<farm::v1::WatchLogsResponse>* WatchLogs(
      grpc::CallbackServerContext* ctx, const farm::v1::WatchLogsRequest* req) override;

 private:
  Scheduler* const scheduler_;
  LogHub* const hub_;
};

}  // namespace farm::coordinator
