// Helpers of the packaging tests (tests/packaging): where deploy/package.sh put the .deb files,
// commands run to completion, and what a systemd unit says (its keys, and its ExecStart= with
// the variables of its EnvironmentFile= expanded as systemd expands them).
//
// Thread-compatible free functions.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace farm::packaging {

// The three packages deploy/package.sh builds.
inline constexpr const char* kPackages[] = {"farm-coordinator", "farm-agent", "farmctl"};

// $FARM_PACKAGES_DIR/NAME_*.deb (the CTest fixture packages_build made them). NOT_FOUND naming
// the directory when there is not exactly one.
absl::StatusOr<std::string> FindPackage(const std::string& name);

// What a finished command printed and how it exited (128 + N when killed by signal N).
struct Output {
  int exit_code = -1;
  std::string out;
  std::string err;
  std::string DebugString() const;  // "exit N; stdout: ...; stderr: ..."
};

// Runs `binary` (an absolute path) with `args` and `env` (added to this process's environment)
// to its end, its output kept in files under `scratch`. DEADLINE_EXCEEDED (it is killed) past
// `timeout`; a non-zero exit is not an error: look at exit_code.
absl::StatusOr<Output> RunCommand(const std::string& binary, std::vector<std::string> args,
                                  const std::string& scratch,
                                  absl::Duration timeout = absl::Seconds(60),
                                  std::vector<std::pair<std::string, std::string>> env = {});

// The absolute path of `name` in the usual bin directories, or "".
std::string FindTool(const std::string& name);

// A unit file's keys, by section and key, each value in order (a key may repeat). Comments and
// blank lines are skipped; no line continuations.
using UnitFile = std::map<std::string, std::multimap<std::string, std::string>>;
UnitFile ParseUnit(absl::string_view text);
// The last value of [section] key, or "" when it is not there.
std::string UnitValue(const UnitFile& unit, const std::string& section, const std::string& key);

// KEY=VALUE lines of an EnvironmentFile (comments skipped, one pair of quotes removed).
std::map<std::string, std::string> ParseEnvironmentFile(absl::string_view text);

// ExecStart= split into words as systemd does: "$VAR" alone in a word becomes the words of the
// variable's value (split at whitespace), "${VAR}" becomes one word; unknown variables are empty.
// INVALID_ARGUMENT for a prefix character (@, -, :, +, !) or quotes, which this does not handle.
absl::StatusOr<std::vector<std::string>> ExpandExecStart(
    absl::string_view exec_start, const std::map<std::string, std::string>& environment);

}  // namespace farm::packaging
