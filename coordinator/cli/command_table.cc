#include "coordinator/cli/command_table.h"

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/logging.h"

namespace farm::cli {

const std::vector<CommandDef>& CommandTable() {
  static const auto* const kTable = [] {
    auto* table = new std::vector<CommandDef>();
    RegisterJobCommands(*table);
    RegisterAgentCommands(*table);
    RegisterCasCommands(*table);
    RegisterEventCommands(*table);
    RegisterFactoryCommands(*table);
    RegisterCertsCommands(*table);
    RegisterTokenCommands(*table);
    RegisterSecretCommands(*table);
    RegisterAdminAgentCommands(*table);
    RegisterAdminQueueCommands(*table);
    RegisterVersionCommands(*table);
    RegisterRetentionCommands(*table);
    RegisterAdminBackupCommands(*table);
    table->push_back({"help",
                      Command::kHelp,
                      {},
                      false,
                      {},
                      "[COMMAND]",
                      "this text, or one command's",
                      "",
                      nullptr});
    return table;
  }();
  return *kTable;
}

const CommandDef* FindCommandDef(absl::string_view name) {
  for (const CommandDef& def : CommandTable()) {
    if (def.name == name) return &def;
  }
  return nullptr;
}

const CommandDef& CommandDefOf(Command command) {
  for (const CommandDef& def : CommandTable()) {
    if (def.command == command) return def;
  }
  FARM_CHECK(false) << "no command table entry for command " << static_cast<int>(command);
  return CommandTable().back();
}

absl::string_view CommandGroup(absl::string_view word) {
  if (word.empty()) return "";
  for (const CommandDef& def : CommandTable()) {
    const absl::string_view name = def.name;
    if (name.size() > word.size() && absl::StartsWith(name, word) && name[word.size()] == ' ') {
      return name.substr(0, word.size());
    }
  }
  return "";
}

std::string GroupSubcommandList(absl::string_view group) {
  std::vector<absl::string_view> words;
  for (const CommandDef& def : CommandTable()) {
    const absl::string_view name = def.name;
    if (name.size() > group.size() && absl::StartsWith(name, group) && name[group.size()] == ' ') {
      words.push_back(name.substr(group.size() + 1));
    }
  }
  if (words.size() < 2) return absl::StrJoin(words, "");
  const absl::string_view last = words.back();
  words.pop_back();
  return absl::StrCat(absl::StrJoin(words, ", "), " or ", last);
}

}  // namespace farm::cli
