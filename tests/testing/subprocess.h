// Child processes for integration tests: the real farm binaries (and farmctl invocations) run as
// subprocesses that a test can signal, kill -9, wait for with a deadline and restart.
//
// Thread-compatibility: a Subprocess is used from one thread at a time. Spawn it from a thread
// that outlives it (the test's main thread): the child is sent SIGKILL when the spawning thread
// exits (PR_SET_PDEATHSIG), so that a crashed test leaves no farm processes behind.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace farm::testing {

struct SubprocessOptions {
  std::string binary;             // absolute path; not searched in PATH
  std::vector<std::string> args;  // argv[1..]
  // Added to (or replacing entries of) this process's environment.
  std::vector<std::pair<std::string, std::string>> env;
  // Files the child's stdout / stderr are written to (created or truncated). Empty: /dev/null.
  std::string stdout_path;
  std::string stderr_path;
  // The file the child reads as stdin. Empty: /dev/null.
  std::string stdin_path;
  // Working directory of the child; empty = this process's.
  std::string cwd;
  // Run the child as the leader of a new process group, so that Kill9() takes down everything
  // it forked that stayed in its group.
  bool new_process_group = true;
};

// One running (or finished) child. The destructor SIGKILLs and reaps a child that is still
// running, so no test leaks processes, whatever path it leaves by.
class Subprocess {
 public:
  // Forks and execs. The exec is checked: a binary that is missing or not executable is an error
  // here (NOT_FOUND / PERMISSION_DENIED / INTERNAL), not a child that exits 127.
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(SubprocessOptions options);

  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }
  const SubprocessOptions& options() const { return options_; }

  // Sends `sig` to the child process only (not its group). FAILED_PRECONDITION once it has been
  // reaped.
  absl::Status Signal(int sig);

  // SIGKILL to the child, to its process group when it leads one, and to every process that
  // descends from it at that moment (so that e.g. an agent's step processes, which lead their
  // own groups, do not outlive it); then reaps the child.
  absl::Status Kill9();

  // Waits until the child exits or `timeout` passes. Returns the exit code, or 128 + signal
  // number when it was killed by a signal (the shell's convention). DEADLINE_EXCEEDED when it
  // is still running at the deadline (it keeps running). Calling it again after the child was
  // reaped returns the same result.
  absl::StatusOr<int> Wait(absl::Duration timeout);

  // Signal(SIGTERM), then Wait(timeout); SIGKILL if it has not exited by then (and returns
  // DEADLINE_EXCEEDED so that a test can tell a clean stop from a forced one).
  absl::StatusOr<int> Terminate(absl::Duration timeout);

  // True until the child has exited (reaps it when it has).
  bool IsRunning();

 private:
  Subprocess(SubprocessOptions options, pid_t pid) : options_(std::move(options)), pid_(pid) {}
  // Non-blocking reap; true when the child has been reaped (now or before).
  bool TryReap();

  SubprocessOptions options_;
  pid_t pid_;
  bool reaped_ = false;
  int result_ = -1;  // valid when reaped_
};

// Waits until `child` has written a complete line to `path` (a server's port file, which the
// farm's binaries rename into place once they serve) and returns that line: the address.
// UNAVAILABLE when the child exits first, DEADLINE_EXCEEDED after `timeout`; both with the tail
// of `log_path` (the child's stderr).
absl::StatusOr<std::string> WaitForAddressFile(Subprocess& child, const std::string& path,
                                               absl::Duration timeout, const std::string& log_path);

// True while `pid` names a process that has not exited. A zombie (exited, not yet reaped by its
// parent) counts as gone: that is what "the process was killed" means for a step whose parent
// is not this process.
bool IsProcessAlive(pid_t pid);

// The processes that descend from `pid` now (children, grandchildren, ...), from /proc.
std::vector<pid_t> Descendants(pid_t pid);

}  // namespace farm::testing
