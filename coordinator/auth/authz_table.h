// The authorization table: which roles may call each RPC of every service the coordinator
// serves, by the RPC's full name ("/farm.v1.JobService/Submit"), and each page of its HTTP port,
// by method and path ("GET /metrics"). Deny by default: an RPC that
// is not in the table is refused for every role, so a new RPC is unusable (and fails the test
// that walks every served method) until it is given an entry here. The one place that decides;
// the gRPC edge (service/authenticator.h) asks it on every call. Thread-safe (immutable).
#pragma once

#include <vector>

#include "absl/strings/string_view.h"
#include "coordinator/auth/principal.h"

namespace farm::coordinator {

struct AuthzEntry {
  absl::string_view method;  // "/package.Service/Method", or "GET /path" on the HTTP port
  // Callable without any credential (health checks by load balancers and probes).
  bool is_public = false;
  // allowed[static_cast<int>(role)]
  bool allowed[kNumRoles] = {};
};

// Every entry, in a fixed order (for the tests and the README's table).
const std::vector<AuthzEntry>& AuthzTable();

// The entry for `method`, or null when it has none (then: denied).
const AuthzEntry* FindAuthz(absl::string_view method);

// True when `role` may call `method`.
bool Allowed(absl::string_view method, Role role);

}  // namespace farm::coordinator
