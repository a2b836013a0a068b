// The command line of the operators' agent commands (admin drain, resume, remove, label NAME):
// their operands and --remove, checked as options.h checks every command's (a usage error is
// INVALID_ARGUMENT with one line that points at `farmctl help COMMAND`). Called by ParseArgs.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "coordinator/cli/command_table.h"
#include "coordinator/cli/options.h"

namespace farm::cli {

bool IsAdminAgentCommand(Command command);
// NAME (not empty) and, for `admin label`, its k=v operands: each with a non-empty key before
// the first '=', no key twice.
absl::Status ApplyAdminAgentOperands(const CommandDef& def, const std::vector<std::string>& rest,
                                     CliOptions& options);
// --remove=KEY[,KEY...]: non-empty keys without '=', none twice.
absl::Status ApplyAdminAgentFlag(const std::string& name, const std::string& value,
                                 absl::string_view cmd, CliOptions& options);
// `admin label` needs something to change, and no key both set and removed.
absl::Status CheckAdminAgentOptions(const CommandDef& def, const CliOptions& options);

}  // namespace farm::cli
