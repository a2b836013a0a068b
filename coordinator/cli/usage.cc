// farmctl's usage text (options.h: UsageText, CommandUsageText) and its flags (flags.h), built
// from the command table so that help and parsing never disagree.
#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/duration.h"
#include "coordinator/cli/command_table.h"
#include "coordinator/cli/flags.h"
#include "coordinator/cli/options.h"

namespace farm::cli {
namespace {

std::string ExitCodeText() {
  return absl::StrCat(
      "Exit codes:\n"
      "  0   success; for wait, submit --wait/--follow and logs --follow: the job (or pipeline)\n"
      "      SUCCEEDED; for events --follow --job: the job SUCCEEDED\n"
      "  1   the job (or pipeline) FAILED, or the job was SKIPPED; for cas stat: the blob is\n"
      "      missing\n"
      "  2   the job (or pipeline) was CANCELLED\n"
      "  3   wait --timeout ran out before the job (or pipeline) ended\n"
      "  4   an error: coordinator unreachable, job or pipeline not found, bad job or pipeline\n"
      "      file, request refused, a file that certs init would overwrite exists\n"
      "      (submit first retries an unreachable coordinator for ",
      common::FormatDurationMs(kSubmitRetryMs),
      ")\n"
      "  64  a usage error\n");
}

void AppendCommonFlags(std::string& text) {
  for (absl::string_view name : CommonFlags()) {
    if (name == "help") continue;
    absl::StrAppend(&text, "  ", FindFlag(name)->help, "\n");
  }
}

// What a command group's usage text says about the group as a whole.
absl::string_view GroupDetails(absl::string_view group) {
  if (group == "cas") {
    return "The content-addressable store the agents upload artifacts to (REAPI v2, instance "
           "\"\").\nHASH/SIZE is a blob's SHA-256 (64 lowercase hex digits) and its size in "
           "bytes.\n";
  }
  if (group == "secret") {
    return "Secrets (role admin): values jobs get as environment variables when they list them\n"
           "under `secrets:`, encrypted at rest by the coordinator (--secrets_key_file) and shown\n"
           "as [REDACTED] in the jobs' output. No command ever prints a value.\n";
  }
  if (group == "admin") {
    return "Operators' commands (role admin). Each change is kept by the coordinator and "
           "recorded in\nthe event history with who made it (farmctl events).\n";
  }
  if (group == "certs") {
    return "The farm's TLS certificates and secrets key, made locally (no coordinator needed).\n";
  }
  return "";
}

// A group's usage: its commands, what it is, and the flags any of them takes.
std::string GroupUsageText(absl::string_view group) {
  std::string text = "Usage:\n";
  std::vector<absl::string_view> flags;
  for (const CommandDef& def : CommandTable()) {
    if (!absl::StartsWith(def.name, absl::StrCat(group, " "))) continue;
    absl::StrAppend(&text, "  farmctl ", def.Invocation(), "\n      ", def.summary, "\n");
    for (absl::string_view flag : def.flags) {
      if (std::find(flags.begin(), flags.end(), flag) == flags.end()) flags.push_back(flag);
    }
  }
  absl::StrAppend(&text, "\n", GroupDetails(group), "\nFlags:\n");
  for (absl::string_view flag : flags) absl::StrAppend(&text, "  ", FindFlag(flag)->help, "\n");
  AppendCommonFlags(text);
  absl::StrAppend(&text, "\n", ExitCodeText());
  return text;
}

}  // namespace

const std::vector<FlagDef>& Flags() {
  static const auto* const kFlags = new std::vector<FlagDef>{
      {"coordinator", false,
       "--coordinator=HOST:PORT  the coordinator (default: $FARM_COORDINATOR, else "
       "127.0.0.1:7070)"},
      {"output", false,
       "--output=text|json       json: one JSON document on stdout (farm.v1 messages)"},
      {"help", true, "--help                   this command's usage"},
      {"role", false, "--role=ROLE              viewer, submitter, agent or admin"},
      {"name", false, "--name=NAME              who holds the token (an agent: its name)"},
      {"ttl", false,
       "--ttl=D                  how long the token is valid (12h, 90d); default: always (an "
       "enrollment token: 15m, at most 7d)"},
      {"labels", false,
       "--labels=k=v,...         enroll-token: the only labels the agent may claim (default: "
       "any); admin cancel, factory: the jobs (their labels include every k=v)"},
      {"insecure", true,
       "--insecure               plaintext, no credentials: a coordinator started with "
       "--insecure"},
      {"tls_ca", false,
       "--tls_ca=FILE            the CA that verifies the coordinator (default: $FARM_TLS_CA)"},
      {"tls_cert", false,
       "--tls_cert=FILE          a client certificate (SAN URI farm://ROLE/NAME); with "
       "--tls_key"},
      {"tls_key", false, "--tls_key=FILE           the private key of --tls_cert"},
      {"token_file", false,
       "--token_file=FILE        a file holding a token (default: the token in $FARM_TOKEN)"},
      {"wait", true,
       "--wait                   wait until the job or pipeline ends; exit with its outcome"},
      {"follow", true,
       "--follow                 stream the job's output, a pipeline's progress or new events "
       "until it ends"},
      {"state", false,
       "--state=S                only jobs in state S: queued, waiting, running, succeeded, "
       "failed, cancelled, skipped"},
      {"limit", false,
       "--limit=N                at most N jobs or pipelines (1-1000; default 50), or N events"},
      {"pipelines", true, "--pipelines              list pipelines instead of jobs"},
      {"step", false, "--step=NAME              only this step's output"},
      {"raw", true,
       "--raw                    write the output's bytes as they are, escape sequences too "
       "(on a terminal they are shown escaped)"},
      {"timeout", false,
       "--timeout=D              give up after D (e.g. 90s, 10m; a bare number is seconds) with "
       "exit code 3"},
      {"o", false,
       "-o DIR|FILE              download: the directory to write into (default .); cas get: "
       "the file"},
      {"job", false, "--job=ID                 only this job's events"},
      {"since", false,
       "--since=T                events from T: a duration back from now (1h) or an RFC 3339 "
       "time"},
      {"until", false, "--until=T                events before T (the same forms as --since)"},
      {"dir", false, "--dir=DIR                the directory to write into (made if missing)"},
      {"pipeline", false, "--pipeline=NAME          only the jobs of pipelines with this name"},
      {"p95-wait", false,
       "--p95-wait=D             the p95 queue wait capacity advice aims for (default 30s); "
       "target set: the target"},
      {"p95-lead", false, "--p95-lead=D             target set: the p95 lead time target"},
      {"first-pass-yield", false,
       "--first-pass-yield=X     target set: the first-pass yield target, a share (0.95)"},
      {"compare", false,
       "--compare=FROM,TO        the window the targets' trend compares with (default: the "
       "same window a week earlier); each end as --since"},
      {"dry-run", true, "--dry-run                report what would be removed; change nothing"},
      {"hosts", false,
       "--hosts=NAMES            the coordinator's host names and IPs (default "
       "localhost,127.0.0.1)"},
      // Admin agents.
      {"remove", false,
       "--remove=KEY[,KEY...]    admin label: label keys to take out (they stay out when the "
       "agent registers them again)"},
  };
  return *kFlags;
}

const FlagDef* FindFlag(absl::string_view name) {
  for (const FlagDef& def : Flags()) {
    if (def.name == name) return &def;
  }
  return nullptr;
}

const std::vector<absl::string_view>& CommonFlags() {
  static const auto* const kCommon = new std::vector<absl::string_view>{
      "coordinator", "output", "help", "insecure", "tls_ca", "tls_cert", "tls_key", "token_file"};
  return *kCommon;
}

bool IsCommonFlag(absl::string_view name) {
  const auto& common = CommonFlags();
  return std::find(common.begin(), common.end(), name) != common.end();
}

std::string Spelling(absl::string_view name) {
  return absl::StrCat(name.size() == 1 ? "-" : "--", name);
}

std::string UsageText() {
  std::string text =
      "farmctl: the build farm's command-line client.\n\n"
      "Usage: farmctl [--coordinator=HOST:PORT] [--output=text|json] COMMAND [ARGS]\n\n"
      "Commands:\n";
  for (const CommandDef& def : CommandTable()) {
    std::string left = def.Invocation();
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
  AppendCommonFlags(text);
  absl::StrAppend(&text,
                  "\nText output goes to stdout, errors and notices to stderr, one line each.\n"
                  "With --output=json, `submit --follow` writes the job's output (or the "
                  "pipeline's\nprogress) to stderr so that stdout holds the JSON document alone; "
                  "`logs --follow\n--output=json` writes one WatchLogsResponse per line.\n\n",
                  ExitCodeText());
  return text;
}

std::string CommandUsageText(absl::string_view command) {
  if (!CommandGroup(command).empty()) return GroupUsageText(CommandGroup(command));
  const CommandDef* def = FindCommandDef(command);
  if (def == nullptr || def->command == Command::kHelp) return UsageText();
  std::string text =
      absl::StrCat("Usage: farmctl ", def->Invocation(), "\n\n", def->summary, "\n\n");
  if (!def->details.empty()) absl::StrAppend(&text, def->details, "\n");
  absl::StrAppend(&text, "Flags:\n");
  for (absl::string_view name : def->flags) {
    absl::StrAppend(&text, "  ", FindFlag(name)->help, "\n");
  }
  AppendCommonFlags(text);
  absl::StrAppend(&text, "\n", ExitCodeText());
  return text;
}

}  // namespace farm::cli
