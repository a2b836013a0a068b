// Who makes a call, from what it carries: the same rules for the gRPC port
// (service/authenticator.h) and the HTTP port (http/http_port.h).
//   - an `authorization` value "Bearer TOKEN": the token's principal (token_registry.h);
//   - else the client certificate's SAN URI farm://ROLE/NAME.
// Errors: NOT_FOUND when the call carries no credential at all (the caller decides whether the
// path is public); UNAUTHENTICATED for an authorization value that is not "Bearer TOKEN", an
// unknown, revoked or expired token, or a certificate without a valid farm:// URI.
// Thread-safe (TokenRegistry is).
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "coordinator/auth/principal.h"
#include "coordinator/auth/token_registry.h"

namespace farm::coordinator {

// `sans`: the verified client certificate's subject alternative names (any kind; those that
// are not farm:// URIs are skipped); `has_certificate`: whether the caller presented one.
absl::StatusOr<Principal> IdentifyCaller(const TokenRegistry& tokens,
                                         absl::string_view authorization,
                                         const std::vector<absl::string_view>& sans,
                                         bool has_certificate);

// The role and name in a SAN URI "farm://ROLE/NAME"; INVALID_ARGUMENT otherwise.
absl::StatusOr<Principal> ParseFarmUri(absl::string_view uri);

}  // namespace farm::coordinator
