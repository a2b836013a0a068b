// Network namespaces for tests that need more than one machine's network (partitions, a farm
// spread over several "machines"): iproute2's `ip` run as a subprocess, and the clean-up of
// namespaces that killed tests left behind. Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN); the
// errors say when it is not permitted, so that a test can skip with the reason.
//
// Thread-compatible: free functions; they start and wait for subprocesses (subprocess.h).
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace farm::testing {

// The path of iproute2's `ip`, or "" when it is not installed.
std::string FindIp();

// Runs `ip ARGS...` (its output files go in `scratch`, a directory) and returns its stdout.
// PERMISSION_DENIED when the kernel refused ("Operation not permitted": not root), INTERNAL
// with the command and its stderr for any other failure.
absl::StatusOr<std::string> IpOutput(const std::string& ip, const std::string& scratch,
                                     std::vector<std::string> args);
absl::Status Ip(const std::string& ip, const std::string& scratch, std::vector<std::string> args);

// Deletes the namespaces named PREFIX<pid> whose process is gone (left by a test that was
// killed); their veth ends go with them. Errors are ignored (best effort).
void RemoveStaleNamespaces(const std::string& ip, const std::string& scratch,
                           absl::string_view prefix);

}  // namespace farm::testing
