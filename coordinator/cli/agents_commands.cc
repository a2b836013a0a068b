// The agents group: `agents` (AdminService.ListAgents), and `agent enroll-token`
// (AdminService.CreateEnrollToken: role admin), whose token is shown once, on stdout alone (so
// that it can be redirected into a file). Operators' commands (drain, resume, forget) will join
// them with the admin work.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
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

int AgentEnrollToken(Session& session) {
  const CliOptions& o = session.options();
  farm::v1::CreateEnrollTokenRequest req;
  req.mutable_labels()->insert(o.labels.begin(), o.labels.end());
  req.set_ttl_ms(o.token_ttl_ms);
  absl::StatusOr<farm::v1::CreateEnrollTokenResponse> resp = session.CallOnce(
      &farm::v1::AdminService::Stub::CreateEnrollToken, session.client().admin(), req);
  if (!resp.ok()) return session.Fail(resp.status());
  if (session.json()) return session.Print(ToJson(*resp));
  const farm::v1::TokenInfo& info = resp->info();
  std::string labels;
  for (const auto& [key, value] : info.labels()) {
    absl::StrAppend(&labels, labels.empty() ? "" : ",", OneLine(key), "=", OneLine(value));
  }
  session.io().err << "enrollment token " << info.id() << " (single use, expires "
                   << absl::FormatTime("%Y-%m-%d %H:%M %Z", absl::FromUnixMillis(info.expires_ms()),
                                       session.Context().time_zone)
                   << ", labels " << (labels.empty() ? "any" : labels)
                   << "): it is shown only this once; give it to farm-agent "
                      "--enroll_token_file=FILE\n";
  session.io().err.flush();
  return session.Print(resp->token() + "\n");
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
  table.push_back({"agent enroll-token",
                   Command::kAgentEnrollToken,
                   {},
                   false,
                   {"labels", "ttl"},
                   "[--labels=k=v,...] [--ttl=15m]",
                   "a single-use enrollment token for a new agent: printed once on stdout (role "
                   "admin)",
                   "farm-agent --enroll_token_file=FILE exchanges it once for the agent's own "
                   "credential,\nkept in the agent's work dir; a second use is refused.\n"
                   "--labels: the only labels the agent may register with (os and arch stay free "
                   "unless given).\n--ttl: how long it may be used (default 15m, at most 7d).\n",
                   AgentEnrollToken});
}

}  // namespace farm::cli
