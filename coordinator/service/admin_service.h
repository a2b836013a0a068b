// farm.v1.AdminService on the gRPC callback API: operators' commands. The authorization table
// lets only admins call the token, secret and agent-command RPCs (ListAgents: every person). Token
// and secret writes are synced store writes: they run on the read pool, never on gRPC's callback
// threads. The secret RPCs are in admin_secrets.cc. Thread-safe; owned by the Coordinator.
#pragma once

#include <functional>

#include "common/io_pool.h"
#include "coordinator/auth/secret_registry.h"
#include "coordinator/auth/token_registry.h"
#include "coordinator/backup/backup.h"
#include "coordinator/factory/targets.h"
#include "coordinator/scheduler/scheduler.h"
#include "coordinator/service/authenticator.h"
#include "farm/v1/farm.grpc.pb.h"

namespace farm::coordinator {

class AdminServiceImpl final : public farm::v1::AdminService::CallbackService {
 public:
  // Not owned; all outlive the service.
  AdminServiceImpl(Scheduler* scheduler, TokenRegistry* tokens, const Authenticator* auth,
                   common::IoPool* pool, SecretRegistry* secrets)
      : scheduler_(scheduler), tokens_(tokens), auth_(auth), pool_(pool), secrets_(secrets) {}

  grpc::ServerUnaryReactor* ListAgents(grpc::CallbackServerContext* ctx,
                                       const farm::v1::ListAgentsRequest* req,
                                       farm::v1::ListAgentsResponse* resp) override;
  grpc::ServerUnaryReactor* CreateToken(grpc::CallbackServerContext* ctx,
                                        const farm::v1::CreateTokenRequest* req,
                                        farm::v1::CreateTokenResponse* resp) override;
  grpc::ServerUnaryReactor* ListTokens(grpc::CallbackServerContext* ctx,
                                       const farm::v1::ListTokensRequest* req,
                                       farm::v1::ListTokensResponse* resp) override;
  grpc::ServerUnaryReactor* RevokeToken(grpc::CallbackServerContext* ctx,
                                        const farm::v1::RevokeTokenRequest* req,
                                        farm::v1::RevokeTokenResponse* resp) override;
  // Agent enrollment.
  grpc::ServerUnaryReactor* CreateEnrollToken(grpc::CallbackServerContext* ctx,
                                              const farm::v1::CreateEnrollTokenRequest* req,
                                              farm::v1::CreateEnrollTokenResponse* resp) override;

  // Retention and GC (admin_gc.cc; issue 13, part 3): runs `gc` on the read pool.
  using GcRunner = std::function<absl::StatusOr<farm::v1::CollectGarbageResponse>(bool dry_run)>;
  void SetGarbageCollector(GcRunner gc) { gc_ = std::move(gc); }
  grpc::ServerUnaryReactor* CollectGarbage(grpc::CallbackServerContext* ctx,
                                           const farm::v1::CollectGarbageRequest* req,
                                           farm::v1::CollectGarbageResponse* resp) override;

  // Secrets (admin_secrets.cc).
  grpc::ServerUnaryReactor* SetSecret(grpc::CallbackServerContext* ctx,
                                      const farm::v1::SetSecretRequest* req,
                                      farm::v1::SetSecretResponse* resp) override;
  grpc::ServerUnaryReactor* ListSecrets(grpc::CallbackServerContext* ctx,
                                        const farm::v1::ListSecretsRequest* req,
                                        farm::v1::ListSecretsResponse* resp) override;
  grpc::ServerUnaryReactor* DeleteSecret(grpc::CallbackServerContext* ctx,
                                         const farm::v1::DeleteSecretRequest* req,
                                         farm::v1::DeleteSecretResponse* resp) override;

  // Operators' agent commands (admin_agents.cc).
  grpc::ServerUnaryReactor* DrainAgent(grpc::CallbackServerContext* ctx,
                                       const farm::v1::DrainAgentRequest* req,
                                       farm::v1::DrainAgentResponse* resp) override;
  grpc::ServerUnaryReactor* ResumeAgent(grpc::CallbackServerContext* ctx,
                                        const farm::v1::ResumeAgentRequest* req,
                                        farm::v1::ResumeAgentResponse* resp) override;
  grpc::ServerUnaryReactor* RemoveAgent(grpc::CallbackServerContext* ctx,
                                        const farm::v1::RemoveAgentRequest* req,
                                        farm::v1::RemoveAgentResponse* resp) override;
  grpc::ServerUnaryReactor* LabelAgent(grpc::CallbackServerContext* ctx,
                                       const farm::v1::LabelAgentRequest* req,
                                       farm::v1::LabelAgentResponse* resp) override;
  // Admin queues (admin_queues.cc).
  grpc::ServerUnaryReactor* PauseQueue(grpc::CallbackServerContext* ctx,
                                       const farm::v1::PauseQueueRequest* req,
                                       farm::v1::PauseQueueResponse* resp) override;
  grpc::ServerUnaryReactor* ResumeQueue(grpc::CallbackServerContext* ctx,
                                        const farm::v1::ResumeQueueRequest* req,
                                        farm::v1::ResumeQueueResponse* resp) override;
  grpc::ServerUnaryReactor* ListQueues(grpc::CallbackServerContext* ctx,
                                       const farm::v1::ListQueuesRequest* req,
                                       farm::v1::ListQueuesResponse* resp) override;
  grpc::ServerUnaryReactor* ReprioritizeJob(grpc::CallbackServerContext* ctx,
                                            const farm::v1::ReprioritizeJobRequest* req,
                                            farm::v1::Job* resp) override;
  grpc::ServerUnaryReactor* Retry(grpc::CallbackServerContext* ctx,
                                  const farm::v1::RetryRequest* req,
                                  farm::v1::RetryResponse* resp) override;
  grpc::ServerUnaryReactor* BulkCancel(grpc::CallbackServerContext* ctx,
                                       const farm::v1::BulkCancelRequest* req,
                                       farm::v1::BulkCancelResponse* resp) override;
  // Issue 13: backup (admin_backup.cc) and status (admin_status.cc). What they read, set once
  // before the server starts (all not owned, outliving the service); until then both answer
  // UNAVAILABLE.
  struct StatusSources {
    std::string version;
    int64_t started_ms = 0;  // Unix ms
    std::string data_dir;
    Store* store = nullptr;
    FileBlobStore* cas = nullptr;
    int64_t cas_max_bytes = 0;
    BackupMaker* backups = nullptr;
  };
  void SetStatusSources(StatusSources sources) { status_ = std::move(sources); }
  // Writes the backup on the read pool (it holds one of its threads for the whole backup).
  grpc::ServerUnaryReactor* Backup(grpc::CallbackServerContext* ctx,
                                   const farm::v1::BackupRequest* req,
                                   farm::v1::BackupResponse* resp) override;
  // Store and CAS statistics on the read pool, then the agents from the scheduler.
  grpc::ServerUnaryReactor* GetStatus(grpc::CallbackServerContext* ctx,
                                      const farm::v1::GetStatusRequest* req,
                                      farm::v1::GetStatusResponse* resp) override;

  // Issue 14: the factory report's targets (factory_service.cc; writes synced, on the pool).
  void SetFactoryTargets(factory::TargetStore* targets) { targets_ = targets; }
  grpc::ServerUnaryReactor* SetFactoryTarget(grpc::CallbackServerContext* ctx,
                                             const farm::v1::SetFactoryTargetRequest* req,
                                             farm::v1::SetFactoryTargetResponse* resp) override;
  grpc::ServerUnaryReactor* ListFactoryTargets(grpc::CallbackServerContext* ctx,
                                               const farm::v1::ListFactoryTargetsRequest* req,
                                               farm::v1::ListFactoryTargetsResponse* resp) override;
  grpc::ServerUnaryReactor* DeleteFactoryTarget(
      grpc::CallbackServerContext* ctx, const farm::v1::DeleteFactoryTargetRequest* req,
      farm::v1::DeleteFactoryTargetResponse* resp) override;

 private:
  Scheduler* const scheduler_;
  TokenRegistry* const tokens_;
  const Authenticator* const auth_;
  common::IoPool* const pool_;
  SecretRegistry* const secrets_;
  GcRunner gc_;           // set before the server starts
  StatusSources status_;  // issue 13
  factory::TargetStore* targets_ = nullptr;
};

}  // namespace farm::coordinator
