#include "coordinator/cli/admin_queue_options.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/cli/parse_util.h"

namespace farm::cli {
bool IsAdminQueueCommand(Command command) {
  return command == Command::kAdminPause || command == Command::kAdminQueues ||
         command == Command::kAdminReprioritize || command == Command::kAdminRetry ||
         command == Command::kAdminCancel;
}

bool IsLabelSelector(absl::string_view operand) {
  return operand.find('=') != absl::string_view::npos;
}

absl::StatusOr<std::map<std::string, std::string>> ParseLabelSelector(absl::string_view text,
                                                                      absl::string_view what,
                                                                      absl::string_view cmd) {
  FARM_ASSIGN_OR_RETURN(auto labels, ParseLabelList(text, what, cmd));
  if (labels.empty()) return UsageError(absl::StrCat(what, " needs at least one k=v"), cmd);
  return labels;
}

absl::Status ApplyAdminQueueOperands(const CommandDef& def, const std::vector<std::string>& rest,
                                     CliOptions& options) {
  const absl::string_view cmd = def.name;
  for (const std::string& operand : rest) {
    if (operand.empty()) return UsageError("an operand is empty", cmd);
  }
  switch (def.command) {
    case Command::kAdminPause: {
      FARM_ASSIGN_OR_RETURN(options.labels, ParseLabelSelector(rest[0], "LABELS", cmd));
      break;
    }
    case Command::kAdminReprioritize:
      options.job_id = rest[0];
      if (!absl::SimpleAtoi(rest[1], &options.priority)) {
        return UsageError(absl::StrCat("N must be a whole number, not \"", rest[1], "\""), cmd);
      }
      break;
    case Command::kAdminRetry:
      options.job_id = rest[0];
      break;
    default:
      break;
  }
  return absl::OkStatus();
}

absl::Status CheckAdminQueueOptions(const CommandDef& def, const CliOptions& options) {
  if (def.command != Command::kAdminCancel) return absl::OkStatus();
  if (options.labels.empty()) {
    return UsageError("admin cancel needs --labels=k=v,...: the jobs to cancel", def.name);
  }
  if (options.state != farm::v1::QUEUED) {
    return UsageError(
        "admin cancel needs --state=queued: only queued jobs can be cancelled in bulk", def.name);
  }
  return absl::OkStatus();
}

}  // namespace farm::cli
