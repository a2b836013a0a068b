#include "coordinator/cli/options.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <map>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "common/certs.h"
#include "common/digest.h"
#include "common/duration.h"
#include "common/job_file.h"
#include "common/status_macros.h"
#include "coordinator/cli/admin_agents_options.h"
#include "coordinator/cli/admin_queue_options.h"
#include "coordinator/cli/command_table.h"
#include "coordinator/cli/factory_options.h"
#include "coordinator/cli/flags.h"
#include "coordinator/cli/parse_util.h"

namespace farm::cli {
namespace {

bool IsFlagArg(absl::string_view arg) { return arg.size() >= 2 && arg[0] == '-' && arg != "--"; }

// The flag an argument spells ("--limit=5" → "limit", "-o" → "o", "-h" → "help").
absl::string_view FlagName(absl::string_view arg) {
  absl::string_view body = arg.substr(arg[1] == '-' ? 2 : 1);
  body = body.substr(0, body.find('='));
  return body == "h" ? "help" : body;
}

bool TakesValue(absl::string_view arg) {
  const FlagDef* def = FindFlag(FlagName(arg));
  return def != nullptr && !def->is_bool && arg.find('=') == absl::string_view::npos;
}

// The command words at the start of `operands` ("cas put" is two, "cas" alone a group); empty
// when none is known.
absl::string_view KnownCommand(const std::vector<std::string>& operands) {
  if (operands.empty()) return "";
  if (const absl::string_view group = CommandGroup(operands[0]); !group.empty()) {
    if (operands.size() >= 2) {
      if (const CommandDef* def = FindCommandDef(absl::StrCat(group, " ", operands[1]))) {
        return def->name;
      }
    }
    return group;
  }
  const CommandDef* def = FindCommandDef(operands[0]);
  return def == nullptr ? "" : def->name;
}

absl::Status ApplyFlag(const std::string& name, const std::string& value, absl::string_view cmd,
                       CliOptions& options);

// The forms farmctl takes that CLI11 does not, rewritten into ones it does:
// - a long flag with one dash (-output json) gets two, and -h is --help;
// - -o=VALUE becomes -o VALUE (CLI11 would keep the "=");
// - a command's own flags given before the command move after the command's words (CLI11 looks
//   for them only after the subcommand); --coordinator, --output and --help stay where they are.
// Also refuses a flag that needs a value at the very end ("--limit needs a value").
absl::StatusOr<std::vector<std::string>> NormalizeArgs(const std::vector<std::string>& args) {
  std::vector<std::string> spelled;
  std::vector<std::string> operands;  // for naming the command in errors
  bool flags_ended = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (flags_ended || !IsFlagArg(arg)) {
      spelled.push_back(arg);
      operands.push_back(arg);
      flags_ended = flags_ended || arg == "--";
      if (arg == "--") operands.pop_back();
      continue;
    }
    const absl::string_view name = FlagName(arg);
    const FlagDef* def = FindFlag(name);
    std::string form = arg;
    if (def != nullptr && arg[1] != '-') {  // -output, -h, -o=x
      const size_t eq = arg.find('=');
      const std::string value = eq == std::string::npos ? "" : arg.substr(eq);
      form = absl::StrCat(Spelling(def->name), name.size() == 1 ? "" : value);
      if (name.size() == 1 && !value.empty()) {
        spelled.push_back(form);
        spelled.push_back(value.substr(1));
        continue;
      }
    }
    if (def != nullptr && !def->is_bool && absl::EndsWith(form, "=")) {
      // CLI11 refuses an empty value in its own words; the flag's check says what it needs.
      CliOptions scratch;
      FARM_RETURN_IF_ERROR(ApplyFlag(std::string(def->name), "", KnownCommand(operands), scratch));
    }
    if (TakesValue(form) && i + 1 == args.size()) {
      return UsageError(absl::StrCat(Spelling(def->name), " needs a value"),
                        KnownCommand(operands));
    }
    spelled.push_back(form);
    if (TakesValue(form)) spelled.push_back(args[++i]);
  }
  // Move a command's flags from before the command to after its words.
  std::vector<std::string> leading;
  std::vector<std::string> kept;
  size_t i = 0;
  for (; i < spelled.size() && IsFlagArg(spelled[i]); ++i) {
    const bool value = TakesValue(spelled[i]) && i + 1 < spelled.size();
    std::vector<std::string>& to = IsCommonFlag(FlagName(spelled[i])) ? kept : leading;
    to.push_back(spelled[i]);
    if (value) to.push_back(spelled[++i]);
  }
  if (leading.empty()) return spelled;
  const size_t words = i < spelled.size() && !CommandGroup(spelled[i]).empty() ? 2 : 1;
  const size_t end = std::min(spelled.size(), i + words);
  kept.insert(kept.end(), spelled.begin() + static_cast<long>(i),
              spelled.begin() + static_cast<long>(end));
  kept.insert(kept.end(), leading.begin(), leading.end());
  kept.insert(kept.end(), spelled.begin() + static_cast<long>(end), spelled.end());
  return kept;
}

// The command line as CLI11 sees it: a subcommand per command (a group's inside the group's), each
// with the flags the table gives it and its operands; --coordinator, --output and --help on the
// root, reachable from every subcommand (fallthrough). Unknown flags and arguments are collected,
// not thrown, so that the messages stay farmctl's own.
class CommandLine {
 public:
  CommandLine() {
    app_.set_help_flag();  // --help is farmctl's own flag, for its own text
    app_.allow_extras();
    for (absl::string_view name : CommonFlags()) AddFlag(app_, name);
    app_.require_subcommand(0, 1);
    for (const CommandDef& def : CommandTable()) {
      const size_t space = def.name.find(' ');
      CLI::App* parent = &app_;
      if (space != absl::string_view::npos) {
        const std::string group(def.name.substr(0, space));
        CLI::App*& group_app = groups_[group];
        if (group_app == nullptr) {
          group_app = Subcommand(app_, group, "a command group");
          group_app->add_option("operands", group_operands_[group]);
          group_app->require_subcommand(0, 1);
        }
        parent = group_app;
      }
      CLI::App* sub = Subcommand(
          *parent,
          std::string(space == absl::string_view::npos ? def.name : def.name.substr(space + 1)),
          std::string(def.summary));
      sub->add_option("operands", operands_[def.command]);
      for (absl::string_view flag : def.flags) AddFlag(*sub, flag);
      commands_[sub] = &def;
    }
  }

  // Parses `args`; CLI11's own errors (a value missing in the middle) as a usage error.
  absl::Status Parse(const std::vector<std::string>& args) {
    std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 pops from the back
    try {
      app_.parse(reversed);
    } catch (const CLI::ParseError& e) {
      return UsageError(e.what());
    }
    return absl::OkStatus();
  }

  // The command given (null: none, or only a group's name), and the group given ("" if none).
  const CommandDef* command() const {
    for (const auto& [app, def] : commands_) {
      if (app->parsed()) return def;
    }
    return nullptr;
  }
  std::string group_given() const {
    for (const auto& [group, app] : groups_) {
      if (app->parsed()) return group;
    }
    return "";
  }

  // Every argument no command took (flags it does not know, operands of a command without
  // any), in order, root's last.
  std::vector<std::string> Extras() const {
    std::vector<std::string> extras;
    std::vector<const CLI::App*> apps;
    for (const auto& [group, app] : groups_) apps.push_back(app);
    apps.push_back(&app_);
    for (const CLI::App* app : apps) {
      for (const std::string& extra : app->remaining()) {
        if (extra != "--") extras.push_back(extra);
      }
    }
    std::vector<std::string> own;  // the command's, first
    for (const auto& [app, def] : commands_) {
      for (const std::string& extra : app->remaining()) {
        if (extra != "--") own.push_back(extra);
      }
    }
    own.insert(own.end(), extras.begin(), extras.end());
    return own;
  }

  std::vector<std::string> operands() const {
    const CommandDef* def = command();
    if (def != nullptr) return operands_.at(def->command);
    const std::string group = group_given();
    return group.empty() ? std::vector<std::string>() : group_operands_.at(group);
  }

  // The flags given, by name, with their values as typed ("true" for a bare switch).
  const std::map<std::string, std::string>& given() {
    given_.clear();
    for (const auto& [option, name] : flags_) {
      if (option->count() > 0) given_[name] = *values_[option];
    }
    return given_;
  }

 private:
  CLI::App* Subcommand(CLI::App& parent, const std::string& name, const std::string& summary) {
    CLI::App* sub = parent.add_subcommand(name, summary);
    sub->set_help_flag();
    sub->allow_extras();
    sub->fallthrough();
    return sub;
  }

  void AddFlag(CLI::App& app, absl::string_view name) {
    const FlagDef* def = FindFlag(name);
    const std::string spelling = Spelling(name);
    auto value = std::make_unique<std::string>();
    CLI::Option* option = def->is_bool ? app.add_flag(spelling, *value, std::string(def->help))
                                       : app.add_option(spelling, *value, std::string(def->help));
    option->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    values_[option] = value.get();
    storage_.push_back(std::move(value));
    flags_.emplace_back(option, std::string(name));
  }

  CLI::App app_{"farmctl: the build farm's command-line client", "farmctl"};
  std::map<std::string, CLI::App*> groups_;  // owned by app_
  std::map<std::string, std::vector<std::string>> group_operands_;
  std::map<Command, std::vector<std::string>> operands_;
  std::map<const CLI::App*, const CommandDef*> commands_;
  std::vector<std::unique_ptr<std::string>> storage_;
  std::map<const CLI::Option*, std::string*> values_;
  std::vector<std::pair<const CLI::Option*, std::string>> flags_;
  std::map<std::string, std::string> given_;
};

absl::StatusOr<bool> ParseBool(absl::string_view flag, absl::string_view value,
                               absl::string_view cmd = "") {
  const std::string v = absl::AsciiStrToLower(value);
  if (v == "true" || v == "1" || v == "yes") return true;
  if (v == "false" || v == "0" || v == "no") return false;
  return UsageError(absl::StrCat(Spelling(flag), " takes true or false, not \"", value, "\""), cmd);
}

// Sets one of the token commands' flags (--role, --name, --ttl, --labels), checked.
absl::Status ApplyTokenFlag(const std::string& name, const std::string& value,
                            absl::string_view cmd, CliOptions& options) {
  if (name == "role") {
    if (value.empty()) return UsageError("--role needs viewer, submitter, agent or admin", cmd);
    options.token_role = value;
  } else if (name == "name") {
    if (value.empty()) return UsageError("--name needs a name", cmd);
    options.token_name = value;
  } else if (name == "labels") {
    FARM_ASSIGN_OR_RETURN(options.labels, ParseLabelList(value, "--labels", cmd));
  } else if (name == "ttl") {
    FARM_ASSIGN_OR_RETURN(options.token_ttl_ms, ParseDurationFlag(name, value, "12h or 90d", cmd));
  }
  return absl::OkStatus();
}

// Sets one flag's value in `options`, checked.
absl::Status ApplyFlag(const std::string& name, const std::string& value, absl::string_view cmd,
                       CliOptions& options) {
  if (name == "coordinator") {
    if (value.empty()) return UsageError("--coordinator needs HOST:PORT", cmd);
    options.coordinator = value;
  } else if (name == "insecure") {
    FARM_ASSIGN_OR_RETURN(options.security.insecure, ParseBool(name, value, cmd));
  } else if (name == "tls_ca" || name == "tls_cert" || name == "tls_key" || name == "token_file") {
    if (value.empty()) return UsageError(absl::StrCat("--", name, " needs a file"), cmd);
    std::string& field = name == "tls_ca"     ? options.security.tls_ca
                         : name == "tls_cert" ? options.security.tls_cert
                         : name == "tls_key"  ? options.security.tls_key
                                              : options.security.token_file;
    field = value;
  } else if (name == "role" || name == "name" || name == "ttl" || name == "labels") {
    return ApplyTokenFlag(name, value, cmd, options);
  } else if (name == "output") {
    if (value != "text" && value != "json") {
      return UsageError(absl::StrCat("--output takes text or json, not \"", value, "\""), cmd);
    }
    options.output = value == "json" ? OutputFormat::kJson : OutputFormat::kText;
  } else if (name == "wait") {
    FARM_ASSIGN_OR_RETURN(options.wait, ParseBool(name, value, cmd));
  } else if (name == "follow") {
    FARM_ASSIGN_OR_RETURN(options.follow, ParseBool(name, value, cmd));
  } else if (name == "pipelines") {
    FARM_ASSIGN_OR_RETURN(options.pipelines, ParseBool(name, value, cmd));
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
    const int max = options.command == Command::kEvents ? 1'000'000 : 1000;
    if (!absl::SimpleAtoi(value, &options.limit) || options.limit < 1 || options.limit > max) {
      return UsageError(
          absl::StrCat("--limit takes a number from 1 to ", max, ", not \"", value, "\""), cmd);
    }
  } else if (name == "raw") {
    FARM_ASSIGN_OR_RETURN(options.raw, ParseBool(name, value, cmd));
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
  } else if (name == "job") {
    if (value.empty()) return UsageError("--job needs a job id", cmd);
    options.job_id = value;
  } else if (name == "since" || name == "until") {
    FARM_ASSIGN_OR_RETURN(TimeArg time, ParseTimeArg(name, value, cmd));
    (name == "since" ? options.since : options.until) = time;
  } else if (name == "pipeline" || name == "p95-wait" || name == "p95-lead" ||
             name == "first-pass-yield" || name == "compare") {
    return ApplyFactoryFlag(name, value, cmd, options);
  } else if (name == "dir") {
    if (value.empty()) return UsageError("--dir needs a directory", cmd);
    options.certs_dir = value;
  } else if (name == "remove") {
    return ApplyAdminAgentFlag(name, value, cmd, options);
  } else if (name == "dry-run") {
    FARM_ASSIGN_OR_RETURN(options.dry_run, ParseBool(name, value, cmd));
  } else if (name == "hosts") {
    absl::StatusOr<std::vector<std::string>> hosts = common::ParseHosts(value);
    if (!hosts.ok()) return UsageError(absl::StrCat("--hosts: ", hosts.status().message()), cmd);
    options.hosts = *std::move(hosts);
  }
  return absl::OkStatus();
}

// The error for the first argument no command took; OK when there is none.
absl::Status CheckExtras(const std::vector<std::string>& extras, const CommandDef* def,
                         absl::string_view group) {
  const absl::string_view cmd = def != nullptr ? def->name : group;
  for (const std::string& extra : extras) {
    if (!IsFlagArg(extra)) continue;
    const absl::string_view name = FlagName(extra);
    if (FindFlag(name) == nullptr) {
      return UsageError(absl::StrCat("unknown flag ", extra[1] == '-' ? "--" : "-", name), cmd);
    }
    if (def != nullptr) {
      return UsageError(absl::StrCat("'", cmd, "' does not take ", Spelling(name)), cmd);
    }
  }
  if (def == nullptr && group.empty() && !extras.empty()) {
    return UsageError(absl::StrCat("unknown command '", extras[0], "'"));
  }
  return absl::OkStatus();
}

// `help [COMMAND]`, or --help with or without a command: the options of the help asked for.
absl::StatusOr<CliOptions> HelpFor(const CommandDef* def, absl::string_view group,
                                   const std::vector<std::string>& operands) {
  CliOptions options;
  options.command = Command::kHelp;
  if (def == nullptr) {
    options.help_topic = std::string(group);
    return options;
  }
  if (def->command != Command::kHelp) {
    options.help_topic = std::string(def->name);
    return options;
  }
  if (operands.empty()) return options;
  const absl::string_view topic = KnownCommand(operands);
  const bool is_group = !CommandGroup(topic).empty();
  if (topic.empty() || (is_group && operands.size() > 1)) {
    return UsageError(absl::StrCat("unknown command '", absl::StrJoin(operands, " "), "'"));
  }
  if (operands.size() > (absl::StrContains(topic, ' ') ? 2u : 1u)) {
    return UsageError("help takes at most one command name");
  }
  options.help_topic = std::string(topic);
  return options;
}

// The operands of `def`: their number, and what each must be.
absl::Status ApplyOperands(const CommandDef& def, const std::vector<std::string>& rest,
                           CliOptions& options) {
  const absl::string_view cmd = def.name;
  if (rest.size() < def.operands.size()) {
    return UsageError(
        absl::StrCat("missing ", def.operands[rest.size()], ": farmctl ", def.Invocation()), cmd);
  }
  if (rest.size() > def.operands.size() && !def.more_operands) {
    return UsageError(
        absl::StrCat("unexpected argument '", rest[def.operands.size()], "' for ", cmd), cmd);
  }
  if (IsAdminAgentCommand(def.command)) return ApplyAdminAgentOperands(def, rest, options);
  if (IsAdminQueueCommand(def.command)) return ApplyAdminQueueOperands(def, rest, options);
  for (size_t i = 0; i < rest.size(); ++i) {
    if (rest[i].empty()) {
      return UsageError(
          absl::StrCat(i < def.operands.size() ? def.operands[i] : "PATH", " is empty"), cmd);
    }
  }
  switch (def.command) {
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
    case Command::kTokenRevoke:
      options.token_id = rest[0];
      break;
    case Command::kAdminBackup:
      options.backup_dir = rest[0];
      break;
    case Command::kSecretSet:
    case Command::kSecretRm:
      options.secret_name = rest[0];
      break;
    case Command::kDownload:
      options.paths.assign(rest.begin() + 1, rest.end());
      options.job_id = rest[0];
      break;
    case Command::kFactory:
    case Command::kProvenance:
      return ApplyFactoryOperands(def, rest, options);
    default:
      if (!rest.empty()) options.job_id = rest[0];
      break;
  }
  return absl::OkStatus();
}

// What no single flag or operand can check.
absl::Status CheckCombinations(const CommandDef& def, const CliOptions& options) {
  const absl::string_view cmd = def.name;
  switch (def.command) {
    case Command::kLogs:
    case Command::kArtifacts:
    case Command::kDownload:
    case Command::kEvents:
      if (IsPipelineId(options.job_id)) {
        // Not a usage error of the ordinary kind: the way out is another command.
        return absl::InvalidArgumentError(absl::StrCat(options.job_id,
                                                       " is a pipeline; use `farmctl get ",
                                                       options.job_id, "` to see its jobs' ids"));
      }
      break;
    default:
      break;
  }
  if (options.pipelines && options.state != farm::v1::JOB_STATE_UNSPECIFIED) {
    return UsageError("--state filters jobs; it does not go with --pipelines", cmd);
  }
  if (options.command == Command::kTokenCreate &&
      (options.token_role.empty() || options.token_name.empty())) {
    return UsageError("token create needs --role and --name", cmd);
  }
  if (options.command == Command::kCasGet && options.output_path.empty()) {
    return UsageError("cas get needs -o FILE: farmctl cas get HASH/SIZE -o FILE", cmd);
  }
  if (options.command == Command::kCertsInit && options.certs_dir.empty()) {
    return UsageError("certs init needs --dir DIR: farmctl certs init --dir=DIR", cmd);
  }
  if (IsAdminAgentCommand(options.command)) return CheckAdminAgentOptions(def, options);
  if (IsAdminQueueCommand(options.command)) return CheckAdminQueueOptions(def, options);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CliOptions> ParseArgs(const std::vector<std::string>& args,
                                     absl::string_view env_coordinator) {
  FARM_ASSIGN_OR_RETURN(const std::vector<std::string> normalized, NormalizeArgs(args));
  CommandLine line;
  FARM_RETURN_IF_ERROR(line.Parse(normalized));
  const CommandDef* def = line.command();
  const std::string group = line.group_given();
  FARM_RETURN_IF_ERROR(CheckExtras(line.Extras(), def, group));
  const std::map<std::string, std::string>& given = line.given();
  bool help = false;
  if (auto it = given.find("help"); it != given.end()) {
    FARM_ASSIGN_OR_RETURN(help, ParseBool("help", it->second));
  }
  const std::vector<std::string> operands = line.operands();
  if (def == nullptr && group.empty() && !help) return UsageError("no command given");
  if (def == nullptr && !group.empty() && !help) {
    const std::string expected = GroupSubcommandList(group);
    if (operands.empty()) {
      return UsageError(absl::StrCat("'", group, "' needs a subcommand: ", expected), group);
    }
    return UsageError(absl::StrCat("unknown subcommand '", group, " ", operands[0], "' (expected ",
                                   expected, ")"),
                      group);
  }
  if (help || def->command == Command::kHelp) return HelpFor(def, group, operands);

  CliOptions options;
  options.command = def->command;
  if (!env_coordinator.empty()) options.coordinator = std::string(env_coordinator);
  FARM_RETURN_IF_ERROR(ApplyOperands(*def, operands, options));
  for (const auto& [name, value] : given) {
    FARM_RETURN_IF_ERROR(ApplyFlag(name, value, def->name, options));
  }
  FARM_RETURN_IF_ERROR(CheckCombinations(*def, options));
  return options;
}

}  // namespace farm::cli
