#include "coordinator/cli/options.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/digest.h"
#include "common/duration.h"
#include "common/job_file.h"
#include "common/status_macros.h"

namespace farm::cli {
namespace {

struct CommandDef {
  absl::string_view name;  // "cas put" for a subcommand of cas
  Command command;
  std::vector<absl::string_view> operands;  // required, e.g. {"JOB"}
  bool more_operands;                       // optional operands follow (download's PATHs)
  std::vector<absl::string_view> flags;     // besides --coordinator, --output and --help
  absl::string_view synopsis;               // flags and operands, for the usage text
  absl::string_view summary;
};

constexpr absl::string_view kCas = "cas";

const std::vector<CommandDef>& Commands() {
  static const auto* const kCommands = new std::vector<CommandDef>{
      {"submit",
       Command::kSubmit,
       {"FILE"},
       false,
       {"wait", "follow"},
       "FILE [--wait] [--follow]",
       "submit a job or pipeline file (YAML or JSON; \"-\": stdin); prints the job id, or the "
       "pipeline id (pN)"},
      {"get",
       Command::kGet,
       {"JOB|PIPELINE"},
       false,
       {},
       "JOB|PIPELINE",
       "a job's state, attempts and steps; a pipeline's state and jobs"},
      {"list",
       Command::kList,
       {},
       false,
       {"state", "limit", "pipelines"},
       "[--state=S] [--limit=N] [--pipelines]",
       "recent jobs (or pipelines), newest first"},
      {"logs",
       Command::kLogs,
       {"JOB"},
       false,
       {"follow", "step"},
       "JOB [--follow] [--step=NAME]",
       "a job's output; --follow streams it until the job ends"},
      {"wait",
       Command::kWait,
       {"JOB|PIPELINE"},
       false,
       {"timeout"},
       "JOB|PIPELINE [--timeout=D]",
       "block until the job or pipeline ends; the exit code is its outcome"},
      {"cancel",
       Command::kCancel,
       {"JOB|PIPELINE"},
       false,
       {},
       "JOB|PIPELINE",
       "cancel a queued or running job, or every job of a pipeline that has not ended"},
      {"agents",
       Command::kAgents,
       {},
       false,
       {},
       "",
       "agents with their state, slots, labels and jobs"},
      {"artifacts",
       Command::kArtifacts,
       {"JOB"},
       false,
       {},
       "JOB",
       "a job's artifacts: path, size, executable bit, digest"},
      {"download",
       Command::kDownload,
       {"JOB"},
       true,
       {"o"},
       "JOB [PATH...] [-o DIR]",
       "fetch a job's artifacts (all, or the PATHs) into DIR, verifying digests"},
      {"cas put",
       Command::kCasPut,
       {"FILE"},
       false,
       {},
       "FILE",
       "store a file in the CAS; prints its HASH/SIZE"},
      {"cas get",
       Command::kCasGet,
       {"HASH/SIZE"},
       false,
       {"o"},
       "HASH/SIZE -o FILE",
       "fetch a blob from the CAS into FILE, verified"},
      {"cas stat",
       Command::kCasStat,
       {"HASH/SIZE"},
       false,
       {},
       "HASH/SIZE",
       "whether the CAS has a blob: exit 0 present, 1 missing"},
      {"help", Command::kHelp, {}, false, {}, "[COMMAND]", "this text, or one command's"},
  };
  return *kCommands;
}

const CommandDef* FindCommand(absl::string_view name) {
  for (const CommandDef& def : Commands()) {
    if (def.name == name) return &def;
  }
  return nullptr;
}

// The command the operands start with, and how many operands name it (2 for "cas put").
// nullptr for an unknown name, and for "cas" without a known subcommand.
const CommandDef* FindCommand(const std::vector<std::string>& operands, size_t* words) {
  if (operands.empty()) return nullptr;
  if (operands[0] == kCas) {
    if (operands.size() < 2) return nullptr;
    *words = 2;
    return FindCommand(absl::StrCat(kCas, " ", operands[1]));
  }
  *words = 1;
  return FindCommand(operands[0]);
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
      {"wait", true,
       "--wait                   wait until the job or pipeline ends; exit with its outcome"},
      {"follow", true,
       "--follow                 stream the job's output, or show a pipeline's progress, until "
       "it ends"},
      {"state", false,
       "--state=S                only jobs in state S: queued, waiting, running, succeeded, "
       "failed, cancelled, skipped"},
      {"limit", false, "--limit=N                at most N jobs or pipelines (1-1000; default 50)"},
      {"pipelines", true, "--pipelines              list pipelines instead of jobs"},
      {"step", false, "--step=NAME              only this step's output"},
      {"timeout", false,
       "--timeout=D              give up after D (e.g. 90s, 10m; a bare number is seconds) with "
       "exit code 3"},
      {"o", false,
       "-o DIR|FILE              download: the directory to write into (default .); cas get: "
       "the file"},
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

// How a flag is written: "-o", "--output".
std::string Spelling(absl::string_view flag) {
  return absl::StrCat(flag.size() == 1 ? "-" : "--", flag);
}

absl::Status UsageError(absl::string_view message, absl::string_view command = "") {
  return absl::InvalidArgumentError(
      absl::StrCat(message, " (run 'farmctl help", command.empty() ? "" : " ", command, "')"));
}

// The command named so far, for pointing at its help; empty when there is none yet.
absl::string_view KnownCommand(const std::vector<std::string>& operands) {
  size_t words = 0;
  const CommandDef* def = FindCommand(operands, &words);
  if (def != nullptr) return def->name;
  if (!operands.empty() && operands[0] == kCas) return kCas;
  return "";
}

absl::StatusOr<bool> ParseBool(absl::string_view flag, absl::string_view value) {
  const std::string v = absl::AsciiStrToLower(value);
  if (v == "true" || v == "1" || v == "yes") return true;
  if (v == "false" || v == "0" || v == "no") return false;
  return UsageError(absl::StrCat(Spelling(flag), " takes true or false, not \"", value, "\""));
}

std::string ExitCodeText() {
  return absl::StrCat(
      "Exit codes:\n"
      "  0   success; for wait, submit --wait/--follow and logs --follow: the job (or pipeline)\n"
      "      SUCCEEDED\n"
      "  1   the job (or pipeline) FAILED, or the job was SKIPPED; for cas stat: the blob is\n"
      "      missing\n"
      "  2   the job (or pipeline) was CANCELLED\n"
      "  3   wait --timeout ran out before the job (or pipeline) ended\n"
      "  4   an error: coordinator unreachable, job or pipeline not found, bad job or pipeline\n"
      "      file, request refused\n"
      "      (submit first retries an unreachable coordinator for ",
      common::FormatDurationMs(kSubmitRetryMs),
      ")\n"
      "  64  a usage error\n");
}

// What a command's usage text says besides its synopsis, summary and flags.
absl::string_view CommandDetails(Command command) {
  switch (command) {
    case Command::kSubmit:
      return "A pipeline file (one with a top-level `jobs:`) is checked completely, cycles and\n"
             "unknown needs included, before anything is sent; submit prints the pipeline's id,\n"
             "pN (with --output=json, the farm.v1.Pipeline). Any other file is a job file; submit\n"
             "prints the job's id.\n\n"
             "For a pipeline, --follow shows each job's state until the pipeline ends: redrawn in\n"
             "place on a terminal (a line per job and a done/total bar), else one line per change\n"
             "and a summary line. --wait waits silently and prints the summary on stderr. Either\n"
             "way the exit code is the pipeline's outcome.\n";
    case Command::kGet:
      return "For a pipeline (pN): its name, state and times, and a table of its jobs with their\n"
             "ids (for logs, artifacts and download), states, attempts, durations and needs.\n";
    case Command::kList:
      return "--pipelines lists pipelines: id, name, state, jobs done/total and age.\n";
    case Command::kWait:
      return "For a pipeline (pN) the exit code is the pipeline's outcome: SUCCEEDED once every\n"
             "job has, else FAILED or CANCELLED once every job has ended.\n";
    case Command::kCancel:
      return "For a pipeline (pN), every job of it that has not ended is cancelled.\n";
    case Command::kLogs:
    case Command::kArtifacts:
    case Command::kDownload:
      return "JOB is a job's id; `farmctl get pN` shows the ids of a pipeline's jobs.\n";
    default:
      return "";
  }
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
  absl::StrAppend(&text,
                  "\nPipelines: a file with a top-level `jobs:` is a pipeline (jobs that need "
                  "each other).\n`submit` prints its id, pN, which get, wait and cancel take "
                  "wherever they take a JOB;\n`farmctl get pN` shows the ids of its jobs, for "
                  "logs, artifacts and download.\n");
  absl::StrAppend(&text,
                  "\nArtifacts and the CAS: HASH/SIZE is a blob's SHA-256 (64 lowercase hex "
                  "digits) and size,\nas `farmctl artifacts` shows it.\n");
  absl::StrAppend(&text, "\nFlags of every command:\n");
  for (absl::string_view name : {"coordinator", "output"}) {
    absl::StrAppend(&text, "  ", FindFlag(name)->help, "\n");
  }
  absl::StrAppend(&text,
                  "\nText output goes to stdout, errors and notices to stderr, one line each.\n"
                  "With --output=json, `submit --follow` writes the job's output (or the "
                  "pipeline's\nprogress) to stderr so that stdout holds the JSON document alone; "
                  "`logs --follow\n--output=json` writes one WatchLogsResponse per line.\n\n",
                  ExitCodeText());
  return text;
}

std::string CommandUsageText(absl::string_view command) {
  if (command == kCas) {
    std::string text = "Usage:\n";
    for (const CommandDef& def : Commands()) {
      if (absl::StartsWith(def.name, "cas ")) {
        absl::StrAppend(&text, "  farmctl ", def.name, " ", def.synopsis, "\n      ", def.summary,
                        "\n");
      }
    }
    absl::StrAppend(&text,
                    "\nThe content-addressable store the agents upload artifacts to (REAPI v2, "
                    "instance \"\").\nHASH/SIZE is a blob's SHA-256 (64 lowercase hex digits) "
                    "and its size in bytes.\n\nFlags:\n  ",
                    FindFlag("o")->help, "\n");
    for (absl::string_view name : {"coordinator", "output"}) {
      absl::StrAppend(&text, "  ", FindFlag(name)->help, "\n");
    }
    absl::StrAppend(&text, "\n", ExitCodeText());
    return text;
  }
  const CommandDef* def = FindCommand(command);
  if (def == nullptr || def->command == Command::kHelp) return UsageText();
  std::string text =
      absl::StrCat("Usage: farmctl ", def->name, " ", def->synopsis, "\n\n", def->summary, "\n\n");
  if (absl::string_view details = CommandDetails(def->command); !details.empty()) {
    absl::StrAppend(&text, details, "\n");
  }
  absl::StrAppend(&text, "Flags:\n");
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
      return UsageError(absl::StrCat("unknown flag ", arg[1] == '-' ? "--" : "-", name),
                        KnownCommand(operands));
    }
    std::string value;
    if (eq != absl::string_view::npos) {
      value = std::string(body.substr(eq + 1));
    } else if (def->is_bool) {
      value = "true";
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return UsageError(absl::StrCat(Spelling(def->name), " needs a value"),
                        KnownCommand(operands));
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
  size_t words = 1;
  const CommandDef* command = FindCommand(operands, &words);
  if (command == nullptr && operands[0] == kCas) {
    if (help_flag || operands.size() < 2) {
      if (help_flag) {
        options.help_topic = std::string(kCas);
        return options;
      }
      return UsageError("'cas' needs a subcommand: put, get or stat", kCas);
    }
    return UsageError(
        absl::StrCat("unknown subcommand 'cas ", operands[1], "' (expected put, get or stat)"),
        kCas);
  }
  if (command == nullptr) return UsageError(absl::StrCat("unknown command '", operands[0], "'"));
  const std::vector<std::string> rest(operands.begin() + static_cast<std::ptrdiff_t>(words),
                                      operands.end());
  if (command->command == Command::kHelp || help_flag) {
    options.command = Command::kHelp;
    if (command->command == Command::kHelp) {
      if (rest.empty()) return options;
      size_t topic_words = 0;
      const CommandDef* topic = FindCommand(rest, &topic_words);
      if (rest.size() == 1 && rest[0] == kCas) {
        options.help_topic = std::string(kCas);
        return options;
      }
      if (topic == nullptr) {
        return UsageError(absl::StrCat("unknown command '", absl::StrJoin(rest, " "), "'"));
      }
      if (rest.size() > topic_words) return UsageError("help takes at most one command name");
      options.help_topic = std::string(topic->name);
    } else {
      options.help_topic = std::string(command->name);
    }
    return options;
  }
  options.command = command->command;
  const absl::string_view cmd = command->name;

  if (rest.size() < command->operands.size()) {
    return UsageError(absl::StrCat("missing ", command->operands[rest.size()], ": farmctl ", cmd,
                                   " ", command->synopsis),
                      cmd);
  }
  if (rest.size() > command->operands.size() && !command->more_operands) {
    return UsageError(
        absl::StrCat("unexpected argument '", rest[command->operands.size()], "' for ", cmd), cmd);
  }
  for (size_t i = 0; i < rest.size(); ++i) {
    if (rest[i].empty()) {
      return UsageError(
          absl::StrCat(i < command->operands.size() ? command->operands[i] : "PATH", " is empty"),
          cmd);
    }
  }
  switch (command->command) {
    case Command::kSubmit:
    case Command::kCasPut:
      options.file = rest[0];
      break;
    case Command::kCasGet:
    case Command::kCasStat: {
      absl::StatusOr<common::Digest> digest = common::ParseDigest(rest[0]);
      if (!digest.ok()) {
        return UsageError(absl::StrCat("HASH/SIZE: ", digest.status().message()), cmd);
      }
      options.digest = digest->ToString();
      break;
    }
    case Command::kDownload:
      options.paths.assign(rest.begin() + 1, rest.end());
      [[fallthrough]];
    case Command::kLogs:
    case Command::kArtifacts:
      if (IsPipelineId(rest[0])) {
        // Not a usage error of the ordinary kind: the way out is another command.
        return absl::InvalidArgumentError(absl::StrCat(rest[0], " is a pipeline; use `farmctl get ",
                                                       rest[0], "` to see its jobs' ids"));
      }
      options.job_id = rest[0];
      break;
    default:
      if (!rest.empty()) options.job_id = rest[0];
      break;
  }

  for (const auto& [def, value] : flags) {
    const absl::string_view name = def->name;
    if (!IsCommonFlag(name) &&
        std::find(command->flags.begin(), command->flags.end(), name) == command->flags.end()) {
      return UsageError(absl::StrCat("'", cmd, "' does not take ", Spelling(name)), cmd);
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
    } else if (name == "pipelines") {
      FARM_ASSIGN_OR_RETURN(options.pipelines, ParseBool(name, value));
    } else if (name == "state") {
      farm::v1::JobState state;
      if (!farm::v1::JobState_Parse(absl::AsciiStrToUpper(value), &state) ||
          state == farm::v1::JOB_STATE_UNSPECIFIED) {
        return UsageError(absl::StrCat("--state takes queued, waiting, running, succeeded, "
                                       "failed, cancelled or skipped, not \"",
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
    } else if (name == "o") {
      if (value.empty()) return UsageError("-o needs a path", cmd);
      if (value == "-") return UsageError("-o -: farmctl writes files, not stdout", cmd);
      options.output_path = value;
    }
  }
  if (options.pipelines && options.state != farm::v1::JOB_STATE_UNSPECIFIED) {
    return UsageError("--state filters jobs; it does not go with --pipelines", cmd);
  }
  if (options.command == Command::kCasGet && options.output_path.empty()) {
    return UsageError("cas get needs -o FILE: farmctl cas get HASH/SIZE -o FILE", cmd);
  }
  return options;
}

}  // namespace farm::cli
