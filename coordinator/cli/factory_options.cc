#include "coordinator/cli/factory_options.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "coordinator/cli/parse_util.h"

namespace farm::cli {

// Sets one of factory's own flags (--pipeline, --p95-wait, --p95-lead, --first-pass-yield,
// --compare), checked.
absl::Status ApplyFactoryFlag(const std::string& name, const std::string& value,
                              absl::string_view cmd, CliOptions& options) {
  if (name == "pipeline") {
    if (value.empty()) return UsageError("--pipeline needs a pipeline's name", cmd);
    options.pipeline_name = value;
  } else if (name == "first-pass-yield") {
    double share = 0;
    if (!absl::SimpleAtod(value, &share) || !(share > 0 && share <= 1)) {
      return UsageError(
          absl::StrCat("--first-pass-yield takes a share above 0 and at most 1 (0.95), not \"",
                       value, "\""),
          cmd);
    }
    options.first_pass_yield = share;
  } else if (name == "compare") {
    const std::vector<std::string> ends = absl::StrSplit(value, ',');
    if (ends.size() != 2) {
      return UsageError(absl::StrCat("--compare takes FROM,TO (14d,7d: from 14 days ago to 7 days "
                                     "ago; or two RFC 3339 times), not \"",
                                     value, "\""),
                        cmd);
    }
    FARM_ASSIGN_OR_RETURN(TimeArg from, ParseTimeArg(name, ends[0], cmd));
    FARM_ASSIGN_OR_RETURN(TimeArg to, ParseTimeArg(name, ends[1], cmd));
    options.compare = std::make_pair(from, to);
  } else if (name == "p95-lead") {
    FARM_ASSIGN_OR_RETURN(options.p95_lead_ms, ParseDurationFlag(name, value, "10m or 1h", cmd));
  } else {
    FARM_ASSIGN_OR_RETURN(options.p95_wait_ms, ParseDurationFlag(name, value, "30s or 2m", cmd));
  }
  return absl::OkStatus();
}

absl::Status ApplyFactoryOperands(const CommandDef& def, const std::vector<std::string>& rest,
                                  CliOptions& options) {
  const absl::string_view cmd = def.name;
  if (def.command == Command::kFactory) {
    if (rest.empty()) return absl::OkStatus();
    if (rest.size() != 2 || rest[0] != "target" ||
        (rest[1] != "set" && rest[1] != "list" && rest[1] != "rm")) {
      return UsageError(absl::StrCat("unknown factory subcommand '", absl::StrJoin(rest, " "),
                                     "' (expected target set, target list or target rm)"),
                        cmd);
    }
    options.factory_action = absl::StrCat(rest[0], " ", rest[1]);
    return absl::OkStatus();
  }
  // provenance JOB | provenance verify FILE
  options.verify = rest[0] == "verify";
  if (options.verify && rest.size() != 2) {
    return UsageError("missing FILE: farmctl provenance verify FILE", cmd);
  }
  if (!options.verify && rest.size() != 1) {
    return UsageError(absl::StrCat("unexpected argument '", rest[1], "' for provenance"), cmd);
  }
  (options.verify ? options.file : options.job_id) = rest.back();
  return absl::OkStatus();
}

}  // namespace farm::cli
