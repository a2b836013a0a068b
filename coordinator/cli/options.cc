#include "coordinator/cli/options.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/job_file.h"
#include "common/status_macros.h"

namespace farm::cli {
namespace {

struct CommandDef {
  absl::string_view name;
  Command command;
  std::vector<absl::string_view> operands;  // e.g. {"JOB"}
  std::vector<absl::string_view> flags;     // besides --coordinator, --output and --help
  absl::string_view synopsis;               // flags and operands, for the usage text
  absl::string_view summary;
};

const std::vector<CommandDef>& Commands() {
  static const auto* const kCommands = new std::vector<CommandDef>{
      {"submit",
       Command::kSubmit,
       {"FILE"},
       {"wait", "follow"},
       "FILE [--wait] [--follow]",
       "submit a YAML or JSON job file (\"-\": stdin); prints the job id"},
      {"get", Command::kGet, {"JOB"}, {}, "JOB", "a job's state, attempts and steps"},
      {"list",
       Command::kList,
       {},
       {"state", "limit"},
       "[--state=S] [--limit=N]",
       "recent jobs, newest first"},
      {"logs",
       Command::kLogs,
       {"JOB"},
       {"follow", "step"},
       "JOB [--follow] [--step=NAME]",
       "a job's output; --follow streams it until the job ends"},
      {"wait",
       Command::kWait,
       {"JOB"},
       {"timeout"},
       "JOB [--timeout=D]",
       "block until the job ends; the exit code is its outcome"},
      {"cancel", Command::kCancel, {"JOB"}, {}, "JOB", "cancel a queued or running job"},
      {"agents", Command::kAgents, {}, {}, "", "agents with their state, slots, labels and jobs"},
      {"help", Command::kHelp, {}, {}, "[COMMAND]", "this text, or one command's"},
  };
  return *kCommands;
}

const CommandDef* FindCommand(absl::string_view name) {
  for (const CommandDef& def : Commands()) {
    if (def.name == name) return &def;
  }
  return nullptr;
}

struct FlagDef {
  absl::string_view name;
  bool is_bool;
  absl::string_view help;
};

const std::vector<FlagDef>& Flags() {
  static const auto* const kFlags = new std::vector<FlagDef>{
      {"coordinator", false,
       "--coordinator=HOST:PORT  the coordinator (default: $FARM_COORDINATOR, else "
       "127.0.0.1:7070)"},
      {"output", false,
       "--output=text|json       json: one JSON document on stdout (farm.v1 messages)"},
      {"help", true, "--help                   this command's usage"},
      {"wait", true, "--wait                   wait until the job ends; exit with its outcome"},
      {"follow", true, "--follow                 stream the output until the job ends"},
      {"state", false,
       "--state=S                only jobs in state S: queued, running, succeeded, failed, "
       "cancelled"},
      {"limit", false, "--limit=N                at most N jobs (1-1000; default 50)"},
      {"step", false, "--step=NAME              only this step's output"},
      {"timeout", false,
       "--timeout=D              give up after D (e.g. 90s, 10m; a bare number is seconds) with "
       "exit code 3"},
  };
  return *kFlags;
}

const FlagDef* FindFlag(absl::string_view name) {
  for (const FlagDef& def : Flags()) {
    if (def.name == name) return &def;
  }
  return nullptr;
}

bool IsCommonFlag(absl::string_view name) {
  return name == "coordinator" || name == "output" || name == "help";
}

absl::Status UsageError(absl::string_view message, absl::string_view command = "") {
  return absl::InvalidArgumentError(
      absl::StrCat(message, " (run 'farmctl help", command.empty() ? "" : " ", command, "')"));
}

// The command named so far, for pointing at its help; empty when there is none yet.
absl::string_view KnownCommand(const std::vector<std::string>& operands) {
  if (operands.empty() || FindCommand(operands[0]) == nullptr) return "";
  return FindCommand(operands[0])->name;
}

absl::StatusOr<bool> ParseBool(absl::string_view flag, absl::string_view value) {
  const std::string v = absl::AsciiStrToLower(value);
  if (v == "true" || v == "1" || v == "yes") return true;
  if (v == "false" || v == "0" || v == "no") return false;
  return UsageError(absl::StrCat("--", flag, " takes true or false, not \"", value, "\""));
}

std::string ExitCodeText() {
  return "Exit codes:\n"
         "  0   success; for wait, submit --wait/--follow and logs --follow: the job SUCCEEDED\n"
         "  1   the job FAILED\n"
         "  2   the job was CANCELLED\n"
         "  3   wait --timeout ran out before the job ended\n"
         "  4   an error: coordinator unreachable, job not found, bad job file, request refused\n"
         "  64  a usage error\n";
}

}  // namespace

std::string UsageText() {
  std::string text =
      "farmctl: the build farm's command-line client.\n\n"
      "Usage: farmctl [--coordinator=HOST:PORT] [--output=text|json] COMMAND [ARGS]\n\n"
      "Commands:\n";
  for (const CommandDef& def : Commands()) {
    std::string left = absl::StrCat(def.name, " ", def.synopsis);
    left.resize(std::max<size_t>(left.size(), 36), ' ');
    absl::StrAppend(&text, "  ", left, "  ", def.summary, "\n");
  }
  absl::StrAppend(&text, "\nFlags of every command:\n");
  for (absl::string_view name : {"coordinator", "output"}) {
    absl::StrAppend(&text, "  ", FindFlag(name)->help, "\n");
  }
  absl::StrAppend(&text,
                  "\nText output goes to stdout, errors and notices to stderr, one line each.\n"
                  "With --output=json, `submit --follow` writes the job's output to stderr so "
                  "that\nstdout holds the JSON document alone; `logs --follow --output=json` "
                  "writes one\nWatchLogsResponse per line.\n\n",
                  ExitCodeText());
  return text;
}

std::string CommandUsageText(absl::string_view command) {
  const CommandDef* def = FindCommand(command);
  if (def == nullptr || def->command == Command::kHelp) return UsageText();
  std::string text = absl::StrCat("Usage: farmctl ", def->name, " ", def->synopsis, "\n\n",
                                  def->summary, "\n\n", "Flags:\n");
  for (absl::string_view name : def->flags) {
    absl::StrAppend(&text, "  ", FindFlag(name)->help, "\n");
  }
  for (absl::string_view name : {"coordinator", "output"}) {
    absl::StrAppend(&text, "  ", FindFlag(name)->help, "\n");
  }
  absl::StrAppend(&text, "\n", ExitCodeText());
  return text;
}

absl::StatusOr<CliOptions> ParseArgs(const std::vector<std::string>& args,
                                     absl::string_view env_coordinator) {
  std::vector<std::string> operands;
  std::vector<std::pair<const FlagDef*, std::string>> flags;  // in order; the last one wins
  bool flags_ended = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (flags_ended || arg.size() < 2 || arg[0] != '-') {
      operands.push_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_ended = true;
      continue;
    }
    absl::string_view body = absl::string_view(arg).substr(arg[1] == '-' ? 2 : 1);
    const size_t eq = body.find('=');
    const absl::string_view name = body.substr(0, eq);
    const FlagDef* def = FindFlag(name == "h" ? "help" : name);
    if (def == nullptr) {
      return UsageError(absl::StrCat("unknown flag --", name), KnownCommand(operands));
    }
    std::string value;
    if (eq != absl::string_view::npos) {
      value = std::string(body.substr(eq + 1));
    } else if (def->is_bool) {
      value = "true";
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return UsageError(absl::StrCat("--", name, " needs a value"), KnownCommand(operands));
    }
    flags.emplace_back(def, std::move(value));
  }

  CliOptions options;
  if (!env_coordinator.empty()) options.coordinator = std::string(env_coordinator);

  bool help_flag = false;
  for (const auto& [def, value] : flags) {
    if (def->name == "help") {
      FARM_ASSIGN_OR_RETURN(help_flag, ParseBool("help", value));
    }
  }
  if (operands.empty()) {
    if (help_flag) return options;  // kHelp, the overview
    return UsageError("no command given");
  }
  const CommandDef* command = FindCommand(operands[0]);
  if (command == nullptr) return UsageError(absl::StrCat("unknown command '", operands[0], "'"));
  const std::vector<std::string> rest(operands.begin() + 1, operands.end());
  if (command->command == Command::kHelp || help_flag) {
    options.command = Command::kHelp;
    if (command->command == Command::kHelp) {
      if (rest.size() > 1) return UsageError("help takes at most one command name");
      if (!rest.empty()) {
        if (FindCommand(rest[0]) == nullptr) {
          return UsageError(absl::StrCat("unknown command '", rest[0], "'"));
        }
        options.help_topic = rest[0];
      }
    } else {
      options.help_topic = std::string(command->name);
    }
    return options;
  }
  options.command = command->command;
  const absl::string_view cmd = command->name;

  if (rest.size() < command->operands.size()) {
    return UsageError(
        absl::StrCat("missing ", command->operands[0], ": farmctl ", cmd, " ", command->synopsis),
        cmd);
  }
  if (rest.size() > command->operands.size()) {
    return UsageError(
        absl::StrCat("unexpected argument '", rest[command->operands.size()], "' for ", cmd), cmd);
  }
  if (!command->operands.empty()) {
    if (rest[0].empty()) return UsageError(absl::StrCat(command->operands[0], " is empty"), cmd);
    if (command->command == Command::kSubmit) {
      options.file = rest[0];
    } else {
      options.job_id = rest[0];
    }
  }

  for (const auto& [def, value] : flags) {
    const absl::string_view name = def->name;
    if (!IsCommonFlag(name) &&
        std::find(command->flags.begin(), command->flags.end(), name) == command->flags.end()) {
      return UsageError(absl::StrCat("'", cmd, "' does not take --", name), cmd);
    }
    if (name == "coordinator") {
      if (value.empty()) return UsageError("--coordinator needs HOST:PORT", cmd);
      options.coordinator = value;
    } else if (name == "output") {
      if (value == "text") {
        options.output = OutputFormat::kText;
      } else if (value == "json") {
        options.output = OutputFormat::kJson;
      } else {
        return UsageError(absl::StrCat("--output takes text or json, not \"", value, "\""), cmd);
      }
    } else if (name == "wait") {
      FARM_ASSIGN_OR_RETURN(options.wait, ParseBool(name, value));
    } else if (name == "follow") {
      FARM_ASSIGN_OR_RETURN(options.follow, ParseBool(name, value));
    } else if (name == "state") {
      farm::v1::JobState state;
      if (!farm::v1::JobState_Parse(absl::AsciiStrToUpper(value), &state) ||
          state == farm::v1::JOB_STATE_UNSPECIFIED) {
        return UsageError(absl::StrCat("--state takes queued, running, succeeded, failed or "
                                       "cancelled, not \"",
                                       value, "\""),
                          cmd);
      }
      options.state = state;
    } else if (name == "limit") {
      if (!absl::SimpleAtoi(value, &options.limit) || options.limit < 1 || options.limit > 1000) {
        return UsageError(
            absl::StrCat("--limit takes a number from 1 to 1000, not \"", value, "\""), cmd);
      }
    } else if (name == "step") {
      if (value.empty()) return UsageError("--step needs a step name", cmd);
      options.step = value;
    } else if (name == "timeout") {
      absl::StatusOr<int64_t> ms = common::ParseJobDurationMs(value);
      if (!ms.ok()) return UsageError(absl::StrCat("--timeout: ", ms.status().message()), cmd);
      options.timeout_ms = *ms;
    }
  }
  return options;
}

}  // namespace farm::cli
