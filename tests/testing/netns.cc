#include "tests/testing/netns.h"

#include <unistd.h>

#include <iostream>
#include <memory>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"

namespace farm::testing {

std::string FindIp() {
  for (const char* path : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
    if (access(path, X_OK) == 0) return path;
  }
  return "";
}

absl::StatusOr<std::string> IpOutput(const std::string& ip, const std::string& scratch,
                                     std::vector<std::string> args) {
  SubprocessOptions options;
  options.binary = ip;
  options.args = std::move(args);
  options.stdout_path = scratch + "/ip.stdout";
  options.stderr_path = scratch + "/ip.stderr";
  options.new_process_group = false;
  FARM_ASSIGN_OR_RETURN(std::unique_ptr<Subprocess> process, Subprocess::Start(options));
  FARM_ASSIGN_OR_RETURN(int code, process->Wait(absl::Seconds(10)));
  if (code == 0) return ReadFile(options.stdout_path).value_or("");
  const std::string err = ReadFile(options.stderr_path).value_or("");
  const std::string message =
      absl::StrCat("ip ", absl::StrJoin(options.args, " "), ": exit ", code, ": ", err);
  if (absl::StrContains(err, "Operation not permitted") ||
      absl::StrContains(err, "Permission denied")) {
    return absl::PermissionDeniedError(message);
  }
  return absl::InternalError(message);
}

absl::Status Ip(const std::string& ip, const std::string& scratch, std::vector<std::string> args) {
  return IpOutput(ip, scratch, std::move(args)).status();
}

void RemoveStaleNamespaces(const std::string& ip, const std::string& scratch,
                           absl::string_view prefix) {
  absl::StatusOr<std::string> listed = IpOutput(ip, scratch, {"netns", "list"});
  if (!listed.ok()) return;
  for (absl::string_view line : absl::StrSplit(*listed, '\n', absl::SkipEmpty())) {
    absl::string_view name = line.substr(0, line.find(' '));
    absl::string_view pid_text = name;
    int pid = 0;
    if (!absl::ConsumePrefix(&pid_text, prefix) || !absl::SimpleAtoi(pid_text, &pid)) {
      continue;
    }
    if (pid == getpid() || FileExists(absl::StrCat("/proc/", pid))) continue;
    std::cout << "removing stale network namespace " << name << std::endl;
    (void)Ip(ip, scratch, {"netns", "del", std::string(name)});
  }
}

}  // namespace farm::testing
