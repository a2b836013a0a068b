// How the agent isolates the processes it runs for jobs: as which user, with which resource
// limits, in which cgroup, and optionally inside a bubblewrap sandbox. One object per agent,
// built at start-up from the flags (--run_as, --step_rlimits, --sandbox, --cgroup_root), used by
// the step runner for every step and meant for any later runner of job processes (REAPI
// actions) alike: it knows nothing of steps.
//
// What each part protects (README, "Step isolation"):
// - run_as: a step of an agent running as root runs as an unprivileged user, so it cannot read
//   the agent's credentials (--token_file, the enrolled credential in the work dir), its caches
//   or other files of root, nor signal or trace the agent. The work dir becomes root's with mode
//   0711 (steps reach their own workspace by its path, nothing else: its entries are 0700/0600),
//   and the workspace is handed over to the user before the first step.
// - rlimits: setrlimit in the child, soft and hard alike, so a step cannot raise them.
// - cgroup: every step in a cgroup of its own (cgroup.h), so cancel, timeout, a lost lease and
//   the end of the step kill everything it started, also what left its process group with
//   setsid; process groups otherwise (kill() reports which).
// - sandbox "bwrap": the step runs in bubblewrap: / read-only, the workspace the only writable
//   place besides a private /tmp, a private /proc (own pid namespace) and /dev, the work dir and
//   the agent's credential files hidden, and no network for a job with `network: false`.
//
// Thread-safety: immutable after Create(); every method may be called from any thread.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/cgroup.h"

namespace farm::agent {

// One resource limit of --step_rlimits.
struct StepRlimit {
  std::string name;  // as written: "nofile", "nproc", "as", ...
  int resource = 0;  // RLIMIT_*
  rlim_t value = 0;  // soft and hard limit; RLIM_INFINITY for "unlimited"
};

// "nofile=1024,nproc=512,as=4G" → limits. Names: nofile, nproc, as, fsize, core, cpu (seconds),
// stack, memlock; values are integers, byte limits may end in K, M, G or T (powers of 1024),
// any may be "unlimited". Empty text: no limits. INVALID_ARGUMENT naming the entry otherwise.
absl::StatusOr<std::vector<StepRlimit>> ParseStepRlimits(absl::string_view text);

enum class SandboxKind { kNone, kBwrap };

// "" or "none" → kNone, "bwrap" → kBwrap; INVALID_ARGUMENT otherwise.
absl::StatusOr<SandboxKind> ParseSandbox(absl::string_view text);

struct IsolationOptions {
  // The user steps run as. Empty: the agent's own user (main() fills in DefaultStepUser() when
  // the agent runs as root). An agent that is not root refuses any other user than its own.
  std::string run_as;
  std::vector<StepRlimit> rlimits;
  SandboxKind sandbox = SandboxKind::kNone;
  std::string bwrap = "bwrap";  // the bubblewrap program (PATH lookup when it has no '/')
  // The cgroup v2 directory under which steps get their cgroups; empty: the agent's own.
  std::string cgroup_root;
  // False: never try cgroups (process groups only).
  bool cgroups = true;
  // Files of the agent that steps must never read (--token_file, the enrolled credential):
  // checked unreadable by the step user at start-up, and hidden inside the sandbox.
  std::vector<std::string> secret_files;
};

// The user steps run as by default when the agent runs as root: "farm-build" when that user
// exists (deploy/ creates it), else "nobody".
std::string DefaultStepUser();

// The step user, resolved. Plain data: the child of vfork reads it.
struct StepUser {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups
  std::string home;
  bool change = false;  // the agent must change to this user (it is root, the user is not)
};

// What the child of vfork applies before exec, prepared by the parent (no allocation after
// vfork). Pointers into an Isolation and a Cgroup that outlive the child's exec.
struct ChildIsolation {
  int cgroup_procs_fd = -1;  // write "0" to move in; -1: no cgroup
  const StepRlimit* rlimits = nullptr;
  size_t rlimit_count = 0;
  const StepUser* user = nullptr;  // user->change: setgroups/setgid/setuid
};

// The child's side: moves into the cgroup, sets the limits and changes the user, in that order
// (the cgroup and the limits need root). Async-signal-safe. On failure returns false with
// `*stage` naming the call ("cgroup", "setrlimit", "setgroups", "setgid", "setuid") and errno set.
bool ApplyInChild(const ChildIsolation& isolation, const char** stage);

class Isolation {
 public:
  // Resolves the user (INVALID_ARGUMENT: unknown user, or another user while not root), checks
  // that the user can reach `work_dir` and cannot read any secret file (FAILED_PRECONDITION
  // naming the file and what to do), proves that bubblewrap works when asked for
  // (FAILED_PRECONDITION saying why not), and opens a cgroup tree when it can (else process
  // groups, with the reason in kill_fallback_reason()). `work_dir` is absolute and exists.
  static absl::StatusOr<std::unique_ptr<Isolation>> Create(const IsolationOptions& options,
                                                           const std::string& work_dir);

  // "cgroup-v2" or "process-group": what a kill reaches.
  const char* kill_mechanism() const { return cgroups_ ? "cgroup-v2" : "process-group"; }
  // Why cgroups are not used (empty when they are).
  const std::string& kill_fallback_reason() const { return fallback_reason_; }
  const StepUser& user() const { return user_; }
  SandboxKind sandbox() const { return options_.sandbox; }
  // "bwrap" or "".
  std::string sandbox_name() const;
  const IsolationOptions& options() const { return options_; }

  // Makes the work dir private to root (mode 0711, entries `private_entries` 0700) when steps
  // run as another user. Call once at start-up, after the agent created its own entries.
  absl::Status SecureWorkDir(const std::vector<std::string>& private_entries) const;

  // Hands `workspace` (a directory in the work dir, and everything in it) over to the step
  // user, without following symbolic links. No-op when steps run as the agent's user.
  absl::Status HandOver(const std::string& workspace) const;

  // A new cgroup for one process tree; null when the agent uses process groups (or, logged,
  // when this one could not be created: the step then runs with its process group only).
  std::unique_ptr<Cgroup> NewCgroup() const;

  // `argv` as it runs: inside bubblewrap (with the workspace writable and, when `network` is
  // false, no network) when the sandbox is on, else unchanged.
  std::vector<std::string> Wrap(std::vector<std::string> argv, const std::string& workspace,
                                bool network) const;

  // The directory of the agent's cgroup tree (for StepSupervisor::GuardCgroup()); -1 with
  // process groups.
  int cgroup_tree_fd() const { return cgroups_ != nullptr ? cgroups_->dir_fd() : -1; }

  // The child's part for a process in `cgroup` (may be null).
  ChildIsolation ForChild(const Cgroup* cgroup) const;

 private:
  Isolation(IsolationOptions options, std::string work_dir, StepUser user)
      : options_(std::move(options)), work_dir_(std::move(work_dir)), user_(std::move(user)) {}

  absl::Status CheckUserAccess() const;
  absl::Status CheckSandbox() const;

  const IsolationOptions options_;
  const std::string work_dir_;
  const StepUser user_;
  std::string bwrap_path_;
  std::unique_ptr<CgroupTree> cgroups_;
  std::string fallback_reason_;
};

}  // namespace farm::agent
