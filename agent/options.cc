#include "agent/options.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <cctype>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/http_server.h"
#include "common/job_limits.h"
#include "common/status_macros.h"
#include "common/text.h"

namespace farm::agent {

namespace {
constexpr int kMaxSlots = 256;
constexpr int64_t kMaxLeaseWaitMs = 10 * 60'000;
}  // namespace

absl::Status AgentOptions::Validate() const {
  if (coordinator.empty()) {
    return absl::InvalidArgumentError("--coordinator is required (HOST:PORT)");
  }
  if (name.empty() || static_cast<int>(name.size()) > common::kMaxNameBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("--name must be 1..", common::kMaxNameBytes, " bytes"));
  }
  // What the coordinator would refuse at registration, refused at start (common/text.h).
  FARM_RETURN_IF_ERROR(common::ValidateText("--name", name, common::TextKind::kName));
  if (slots < 1 || slots > kMaxSlots) {
    return absl::InvalidArgumentError(
        absl::StrCat("--slots must be between 1 and ", kMaxSlots, ", got ", slots));
  }
  if (work_dir.empty()) return absl::InvalidArgumentError("--work_dir is required");
  if (static_cast<int>(labels.size()) > common::kMaxLabels) {
    return absl::InvalidArgumentError(
        absl::StrCat("--labels: at most ", common::kMaxLabels, " labels"));
  }
  for (const auto& [key, value] : labels) {
    if (key.empty() || static_cast<int>(key.size()) > common::kMaxLabelBytes ||
        static_cast<int>(value.size()) > common::kMaxLabelBytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--labels: keys must be 1..", common::kMaxLabelBytes, " bytes and values at most ",
          common::kMaxLabelBytes, " bytes (", common::Quote(key), ")"));
    }
    FARM_RETURN_IF_ERROR(common::ValidateText("--labels key", key, common::TextKind::kName));
    FARM_RETURN_IF_ERROR(common::ValidateText(absl::StrCat("--labels ", common::Quote(key)), value,
                                              common::TextKind::kName));
  }
  if (drain_timeout_ms < 0) return absl::InvalidArgumentError("--drain_timeout is negative");
  if (lease_wait_ms < 1 || lease_wait_ms > kMaxLeaseWaitMs) {
    return absl::InvalidArgumentError("--lease_wait must be between 1ms and 10m");
  }
  if (!enroll_token.empty() && security.insecure) {
    return absl::InvalidArgumentError(
        "--enroll_token: an agent with --insecure sends no credentials, so it has none to enroll "
        "for; enrollment needs TLS (--tls_ca)");
  }
  if (!enroll_token.empty() && (!security.token.empty() || !security.cert_pem.empty())) {
    return absl::InvalidArgumentError(
        "--enroll_token gets the agent its own credential: it cannot be combined with "
        "--token_file, FARM_TOKEN or --tls_cert");
  }
  if (!http_listen.empty()) {
    FARM_RETURN_IF_ERROR(common::SplitHostPort(http_listen, "--http_listen").status());
  }
  if (cache_max_bytes < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--cache_max_bytes must be >= 0 (0 disables the cache), got ", cache_max_bytes));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::map<std::string, std::string>> ParseLabels(absl::string_view text) {
  std::map<std::string, std::string> labels;
  for (absl::string_view entry : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    entry = absl::StripAsciiWhitespace(entry);
    const size_t eq = entry.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("--labels: \"", entry, "\" is not key=value"));
    }
    std::string key(absl::StripAsciiWhitespace(entry.substr(0, eq)));
    std::string value(absl::StripAsciiWhitespace(entry.substr(eq + 1)));
    if (key.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("--labels: empty key in \"", entry, "\""));
    }
    if (!labels.emplace(key, value).second) {
      return absl::InvalidArgumentError(absl::StrCat("--labels: \"", key, "\" given twice"));
    }
  }
  return labels;
}

std::map<std::string, std::string> HostLabels() {
  std::map<std::string, std::string> labels;
  struct utsname u;
  if (::uname(&u) != 0) return labels;
  labels["os"] = absl::AsciiStrToLower(u.sysname);
  std::string arch = u.machine;
  if (arch == "x86_64") arch = "amd64";
  if (arch == "aarch64") arch = "arm64";
  labels["arch"] = arch;
  return labels;
}

AgentOptions WithDefaults(AgentOptions options) {
  if (options.name.empty()) {
    char host[256] = {};
    if (::gethostname(host, sizeof(host) - 1) == 0) options.name = host;
  }
  for (auto& [key, value] : HostLabels()) options.labels.emplace(key, value);
  return options;
}

}  // namespace farm::agent
