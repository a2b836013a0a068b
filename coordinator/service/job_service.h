// farm.v1.JobService on the gRPC callback API: a thin adapter over the Scheduler (state
// changes, on its engine thread) and the committed store (reads). Every read (Get, List,
// GetPipeline, ListPipelines, WatchLogs, ListEvents) runs on the read pool, never on gRPC's
// callback threads nor on the engine thread. One identity holds at most `watch_cap` WatchLogs
// streams open at once (RESOURCE_EXHAUSTED beyond). Thread-safe; owned by the Coordinator.
#pragma once

#include "common/io_pool.h"
#include "common/metrics.h"
#include "common/tls_material.h"
#include "coordinator/auth/secret_registry.h"
#include "coordinator/events/event_reader.h"
#include "coordinator/factory/overstock.h"
#include "coordinator/factory/targets.h"
#include "coordinator/logs/follower_hub.h"
#include "coordinator/scheduler/scheduler.h"
#include "coordinator/service/authenticator.h"
#include "coordinator/service/call_caps.h"
#include "farm/v1/farm.grpc.pb.h"

namespace farm::coordinator {

class JobServiceImpl final : public farm::v1::JobService::CallbackService {
 public:
  // `reads`: the pool for store reads. `secrets` (may be null: no job may use secrets) checks
  // that the secrets a job names exist before it is submitted. None is owned; all outlive the
  // service.
  JobServiceImpl(Scheduler* scheduler, FollowerHub* hub, EventReader* events, common::IoPool* reads,
                 const Authenticator* auth, CallCap* watch_cap,
                 const SecretRegistry* secrets = nullptr)
      : scheduler_(scheduler),
        hub_(hub),
        events_(events),
        pool_(reads),
        auth_(auth),
        watch_cap_(watch_cap),
        secrets_(secrets) {}

  // Counts the output bytes WatchLogs sends (before Start; the counter outlives the service).
  void CountLogBytesSent(common::metrics::Counter* counter) { log_bytes_sent_ = counter; }

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
  grpc::ServerUnaryReactor* ListEvents(grpc::CallbackServerContext* ctx,
                                       const farm::v1::ListEventsRequest* req,
                                       farm::v1::ListEventsResponse* resp) override;
  // factory_service.cc: the agents from the engine, then the events on the read pool.
  grpc::ServerUnaryReactor* GetFactoryReport(grpc::CallbackServerContext* ctx,
                                             const farm::v1::FactoryReportRequest* req,
                                             farm::v1::FactoryReport* resp) override;
  // The provenance of a job's artifacts, signed with the TLS key when there is one.
  grpc::ServerUnaryReactor* GetProvenance(grpc::CallbackServerContext* ctx,
                                          const farm::v1::GetProvenanceRequest* req,
                                          farm::v1::Provenance* resp) override;
  // What the report and the provenance read besides the events (before Start).
  struct FactorySources {
    const factory::TargetStore* targets = nullptr;
    factory::OverstockSources overstock;
    std::shared_ptr<common::TlsMaterial> tls;  // null: provenance unsigned
    std::string builder_id;                    // runDetails.builder.id
  };
  void SetFactorySources(FactorySources sources) { factory_ = std::move(sources); }

 private:
  Scheduler* const scheduler_;
  FollowerHub* const hub_;
  EventReader* const events_;
  common::IoPool* const pool_;
  const Authenticator* const auth_;
  CallCap* const watch_cap_;
  const SecretRegistry* const secrets_;
  common::metrics::Counter* log_bytes_sent_ = nullptr;
  FactorySources factory_;
};

}  // namespace farm::coordinator
