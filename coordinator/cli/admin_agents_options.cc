#include "coordinator/cli/admin_agents_options.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "coordinator/cli/admin_queue_options.h"
#include "coordinator/cli/parse_util.h"

namespace farm::cli {
bool IsAdminAgentCommand(Command command) {
  return command == Command::kAdminDrain || command == Command::kAdminResume ||
         command == Command::kAdminRemove || command == Command::kAdminLabel;
}

absl::Status ApplyAdminAgentOperands(const CommandDef& def, const std::vector<std::string>& rest,
                                     CliOptions& options) {
  const absl::string_view cmd = def.name;
  if (rest[0].empty()) return UsageError("NAME is empty: give the agent's name", cmd);
  if (def.command == Command::kAdminResume && IsLabelSelector(rest[0])) {
    // `admin resume LABELS`: a queue's resume (admin_queue_commands.h).
    absl::StatusOr<std::map<std::string, std::string>> labels =
        ParseLabelSelector(rest[0], "LABELS", cmd);
    if (!labels.ok()) return labels.status();
    options.labels = *std::move(labels);
    return absl::OkStatus();
  }
  options.agent_name = rest[0];
  for (size_t i = 1; i < rest.size(); ++i) {
    const std::string& label = rest[i];
    const size_t eq = label.find('=');
    if (eq == std::string::npos || eq == 0) {
      return UsageError(absl::StrCat("labels are key=value; \"", label,
                                     "\" is not (to take a label out: ", "--remove=KEY)"),
                        cmd);
    }
    if (!options.label_set.emplace(label.substr(0, eq), label.substr(eq + 1)).second) {
      return UsageError(absl::StrCat("the label \"", label.substr(0, eq), "\" is given twice"),
                        cmd);
    }
  }
  return absl::OkStatus();
}

absl::Status ApplyAdminAgentFlag(const std::string& name, const std::string& value,
                                 absl::string_view cmd, CliOptions& options) {
  if (value.empty()) {
    return UsageError(absl::StrCat("--", name, " needs label keys: --", name, "=KEY[,KEY...]"),
                      cmd);
  }
  std::set<std::string> seen;
  options.label_remove.clear();
  for (absl::string_view key : absl::StrSplit(value, ',')) {
    if (key.empty() || key.find('=') != absl::string_view::npos) {
      return UsageError(
          absl::StrCat("--", name, " takes label keys separated by commas, not \"", value, "\""),
          cmd);
    }
    if (!seen.emplace(key).second) {
      return UsageError(absl::StrCat("--", name, ": \"", key, "\" is given twice"), cmd);
    }
    options.label_remove.emplace_back(key);
  }
  return absl::OkStatus();
}

absl::Status CheckAdminAgentOptions(const CommandDef& def, const CliOptions& options) {
  if (def.command != Command::kAdminLabel) return absl::OkStatus();
  if (options.label_set.empty() && options.label_remove.empty()) {
    return UsageError("admin label needs labels to set (key=value) or --remove=KEY", def.name);
  }
  for (const std::string& key : options.label_remove) {
    if (options.label_set.count(key) > 0) {
      return UsageError(absl::StrCat("the label \"", key, "\" is both set and removed"), def.name);
    }
  }
  return absl::OkStatus();
}

}  // namespace farm::cli
