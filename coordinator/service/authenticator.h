// The gRPC edge of identity: on every call to a TLS port, finds who calls (a bearer token in
// `authorization: Bearer TOKEN`, else the client certificate's SAN URI farm://ROLE/NAME) and
// asks the authorization table (auth/authz_table.h) whether that role may call the method.
// gRPC runs it before the call reaches any service (ServerCredentials'
// AuthMetadataProcessor), so no handler sees a call the table refuses:
//   - no credential: UNAUTHENTICATED, unless the method is public (health);
//   - an unknown, revoked or expired token, or a certificate without a farm:// URI:
//     UNAUTHENTICATED;
//   - a role the table does not allow for the method (or a method not in it): PERMISSION_DENIED.
// Handlers that need the caller's name (the agent protocol: an agent acts only as itself) ask
// CallerOf(). With --insecure there is no processor and CallerOf() answers admin.
// Thread-safe; runs inline on gRPC's threads (an in-memory lookup, no store access).
#pragma once

#include <grpcpp/security/auth_metadata_processor.h>
#include <grpcpp/server_context.h>

#include "absl/status/statusor.h"
#include "coordinator/auth/principal.h"
#include "coordinator/auth/token_registry.h"

namespace farm::coordinator {

class Authenticator final : public grpc::AuthMetadataProcessor {
 public:
  // `tokens` is not owned and outlives the authenticator. `enabled` false: --insecure, every
  // caller is admin.
  Authenticator(const TokenRegistry* tokens, bool enabled) : tokens_(tokens), enabled_(enabled) {}

  bool IsBlocking() const override { return false; }
  grpc::Status Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                       OutputMetadata* consumed_auth_metadata,
                       OutputMetadata* response_metadata) override;

  // Who makes this call (already authenticated and authorized by Process).
  absl::StatusOr<Principal> CallerOf(const grpc::ServerContextBase& ctx) const;

 private:
  // The principal of a call from its `authorization` header (empty: none) and its connection.
  // NOT_FOUND when it carries no credential at all.
  absl::StatusOr<Principal> Identify(absl::string_view authorization,
                                     const grpc::AuthContext& connection) const;

  const TokenRegistry* const tokens_;
  const bool enabled_;
};

}  // namespace farm::coordinator
