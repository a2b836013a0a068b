// farm.v1.AgentService and farm.v1.AdminService on the gRPC callback API: thin adapters over
// Scheduler. Parked calls (Lease, Heartbeat) end before the client's deadline and are
// answered with CANCELLED when the client goes away. Thread-safe; owned by the Coordinator.
#pragma once

#include "coordinator/scheduler/scheduler.h"
#include "farm/v1/farm.grpc.pb.h"

namespace farm::coordinator {

// The largest log chunk an agent may upload in one message.
inline constexpr size_t kMaxLogChunkBytes = 4 << 20;

class AgentServiceImpl final : public farm::v1::AgentService::CallbackService {
 public:
  explicit AgentServiceImpl(Scheduler* scheduler) : scheduler_(scheduler) {}

  grpc::ServerUnaryReactor* Register(grpc::CallbackServerContext* ctx,
                                     const farm::v1::RegisterRequest* req,
                                     farm::v1::RegisterResponse* resp) override;
  grpc::ServerUnaryReactor* Lease(grpc::CallbackServerContext* ctx,
                                  const farm::v1::LeaseRequest* req,
                                  farm::v1::LeaseResponse* resp) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* ctx,
                                      const farm::v1::HeartbeatRequest* req,
                                      farm::v1::HeartbeatResponse* resp) override;
  grpc::ServerReadReactor<farm::v1::LogUploadChunk>* UploadLogs(
      grpc::CallbackServerContext* ctx, farm::v1::LogUploadResponse* resp) override;
  grpc::ServerUnaryReactor* StepStarted(grpc::CallbackServerContext* ctx,
                                        const farm::v1::StepStartedRequest* req,
                                        farm::v1::Ack* resp) override;
  grpc::ServerUnaryReactor* StepFinished(grpc::CallbackServerContext* ctx,
                                         const farm::v1::StepFinishedRequest* req,
                                         farm::v1::Ack* resp) override;
  grpc::ServerUnaryReactor* CompleteJob(grpc::CallbackServerContext* ctx,
                                        const farm::v1::CompleteJobRequest* req,
                                        farm::v1::CompleteJobResponse* resp) override;

 private:
  Scheduler* const scheduler_;
};

class AdminServiceImpl final : public farm::v1::AdminService::CallbackService {
 public:
  explicit AdminServiceImpl(Scheduler* scheduler) : scheduler_(scheduler) {}

  grpc::ServerUnaryReactor* ListAgents(grpc::CallbackServerContext* ctx,
                                       const farm::v1::ListAgentsRequest* req,
                                       farm::v1::ListAgentsResponse* resp) override;

 private:
  Scheduler* const scheduler_;
};

}  // namespace farm::coordinator
