// farm.v1.AdminService on the gRPC callback API: operators' commands. The authorization table
// lets only admins call the token and secret RPCs (ListAgents: every person). Token and secret
// writes are synced store writes: they run on the read pool, never on gRPC's callback threads.
// The secret RPCs are in admin_secrets.cc. Thread-safe; owned by the Coordinator.
#pragma once

#include "common/io_pool.h"
#include "coordinator/auth/secret_registry.h"
#include "coordinator/auth/token_registry.h"
#include "coordinator/backup/backup.h"
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

 private:
  Scheduler* const scheduler_;
  TokenRegistry* const tokens_;
  const Authenticator* const auth_;
  common::IoPool* const pool_;
  SecretRegistry* const secrets_;
  StatusSources status_;  // issue 13
};

}  // namespace farm::coordinator
