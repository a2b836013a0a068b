// The agent's own credential, and how it gets one: an operator's enrollment token (`farmctl
// agent enroll-token`) is exchanged once (AgentService.Enroll) for a long-lived token of role
// agent named as the agent, kept in WORK_DIR/credential (mode 0600, written atomically) and used
// on every start from then on, so the enrollment token is needed only on the first.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "agent/coordinator_client.h"
#include "agent/options.h"

namespace farm::agent {

// The credential's file name in the agent's work dir.
inline constexpr absl::string_view kCredentialFileName = "credential";
// How long the agent tries to reach the coordinator to enroll before it gives up at start.
inline constexpr int64_t kEnrollRetryMs = 60'000;

// WORK_DIR/credential.
std::string CredentialPath(absl::string_view work_dir);

// Writes `token` and a newline to `path` with mode 0600, atomically: a temporary file in the same
// directory, written, synced, renamed into place (never over an existing file: ALREADY_EXISTS
// then), and the directory synced. The error names the path.
absl::Status WriteCredentialFile(const std::string& path, absl::string_view token);

// Gives `options->security` the agent's credential when its flags gave it none (no token, no
// client certificate):
//   - WORK_DIR/credential exists: its token (a log line says so when an enrollment token was
//     given too: it is not needed and is not used);
//   - else, with options->enroll_token: enrolls under options->name with `request_id` (retrying
//     an unreachable coordinator for up to kEnrollRetryMs), writes the credential file, uses it;
//   - else: nothing changes.
// `client` reaches the coordinator without credentials. Errors: the coordinator's refusal of the
// enrollment token (its code: UNAUTHENTICATED, PERMISSION_DENIED, ALREADY_EXISTS, ...) with a
// message saying so; UNAVAILABLE when it could not be reached in time; INVALID_ARGUMENT for an
// unreadable credential file; the file system's error when the credential cannot be written.
// `canceller` (may be null) cuts the retries short.
absl::Status ResolveCredential(AgentOptions* options, CoordinatorClient* client,
                               absl::string_view request_id, CallCanceller* canceller);

}  // namespace farm::agent
