#include "coordinator/cli/command_table.h"

#include "common/logging.h"

namespace farm::cli {

const std::vector<CommandDef>& CommandTable() {
  static const auto* const kTable = [] {
    auto* table = new std::vector<CommandDef>();
    RegisterJobCommands(*table);
    RegisterAgentCommands(*table);
    RegisterCasCommands(*table);
    RegisterEventCommands(*table);
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

}  // namespace farm::cli
