// The one bridge between absl::Status (domain code) and grpc::Status (the wire).
// Canonical codes map one to one; messages are kept. A machine-readable reason (below) travels
// as a google.rpc.ErrorInfo in the standard error details (google.rpc.Status), so that a client
// acts on the reason, never on the message text.
#pragma once

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace farm::common {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

// Reasons the farm attaches to errors (google.rpc.ErrorInfo.reason, domain kErrorDomain).
inline constexpr absl::string_view kErrorDomain = "farm.v1";
// NOT_FOUND on an agent call: the coordinator does not know this agent (it restarted, or forgot
// an agent that was silent for long); the agent registers again.
inline constexpr absl::string_view kReasonAgentNotRegistered = "AGENT_NOT_REGISTERED";
// FAILED_PRECONDITION on an agent call: another process registered under this agent's name
// with a new session and took its place; the old one must stop, not register back (the two
// would take turns for ever).
inline constexpr absl::string_view kReasonAgentSessionSuperseded = "AGENT_SESSION_SUPERSEDED";

// `status` carrying `reason`. An OK status stays OK.
absl::Status WithReason(absl::Status status, absl::string_view reason);
// The reason attached to `status` (also after a round trip through gRPC); empty when none.
std::string ReasonOf(const absl::Status& status);

}  // namespace farm::common
