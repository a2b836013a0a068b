// farm.v1.AgentService on the gRPC callback API: thin adapters over Scheduler. An agent acts
// only as itself: its calls name its own name and its own leases (PERMISSION_DENIED
// otherwise, changing nothing), and registers only with the labels its enrollment pinned.
// Enroll exchanges an enrollment token for the agent's credential (TokenRegistry::Enroll, a
// synced write, on the pool); every refusal is logged with the enrollment token's id. Parked
// calls (Lease, Heartbeat) end before the client's deadline and are answered with CANCELLED when
// the client goes away; one identity holds at most `parked_cap` of them at once
// (RESOURCE_EXHAUSTED beyond). Thread-safe; owned by the Coordinator.
#pragma once

#include "common/io_pool.h"
#include "common/metrics.h"
#include "coordinator/auth/secret_registry.h"
#include "coordinator/auth/token_registry.h"
#include "coordinator/scheduler/scheduler.h"
#include "coordinator/service/authenticator.h"
#include "coordinator/service/call_caps.h"
#include "farm/v1/farm.grpc.pb.h"

namespace farm::coordinator {

// The largest log chunk an agent may upload in one message.
inline constexpr size_t kMaxLogChunkBytes = 4 << 20;

class AgentServiceImpl final : public farm::v1::AgentService::CallbackService {
 public:
  // Not owned; all outlive the service. `secrets` (may be null) gives a lease the values of
  // its job's secrets.
  AgentServiceImpl(Scheduler* scheduler, const Authenticator* auth, CallCap* parked_cap,
                   TokenRegistry* tokens, common::IoPool* pool,
                   const SecretRegistry* secrets = nullptr)
      : scheduler_(scheduler),
        auth_(auth),
        parked_cap_(parked_cap),
        tokens_(tokens),
        pool_(pool),
        secrets_(secrets) {}

  // Counts the output bytes agents upload (before Start; the counter outlives the service).
  void CountLogBytesReceived(common::metrics::Counter* counter) { log_bytes_received_ = counter; }

  grpc::ServerUnaryReactor* Enroll(grpc::CallbackServerContext* ctx,
                                   const farm::v1::EnrollRequest* req,
                                   farm::v1::EnrollResponse* resp) override;

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
  // The agent this call may act as: the caller's own name when it is an agent, which must be
  // `named` when that is given (PERMISSION_DENIED otherwise); "" (any) for an admin, or when
  // the farm runs without authentication. `caller`, when given, receives the caller.
  absl::StatusOr<std::string> ActingAgent(const grpc::CallbackServerContext& ctx,
                                          absl::string_view named,
                                          Principal* caller = nullptr) const;

  Scheduler* const scheduler_;
  const Authenticator* const auth_;
  CallCap* const parked_cap_;
  TokenRegistry* const tokens_;
  common::IoPool* const pool_;
  common::metrics::Counter* log_bytes_received_ = nullptr;
  const SecretRegistry* const secrets_;
};

}  // namespace farm::coordinator
