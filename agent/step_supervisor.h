// StepSupervisor: no step process outlives its agent, however the agent dies (exit, crash,
// kill -9, OOM kill).
//
// Why a separate process. Each step leads its own process group so that cancel and timeout reach
// everything it started. PR_SET_PDEATHSIG on the group leader kills only the leader (the shell)
// when the agent dies: in `sh -c 'sleep 1000; echo done'` the `sleep` is reparented and runs on.
// PR_SET_CHILD_SUBREAPER does not help either: it only decides who inherits orphans while the
// agent lives; once the agent itself dies they move on up to init and nothing kills them.
// Recording the groups in a file and killing them at the next start leaves them running until
// a restart that may never come, and by then their ids may belong to unrelated processes.
//
// So a tiny process is forked at start-up, before the agent has any thread. It holds one end of a
// socket pair and a table of the live step process groups; the agent holds the other end. Each
// step lists its group before it runs a single instruction of the step (the child does it
// between fork and exec), and the agent unlists it after killing the group and before reaping its
// leader. When the agent's end is closed by the kernel, because the agent is gone for whatever
// reason, the supervisor reads EOF, SIGKILLs every group still listed and exits. That also
// covers a restart: whatever the previous agent process ran was killed by its own supervisor the
// moment it died, so a new agent starts with nothing left over.
//
// The supervisor leads its own process group and ignores SIGINT/SIGTERM/SIGHUP/SIGQUIT, so that a
// Ctrl-C or a `kill -- -PGID` aimed at the agent does not take the guard down with it; its only
// way out is EOF (or SIGKILL aimed at it on purpose, which Alive() notices).
//
// A step process that leaves its process group (setsid(), setpgid(), a daemon's double fork)
// escapes the group kill. When the agent runs steps in cgroups (cgroup.h) it hands the
// supervisor its cgroup tree's directory (GuardCgroups()), and on EOF the supervisor kills the
// whole tree too (cgroup.kill), so those die with the agent as well. Without cgroups they escape
// the supervisor, as they escape cancel and timeout.
//
// Thread-safety: TrackSelf() is async-signal-safe (one send(2)); Untrack() and Alive() may be
// called from any thread concurrently (each record is one atomic datagram).
#pragma once

#include <sys/types.h>

#include <memory>

#include "absl/status/statusor.h"

namespace farm::agent {

class StepSupervisor {
 public:
  // Forks the supervisor. Call it before the process starts any thread (main() does): fork copies
  // only the calling thread. The child then makes system calls only (no allocation, no locks), so
  // starting one from a multi-threaded process (tests) is safe as well, just costlier.
  // INTERNAL when the socket pair or the fork fails.
  static absl::StatusOr<std::unique_ptr<StepSupervisor>> Start();

  // Closes the agent's end (the supervisor kills whatever is still listed, nothing after a clean
  // shutdown, and exits) and reaps the supervisor.
  ~StepSupervisor();
  StepSupervisor(const StepSupervisor&) = delete;
  StepSupervisor& operator=(const StepSupervisor&) = delete;

  // Lists the caller's own process group. For a step's child between fork/vfork and exec, after
  // setpgid(0, 0): async-signal-safe, no allocation. False (errno set) when the supervisor is
  // gone; the child must then not run the step.
  bool TrackSelf() const;

  // Hands the supervisor the directory of a cgroup (an open descriptor, passed with
  // SCM_RIGHTS; the caller keeps its own): when the agent is gone, everything in it and below is
  // killed through its cgroup.kill. At most a few per supervisor; false when it is full or gone.
  bool GuardCgroup(int dir_fd) const;

  // Unlists process group `pgid`. Call it after the group was SIGKILLed and BEFORE reaping its
  // leader: while the leader is an unreaped zombie its id cannot be reused, so the supervisor can
  // never kill an unrelated group that happens to get the same id. Unknown ids are ignored.
  void Untrack(pid_t pgid) const;

  // False once the supervisor process has exited (someone killed it). Steps started after that
  // fail to start; the agent stops taking work.
  bool Alive() const;

  // The supervisor's process id (for logs and tests).
  pid_t pid() const { return pid_; }

 private:
  StepSupervisor(pid_t pid, int fd) : pid_(pid), fd_(fd) {}

  const pid_t pid_;
  const int fd_;  // the agent's end of the socket pair; close-on-exec
};

}  // namespace farm::agent
