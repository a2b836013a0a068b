// Cgroup v2 for killing every process of a step, also those that left its process group.
//
// A process group holds a step only as long as the step wants to be held: setsid(), setpgid()
// or a daemon's double fork take a process out of it, and cancel, timeout and the kill at the
// end of the step then miss it. A cgroup cannot be left without privileges the step does not
// have (it runs as an unprivileged user, or in a sandbox), and every descendant is born in it.
// So each step (or, later, each remote-execution action) runs in a cgroup of its own, moved in
// between fork and exec, and killing the step kills the cgroup: cgroup.kill (Linux 5.14), or on
// older kernels freeze, SIGKILL every member, thaw, until it is empty.
//
// Layout: BASE/farm-agent-<pid>-<n>/step-<k>, where BASE is --cgroup_root or the agent's own
// cgroup (/proc/self/cgroup, line "0::"), under the cgroup2 mount found in /proc/self/mountinfo.
// No controller is enabled anywhere, so the no-internal-processes rule of cgroup v2 never
// applies. Directories left by an agent that died (its pid is gone) are killed and removed when
// the next one opens its tree.
//
// Thread-safety: CgroupTree::NewCgroup() may be called from any thread; a Cgroup is used by one
// owner (the step runner), except procs_fd() which the step's child uses between vfork and exec.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/unique_fd.h"

namespace farm::agent {

class Cgroup;

// The agent's directory of step cgroups.
class CgroupTree {
 public:
  // Finds the cgroup v2 hierarchy, creates the agent's directory under `root` (a cgroup v2
  // directory; empty: the agent's own cgroup), and proves that a process can be moved into a
  // child cgroup and killed there. FAILED_PRECONDITION saying why when the agent cannot use
  // cgroup v2 (no cgroup2 mount, not writable, no cgroup.kill nor cgroup.freeze, ...): the
  // caller then falls back to process groups.
  static absl::StatusOr<std::unique_ptr<CgroupTree>> Open(const std::string& root);

  // Kills whatever is still in the tree and removes its directory.
  ~CgroupTree();
  CgroupTree(const CgroupTree&) = delete;
  CgroupTree& operator=(const CgroupTree&) = delete;

  // A new, empty cgroup for one step. INTERNAL when it cannot be created.
  absl::StatusOr<std::unique_ptr<Cgroup>> NewCgroup() const;

  // The tree's directory (absolute), for logs and tests.
  const std::string& path() const { return path_; }
  // The tree's directory, open (for StepSupervisor::GuardCgroup()).
  int dir_fd() const { return dir_.get(); }

 private:
  CgroupTree(std::string path, common::UniqueFd dir)
      : path_(std::move(path)), dir_(std::move(dir)) {}

  const std::string path_;
  const common::UniqueFd dir_;
  mutable std::atomic<int64_t> next_{0};
};

// One step's cgroup. Destroying it kills what is left in it and removes it.
class Cgroup {
 public:
  ~Cgroup();
  Cgroup(const Cgroup&) = delete;
  Cgroup& operator=(const Cgroup&) = delete;

  // cgroup.procs, open for writing: a process moves itself in by writing "0" to it
  // (async-signal-safe, for the child between vfork and exec).
  int procs_fd() const { return procs_.get(); }

  // Sends `sig` to every process in the cgroup (the polite first round of a stop).
  void Signal(int sig) const;
  // SIGKILLs every process in the cgroup, including any forked meanwhile.
  void Kill() const;
  // True when no process is left in it.
  bool Empty() const;

  const std::string& path() const { return path_; }

 private:
  friend class CgroupTree;
  Cgroup(std::string path, int parent_fd, std::string name, common::UniqueFd dir,
         common::UniqueFd procs)
      : path_(std::move(path)),
        parent_fd_(parent_fd),
        name_(std::move(name)),
        dir_(std::move(dir)),
        procs_(std::move(procs)) {}

  const std::string path_;
  const int parent_fd_;  // the tree's directory; outlives this
  const std::string name_;
  const common::UniqueFd dir_;
  const common::UniqueFd procs_;
};

// The cgroup v2 directory this process belongs to ("/sys/fs/cgroup/..."), from
// /proc/self/mountinfo and /proc/self/cgroup. FAILED_PRECONDITION when there is no cgroup2
// mount or no "0::" line.
absl::StatusOr<std::string> OwnCgroupV2Dir();

}  // namespace farm::agent
