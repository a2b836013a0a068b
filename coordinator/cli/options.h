// farmctl's command line: the subcommands, their flags, the usage text and the exit codes.
//
// The arguments are parsed with CLI11 (subcommands, per-command flags and operands, `--`), built
// from the command table (command_table.h) that each command group registers into. farmctl
// keeps its own messages and exit codes on top: every usage error exits 64 with one line naming
// the problem and pointing at `farmctl help COMMAND`, a flag is accepted only by the commands it
// applies to, and the parsing is unit-testable (no process-global flags).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/channel.h"
#include "farm/v1/farm.pb.h"

namespace farm::cli {

// Exit codes, as documented in the usage text. The job outcomes (0-3) are what `wait`,
// `submit --wait/--follow` and `logs --follow` return, for a job or a pipeline alike (a SKIPPED
// job counts as FAILED); every other failure is kExitError so that a script can tell "the job
// failed" from "farmctl could not find out". `cas stat` exits kExitBlobMissing when the store
// lacks the blob.
inline constexpr int kExitSucceeded = 0;
inline constexpr int kExitJobFailed = 1;
inline constexpr int kExitBlobMissing = 1;
inline constexpr int kExitNotVerified = 1;  // provenance verify: the statement does not hold
inline constexpr int kExitJobCancelled = 2;
inline constexpr int kExitWaitTimedOut = 3;
inline constexpr int kExitError = 4;
inline constexpr int kExitUsage = 64;  // EX_USAGE

inline constexpr char kDefaultCoordinator[] = "127.0.0.1:7070";
// submit's retry budget (CliOptions::submit_retry_ms), as the usage text states it.
inline constexpr int64_t kSubmitRetryMs = 20'000;

// Whether `id` names a pipeline ("p3") rather than a job ("17"): the coordinator's pipeline ids
// are "p" and a number, its job ids plain numbers.
inline bool IsPipelineId(absl::string_view id) { return !id.empty() && id[0] == 'p'; }

enum class Command {
  kHelp,
  kSubmit,
  kGet,
  kList,
  kLogs,
  kWait,
  kCancel,
  kAgents,
  kArtifacts,
  kDownload,
  kCasPut,
  kCasGet,
  kCasStat,
  kEvents,
  kCertsInit,
  kTokenCreate,
  kTokenList,
  kTokenRevoke,
  kAgentEnrollToken,
  kSecretSet,
  kSecretList,
  kSecretRm,
  // Admin agents.
  kAdminDrain,
  kAdminResume,
  kAdminRemove,
  kAdminLabel,
  // Admin queues.
  kAdminPause,
  kAdminQueues,
  kAdminReprioritize,
  kAdminRetry,
  kAdminCancel,
  // Configuration and version (issue 13).
  kVersion,
  kAdminGc,  // retention and GC (issue 13, part 3)
  // Issue 13: backup and status.
  kAdminBackup,
  kAdminStatus,
  kFactory,     // issue 14: the factory report, and `factory target set|list|rm`
  kProvenance,  // issue 14: `provenance JOB`, `provenance verify FILE`
};
enum class OutputFormat { kText, kJson };

// A moment on the command line: a time (RFC 3339) or a duration back from now.
struct TimeArg {
  int64_t ms = 0;    // Unix milliseconds, or the duration
  bool ago = false;  // ms is a duration before now

  int64_t Resolve(int64_t now_ms) const { return ago ? now_ms - ms : ms; }
};

struct CliOptions {
  Command command = Command::kHelp;
  std::string help_topic;  // kHelp: a command's name, or empty for the overview

  std::string coordinator = kDefaultCoordinator;
  // --insecure, --tls_ca, --tls_cert, --tls_key, --token_file as given (read when connecting).
  common::ClientSecurityFlags security;
  OutputFormat output = OutputFormat::kText;

  std::string file;  // submit ("-" is stdin), cas put
  // get, logs, wait, cancel, artifacts, download, events (--job). For get, wait and cancel it
  // may name a pipeline (IsPipelineId); the others refuse one at parse time.
  std::string job_id;
  // token create: --role, --name, --ttl (0: never expires); token revoke: its ID.
  std::string token_role;
  std::string token_name;
  int64_t token_ttl_ms = 0;
  std::string token_id;
  // --labels: agent enroll-token's (the labels the enrolled agent may claim; with --ttl, 0: the
  // coordinator's default, 15 minutes) and admin cancel's selector; also admin pause/resume's
  // LABELS operand.
  std::map<std::string, std::string> labels;
  std::string secret_name;                                     // secret set, secret rm: NAME
  bool wait = false;                                           // submit
  bool follow = false;                                         // submit, logs, events
  bool pipelines = false;                                      // list: pipelines instead of jobs
  farm::v1::JobState state = farm::v1::JOB_STATE_UNSPECIFIED;  // list; UNSPECIFIED = any
  int limit = 0;     // list (1-1000), events (at most this many); 0 = the coordinator's / no limit
  std::string step;  // logs; empty = every step
  // logs: write the output unchanged on a terminal too (else control characters other than
  // \n, \t and \r are shown escaped there; output that is not a terminal is never changed).
  bool raw = false;
  std::optional<int64_t> timeout_ms;  // wait; none = forever
  std::vector<std::string> paths;     // download: artifact paths or directories; empty = all
  std::string output_path;            // -o: download's directory (empty = "."), cas get's file
  std::string digest;                 // cas get, cas stat: "HASH/SIZE", validated
  // events: the window, each either a moment or a duration back from the time the command
  // runs (--since=1h); none = from the oldest event kept, and (without --follow) up to now.
  std::optional<TimeArg> since;
  std::optional<TimeArg> until;
  std::string certs_dir;           // certs init: --dir
  std::vector<std::string> hosts;  // certs init: --hosts, checked; empty = the default
  // factory: --pipeline=NAME (only its jobs) and --p95-wait (the advice's target; 0: the
  // coordinator's default, 30 s). Its --labels are in `labels`.
  std::string pipeline_name;
  int64_t p95_wait_ms = 0;
  // factory target set|list|rm (empty: the report); set's figures besides --p95-wait; the
  // report's --compare=FROM,TO window.
  std::string factory_action;
  int64_t p95_lead_ms = 0;
  double first_pass_yield = 0;
  std::optional<std::pair<TimeArg, TimeArg>> compare;
  // provenance: JOB (in job_id), or verify FILE (in file).
  bool verify = false;
  // Retention and GC (issue 13, part 3): admin gc --dry-run.
  bool dry_run = false;

  // Admin agents: admin drain, resume, remove, label NAME; label's k=v operands (label_set) and
  // --remove=k[,k2] (label_remove). Checked by admin_agents_options.h.
  std::string agent_name;
  std::map<std::string, std::string> label_set;
  std::vector<std::string> label_remove;
  // Admin queues (admin_queue_options.h): reprioritize's N; the selector is in `labels`, the
  // job or pipeline in job_id, cancel's --state in state.
  int32_t priority = 0;
  // Issue 13, backup and status. admin backup: DIR, on the coordinator's machine.
  std::string backup_dir;

  // Not flags: timing knobs, so that tests need not wait for production delays.
  int64_t rpc_timeout_ms = 10'000;  // deadline of every unary call
  // How long submit keeps retrying UNAVAILABLE and DEADLINE_EXCEEDED (with one request id),
  // counted from its first try: long enough to ride out a coordinator restart.
  int64_t submit_retry_ms = kSubmitRetryMs;
  int cas_attempts = 5;                    // tries of a CAS call on UNAVAILABLE
  int64_t retry_initial_backoff_ms = 200;  // first delay of retries and reconnects
  int64_t retry_max_backoff_ms = 3'000;
  // A follow stream (or a pipeline's polling) that cannot reconnect for this long gives up with
  // an error.
  int64_t reconnect_give_up_ms = 120'000;
  // How often `wait` and `submit --wait/--follow` ask for a pipeline's state (there is no
  // pipeline watch stream).
  int64_t pipeline_poll_ms = 250;
  // How long one ListEvents call of `events --follow` waits at the live end (its wait_ms).
  int64_t events_wait_ms = 30'000;
  // Called with the error of each failed try of a retried call (submit) before it is tried
  // again (RetryPolicy::on_retry), and of each reconnect of a follow; tests see the retries
  // with it. May be empty.
  std::function<void(const absl::Status&)> on_retry;
};

// Parses the arguments after argv[0]. Flags may come before or after the command and its
// operands, as --name=value, --name value, or -name; `--` ends the flags. `-o VALUE` (also
// `-o=VALUE`) is the one short flag. (CLI11 itself takes neither -name nor -o=VALUE, nor a
// command's flag before the command: NormalizeArgs rewrites those forms first.) A command group
// (command_table.h: `cas`, `certs`) takes a subcommand (cas put, get, stat; certs init) as its
// first operand. `env_coordinator` is $FARM_COORDINATOR (empty
// when unset); --coordinator overrides it. INVALID_ARGUMENT with a one-line message (naming the
// flag or operand and pointing at `farmctl help COMMAND`) for every usage error, including no
// arguments at all, and for a pipeline id given to a command that takes only jobs (logs, artifacts,
// download).
absl::StatusOr<CliOptions> ParseArgs(const std::vector<std::string>& args,
                                     absl::string_view env_coordinator);

// The overview: every command, the common flags and the exit codes.
std::string UsageText();
// One command's synopsis and flags; the overview for an unknown name.
std::string CommandUsageText(absl::string_view command);

}  // namespace farm::cli
