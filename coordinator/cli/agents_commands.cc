// The agents group: `agents` (AdminService.ListAgents). Operators' commands (drain, resume,
// forget) will join it with the admin work.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "coordinator/cli/command_table.h"
#include "coordinator/cli/format.h"
#include "coordinator/cli/session.h"

namespace farm::cli {
namespace {

int Agents(Session& session) {
  absl::StatusOr<farm::v1::ListAgentsResponse> response =
      session.CallOnce(&farm::v1::AdminService::Stub::ListAgents, session.client().admin(),
                       farm::v1::ListAgentsRequest());
  if (!response.ok()) return session.Fail(response.status());
  return session.Print(session.json() ? ToJson(*response)
                                      : FormatAgentsText(*response, session.Context()));
}

}  // namespace

std::string FormatIsolation(const farm::v1::StepIsolation& isolation) {
  if (isolation.kill().empty()) return "-";
  std::string text = isolation.kill();
  if (!isolation.run_as().empty()) absl::StrAppend(&text, " user=", isolation.run_as());
  if (!isolation.sandbox().empty()) absl::StrAppend(&text, " ", isolation.sandbox());
  return text;
}

void RegisterAgentCommands(std::vector<CommandDef>& table) {
  table.push_back({"agents",
                   Command::kAgents,
                   {},
                   false,
                   {},
                   "",
                   "agents with their state, slots, labels, jobs and step isolation",
                   "",
                   Agents});
}

}  // namespace farm::cli
