// The agent's configuration, filled by main.cc from flags (libraries never read flags).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/isolation.h"
#include "common/channel.h"

namespace farm::agent {

// The default of --cache_max_bytes.
inline constexpr int64_t kDefaultCacheMaxBytes = int64_t{10} << 30;  // 10 GiB

struct AgentOptions {
  std::string coordinator;  // HOST:PORT (or any gRPC target)
  std::string name;         // empty: the host name
  std::map<std::string, std::string> labels;
  int slots = 1;
  std::string work_dir;
  bool keep_failed = false;            // keep the workspace of a failed attempt
  int64_t drain_timeout_ms = 600'000;  // after a drain request, cancel jobs still running
  int64_t lease_wait_ms = 20'000;      // how long the coordinator may park a Lease call
  // Bound of the local blob cache (<work_dir>/cache/blobs) of job inputs; 0 disables it.
  int64_t cache_max_bytes = kDefaultCacheMaxBytes;
  std::string version;
  // The HTTP port (agent_metrics.h): /metrics and /healthz, plain HTTP. Empty: none. Its bound
  // HOST:PORT goes to http_port_file when set.
  std::string http_listen;
  std::string http_port_file;
  // How the agent reaches the coordinator: TLS (verifying it with the CA) with the agent's
  // certificate or token, or plaintext with --insecure (loaded from the flags by main).
  common::ClientSecurity security;
  // An enrollment token (--enroll_token or --enroll_token_file): exchanged once for the agent's
  // own credential, kept in WORK_DIR/credential (agent/enrollment.h). Empty: none.
  std::string enroll_token;

  // Step isolation (--run_as, --step_rlimits, --sandbox, --cgroup_root; agent/isolation.h).
  IsolationOptions isolation;

  // INVALID_ARGUMENT naming the offending flag (--slots, --labels, ...).
  absl::Status Validate() const;
};

// "k=v,k2=v2" → labels. Empty text → no labels. INVALID_ARGUMENT on an entry without '=', an
// empty key, or a key given twice.
absl::StatusOr<std::map<std::string, std::string>> ParseLabels(absl::string_view text);

// The `os` and `arch` labels of this machine from uname(2): os is the lower-case system name
// ("linux"); arch is "amd64" for x86_64, "arm64" for aarch64, else the machine name as is.
std::map<std::string, std::string> HostLabels();

// Fills what the user may leave out: name (host name), os/arch labels when not given.
// Returns the completed options; does not validate.
AgentOptions WithDefaults(AgentOptions options);

}  // namespace farm::agent
