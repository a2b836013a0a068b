// Who is calling: a role and a name, from a client certificate or a bearer token. The roles
// are nested for reads and submits (viewer < submitter < admin); `agent` is apart: the agent
// protocol and the CAS, and only on the leases granted to its own name.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace farm::coordinator {

enum class Role {
  kViewer,     // reads jobs, pipelines, logs, events, artifacts and agents
  kSubmitter,  // viewer, and submits and cancels work, and writes the CAS
  kAgent,      // the agent protocol (as its own name only) and the CAS
  kAdmin,      // everything: tokens, operators' commands
};
inline constexpr int kNumRoles = 4;

// "viewer", "submitter", "agent", "admin".
absl::string_view RoleName(Role role);
// The inverse of RoleName; INVALID_ARGUMENT naming the roles otherwise.
absl::StatusOr<Role> ParseRole(absl::string_view name);

struct Principal {
  Role role = Role::kAdmin;
  std::string name;
};

// A principal's name: 1 to 64 bytes of letters, digits and "._-" (it names agents, tokens and
// certificates' URIs: farm://ROLE/NAME). INVALID_ARGUMENT naming the problem otherwise.
absl::Status CheckPrincipalName(absl::string_view name);

}  // namespace farm::coordinator
