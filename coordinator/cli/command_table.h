// farmctl's dispatch table: every command, what the parser needs to know of it (operands,
// flags, usage text) and the function that runs it. Each command group registers its commands
// from its own file (jobs_commands.cc, cas_commands.cc, agents_commands.cc, events_commands.cc,
// certs_commands.cc; the pipeline variants of get, wait, cancel, list and submit live in
// pipeline_commands.cc and are reached through the jobs group, since a pipeline id goes wherever a
// job id does).
//
// The table is built once, on first use, and never changes; thread-safe to read.
#pragma once

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "coordinator/cli/options.h"

namespace farm::cli {

class Session;

// Runs a parsed command; returns the exit code.
using CommandRunner = int (*)(Session& session);

struct CommandDef {
  absl::string_view name;  // "cas put" for a subcommand of cas
  Command command;
  std::vector<absl::string_view> operands;  // required, e.g. {"JOB"}
  bool more_operands = false;               // optional operands follow (download's PATHs)
  std::vector<absl::string_view> flags;     // besides --coordinator, --output and --help
  absl::string_view synopsis;               // flags and operands, for the usage text
  absl::string_view summary;
  absl::string_view details;    // what the command's usage text says besides the above
  CommandRunner run = nullptr;  // null only for help
  // False for a command that works on this machine alone (certs init): it gets no transport
  // security checks and makes no call.
  bool needs_coordinator = true;

  // "admin drain NAME": the name, then the synopsis when there is one.
  std::string Invocation() const {
    return synopsis.empty() ? std::string(name) : absl::StrCat(name, " ", synopsis);
  }
};

// The groups' registrations, in the order the usage text lists them.
void RegisterJobCommands(std::vector<CommandDef>& table);
void RegisterAgentCommands(std::vector<CommandDef>& table);
void RegisterCasCommands(std::vector<CommandDef>& table);
void RegisterEventCommands(std::vector<CommandDef>& table);
void RegisterFactoryCommands(std::vector<CommandDef>& table);
void RegisterCertsCommands(std::vector<CommandDef>& table);
void RegisterTokenCommands(std::vector<CommandDef>& table);
void RegisterSecretCommands(std::vector<CommandDef>& table);
void RegisterAdminAgentCommands(std::vector<CommandDef>& table);
void RegisterAdminQueueCommands(std::vector<CommandDef>& table);
void RegisterVersionCommands(std::vector<CommandDef>& table);
void RegisterRetentionCommands(std::vector<CommandDef>& table);    // admin gc
void RegisterAdminBackupCommands(std::vector<CommandDef>& table);  // admin backup, admin status

// Every command, help last.
const std::vector<CommandDef>& CommandTable();
// The entry named `name` ("cas put"); null when there is none.
const CommandDef* FindCommandDef(absl::string_view name);
// The entry of `command`; every Command has one.
const CommandDef& CommandDefOf(Command command);

// Command groups: a command named with two words ("cas put", "certs init") belongs to the group
// of its first word, which is not a command of its own. The group's name as the table spells it
// when `word` names one ("cas"); empty otherwise.
absl::string_view CommandGroup(absl::string_view word);
// The group's subcommands for messages: "put, get or stat".
std::string GroupSubcommandList(absl::string_view group);

}  // namespace farm::cli
