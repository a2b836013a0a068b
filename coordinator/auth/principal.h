// Who is calling: a role and a name, from a client certificate or a bearer token. The roles
// are nested for reads and submits (viewer < submitter < admin); `agent` is apart: the agent
// protocol and the CAS, and only on the leases granted to its own name.
#pragma once

#include <map>
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
  // An agent enrolled with an enrollment token that pins labels: the only labels it may claim
  // (empty: any).
  std::map<std::string, std::string> pinned_labels;
};

// OK when `who` may register with `labels`: every label is one of its pinned labels with the
// same value, except `os` and `arch` (which the agent reports about its machine) when those are
// not pinned. PERMISSION_DENIED naming the first label that is not allowed otherwise.
absl::Status CheckClaimedLabels(const Principal& who,
                                const std::map<std::string, std::string>& labels);

// A principal's name: 1 to 64 bytes of letters, digits and "._-" (it names agents, tokens and
// certificates' URIs: farm://ROLE/NAME). INVALID_ARGUMENT naming the problem otherwise.
absl::Status CheckPrincipalName(absl::string_view name);

}  // namespace farm::coordinator
