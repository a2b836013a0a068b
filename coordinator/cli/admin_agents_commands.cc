// The operators' agent commands of the admin group (role admin), each an AdminService RPC:
// `admin drain NAME` / `admin resume NAME` (DrainAgent, ResumeAgent), `admin remove NAME`
// (RemoveAgent), `admin label NAME k=v... [--remove=k]` (LabelAgent). Each prints one line on
// what it left (or, with --output=json, the response); errors are one line on stderr.
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "coordinator/cli/admin_queue_commands.h"
#include "coordinator/cli/command_table.h"
#include "coordinator/cli/format.h"
#include "coordinator/cli/session.h"

namespace farm::cli {
namespace {

// "17,18" (the jobs it still runs), or "none".
std::string RunningJobs(const farm::v1::AgentInfo& agent) {
  if (agent.jobs().empty()) return "none";
  std::vector<std::string> jobs;
  for (const std::string& job : agent.jobs()) jobs.push_back(OneLine(job));
  return absl::StrJoin(jobs, ",");
}

int AdminDrain(Session& session) {
  farm::v1::DrainAgentRequest req;
  req.set_name(session.options().agent_name);
  absl::StatusOr<farm::v1::DrainAgentResponse> resp =
      session.CallOnce(&farm::v1::AdminService::Stub::DrainAgent, session.client().admin(), req);
  if (!resp.ok()) return session.Fail(resp.status());
  if (session.json()) return session.Print(ToJson(*resp));
  const farm::v1::AgentInfo& agent = resp->agent();
  return session.Print(absl::StrCat("agent ", OneLine(agent.name()),
                                    " drained: it takes no new work until resumed (jobs still "
                                    "running: ",
                                    RunningJobs(agent), ")\n"));
}

int AdminResume(Session& session) {
  if (!session.options().labels.empty()) return AdminResumeQueue(session);  // admin resume LABELS
  farm::v1::ResumeAgentRequest req;
  req.set_name(session.options().agent_name);
  absl::StatusOr<farm::v1::ResumeAgentResponse> resp =
      session.CallOnce(&farm::v1::AdminService::Stub::ResumeAgent, session.client().admin(), req);
  if (!resp.ok()) return session.Fail(resp.status());
  if (session.json()) return session.Print(ToJson(*resp));
  const farm::v1::AgentInfo& agent = resp->agent();
  return session.Print(absl::StrCat("agent ", OneLine(agent.name()), " resumed (", agent.state(),
                                    "): it takes work again\n"));
}

int AdminRemove(Session& session) {
  farm::v1::RemoveAgentRequest req;
  req.set_name(session.options().agent_name);
  absl::StatusOr<farm::v1::RemoveAgentResponse> resp =
      session.CallOnce(&farm::v1::AdminService::Stub::RemoveAgent, session.client().admin(), req);
  if (!resp.ok()) return session.Fail(resp.status());
  if (session.json()) return session.Print(ToJson(*resp));
  return session.Print(absl::StrCat("agent ", OneLine(resp->removed().name()), " removed\n"));
}

int AdminLabel(Session& session) {
  const CliOptions& o = session.options();
  farm::v1::LabelAgentRequest req;
  req.set_name(o.agent_name);
  req.mutable_set()->insert(o.label_set.begin(), o.label_set.end());
  for (const std::string& key : o.label_remove) req.add_remove(key);
  absl::StatusOr<farm::v1::LabelAgentResponse> resp =
      session.CallOnce(&farm::v1::AdminService::Stub::LabelAgent, session.client().admin(), req);
  if (!resp.ok()) return session.Fail(resp.status());
  if (session.json()) return session.Print(ToJson(*resp));
  return session.Print(absl::StrCat("agent ", OneLine(resp->agent().name()),
                                    " labels: ", OneLine(FormatAgentLabels(resp->agent())), "\n"));
}

}  // namespace

std::string FormatAgentLabels(const farm::v1::AgentInfo& agent) {
  const std::map<std::string, std::string> labels(agent.labels().begin(), agent.labels().end());
  std::string text = labels.empty() ? "-" : absl::StrJoin(labels, ",", absl::PairFormatter("="));
  if (agent.operator_labels().empty() && agent.removed_labels().empty()) return text;
  const std::map<std::string, std::string> set(agent.operator_labels().begin(),
                                               agent.operator_labels().end());
  std::vector<std::string> changes;
  for (const auto& [key, value] : set) changes.push_back(absl::StrCat(key, "=", value));
  for (const std::string& key : agent.removed_labels()) changes.push_back(absl::StrCat("-", key));
  return absl::StrCat(text, " (operator: ", absl::StrJoin(changes, ","), ")");
}

void RegisterAdminAgentCommands(std::vector<CommandDef>& table) {
  table.push_back({"admin drain",
                   Command::kAdminDrain,
                   {"NAME"},
                   false,
                   {},
                   "NAME",
                   "the agent finishes what it runs and takes no new work, until resumed (also "
                   "across restarts)",
                   "`farmctl agents` shows it as draining. The drain is kept by the coordinator, "
                   "so it holds\nwhen the coordinator or the agent restarts.\n",
                   AdminDrain});
  table.push_back({"admin resume",
                   Command::kAdminResume,
                   {"NAME|LABELS"},
                   false,
                   {},
                   "NAME|LABELS",
                   "a drained agent takes work again (queued work that matches it starts at once); "
                   "with LABELS (k=v,...): lifts that queue pause",
                   "",
                   AdminResume});
  table.push_back({"admin remove",
                   Command::kAdminRemove,
                   {"NAME"},
                   false,
                   {},
                   "NAME",
                   "forgets an offline agent that holds no lease (with what operators set on it)",
                   "Refused while the agent is online: stop it first. An agent that calls again "
                   "later registers\nanew; revoke its token to keep it out.\n",
                   AdminRemove});
  table.push_back({"admin label",
                   Command::kAdminLabel,
                   {"NAME"},
                   true,
                   {"remove"},
                   "NAME [KEY=VALUE...] [--remove=KEY[,KEY...]]",
                   "changes the labels jobs match for an agent, at once, without restarting it",
                   "A label set here overrides the agent's own label of that key (or adds one); "
                   "a removed key\nis taken out whoever set it. Both are kept by the "
                   "coordinator: they hold when the agent\nregisters again (whatever labels it "
                   "registers, an enrollment's pinned ones too) and when\nthe coordinator "
                   "restarts, until an operator changes them. Queued jobs the new labels match\n"
                   "start on the agent at once.\n",
                   AdminLabel});
}

}  // namespace farm::cli
