// farmctl version (and farmctl --version): the version of this farmctl, the same string the
// daemons print for --version and an agent reports when it registers (common/version.h).
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/version.h"
#include "coordinator/cli/command_table.h"
#include "coordinator/cli/session.h"

namespace farm::cli {
namespace {

int Version(Session& session) {
  if (session.json()) {
    return session.Print(absl::StrCat("{\"version\": \"", common::FarmVersion(), "\"}\n"));
  }
  return session.Print(common::VersionLine("farmctl") + "\n");
}

}  // namespace

void RegisterVersionCommands(std::vector<CommandDef>& table) {
  table.push_back(
      {"version",
       Command::kVersion,
       {},
       false,
       {},
       "",
       "print farmctl's version (also: farmctl --version)",
       "Prints one line, e.g. \"farmctl 0.1.0 (git abc1234)\": the project version and\n"
       "the git revision it was built from, as farm-coordinator --version and\n"
       "farm-agent --version print theirs. Runs locally: no coordinator is needed.\n",
       Version,
       /*needs_coordinator=*/false});
}

}  // namespace farm::cli
