// The command line of the operators' queue commands (admin pause, resume, queues, reprioritize,
// retry, cancel): their operands and flags, checked as options.h checks every command's (a
// usage error is INVALID_ARGUMENT with one line that points at `farmctl help COMMAND`). Called
// by ParseArgs.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "coordinator/cli/command_table.h"
#include "coordinator/cli/options.h"

namespace farm::cli {

bool IsAdminQueueCommand(Command command);
// Whether an operand is a label selector (k=v,...) rather than a name: it has a '='.
bool IsLabelSelector(absl::string_view operand);
// "k=v,k2=v2" → labels: every entry k=v with a non-empty key, no key twice. `what` names the
// operand or flag in the message ("LABELS", "--labels").
absl::StatusOr<std::map<std::string, std::string>> ParseLabelSelector(absl::string_view text,
                                                                      absl::string_view what,
                                                                      absl::string_view cmd);
// pause LABELS (into options.labels; resume LABELS: admin_agents_options.cc), reprioritize JOB N
// (job_id, priority: a whole number), retry JOB|PIPELINE (job_id).
absl::Status ApplyAdminQueueOperands(const CommandDef& def, const std::vector<std::string>& rest,
                                     CliOptions& options);
// cancel needs --labels and --state=queued (the only state cancelled in bulk).
absl::Status CheckAdminQueueOptions(const CommandDef& def, const CliOptions& options);

}  // namespace farm::cli
