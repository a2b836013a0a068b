// The command line of the factory commands (farmctl factory [target set|list|rm], provenance
// JOB | verify FILE): their own flags and their operands, checked as options.h checks every
// command's. Called by ParseArgs.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "coordinator/cli/command_table.h"
#include "coordinator/cli/options.h"

namespace farm::cli {

// --pipeline, --p95-wait, --p95-lead, --first-pass-yield, --compare.
absl::Status ApplyFactoryFlag(const std::string& name, const std::string& value,
                              absl::string_view cmd, CliOptions& options);
// factory's `target set|list|rm` (factory_action); provenance's JOB or `verify FILE`.
absl::Status ApplyFactoryOperands(const CommandDef& def, const std::vector<std::string>& rest,
                                  CliOptions& options);

}  // namespace farm::cli
