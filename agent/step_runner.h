// Runs one step's process: its own process group, one pipe for stdout+stderr read with poll(),
// output cut into chunks, step/job timeouts and cancellation with SIGTERM → SIGKILL escalation.
//
// Lifetime and threads: Run() blocks the calling thread until the step is over. Because the
// child gets PR_SET_PDEATHSIG(SIGKILL), which fires when the *forking thread* exits, Run()
// must be called from a thread that lives at least as long as the step. Cancel() may be called
// from any thread at any time.
//
// Dying with the agent: with a StepSupervisor (the agent always has one) the step's process
// group is listed with the supervisor before the step runs, and unlisted after the group was
// killed, so the whole group dies with the agent however the agent dies (see
// step_supervisor.h). PR_SET_PDEATHSIG stays as a second line that holds only for the leader.
//
// Isolation: with an Isolation (isolation.h) each Run() puts the process in a cgroup of its own
// when the agent can use cgroup v2, and every stop (cancel, timeout, the end of the step) then
// reaches the whole cgroup, also processes that left the process group with setsid(); the child
// also gets the step user and the resource limits before exec. The sandbox, which changes the
// command line, is the caller's (Isolation::Wrap()).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "agent/isolation.h"
#include "agent/step_supervisor.h"

namespace farm::agent {

// Output is cut into chunks of at most this many bytes...
inline constexpr int64_t kMaxChunkBytes = 64 << 10;
// ...or when the oldest unsent byte has waited this long, whichever comes first.
inline constexpr int64_t kChunkFlushMs = 100;

struct StepCommand {
  // argv[0] is resolved against the PATH in `env` when it has no '/'.
  std::vector<std::string> argv;
  // The complete environment of the process, as "NAME=value".
  std::vector<std::string> env;
  std::string cwd;
  // 0: no timeout. Measured from the moment the process started.
  int64_t timeout_ms = 0;
  // SIGTERM → SIGKILL grace for timeouts, cancels and leftover processes. Must be > 0.
  int64_t kill_grace_ms = 10'000;
};

struct StepOutcome {
  enum class Kind {
    kExited,         // exit_code is valid
    kSignaled,       // signal is valid
    kTimedOut,       // the timeout fired; exit_code/signal say how the process then ended
    kCancelled,      // Cancel() was called; exit_code/signal say how the process then ended
    kFailedToStart,  // message says why; no process ran
  };
  Kind kind = Kind::kFailedToStart;
  int exit_code = 0;
  int signal = 0;
  std::string message;
  int64_t duration_ms = 0;
  int64_t output_bytes = 0;
  pid_t pid = 0;  // the step's process (and process group) id; 0 when it did not start

  // True when the step counts as successful: it exited with code 0 on its own.
  bool ok() const { return kind == Kind::kExited && exit_code == 0; }
};

class StepRunner {
 public:
  // Receives each output chunk: its byte offset within the step's output and the bytes.
  // Called on the thread running Run(); it may block (back-pressure), which pauses reading.
  using OutputSink = std::function<void(int64_t offset, absl::string_view data)>;

  // `supervisor` (not owned; may be null: then nothing but PR_SET_PDEATHSIG ties the step to
  // the agent) must outlive the runner, and so must `isolation` (not owned; null: the step runs
  // as the agent, in its process group only).
  explicit StepRunner(const StepSupervisor* supervisor = nullptr,
                      const Isolation* isolation = nullptr);
  ~StepRunner();
  StepRunner(const StepRunner&) = delete;
  StepRunner& operator=(const StepRunner&) = delete;

  // Starts the command and returns when the process has exited, been reaped, and its output
  // has been delivered to `sink`. kFailedToStart (naming the supervisor) when the supervisor
  // is gone: an unguarded step could outlive the agent, and (naming the call) when the
  // isolation cannot be applied. The process group (and the cgroup, when there is one) is
  // SIGKILLed when the step ends, so no background process of the step outlives it. If the leader
  // exits while descendants keep the pipe open, they get SIGTERM at once and SIGKILL after the
  // grace, and reading stops then.
  //
  // `on_started`, when set, runs on this thread once the program has been executed (not when it
  // failed to start), before any output is read: work that should not compete with starting
  // the step (such as reporting that it started) belongs there.
  StepOutcome Run(const StepCommand& command, const OutputSink& sink,
                  const std::function<void()>& on_started = nullptr);

  // Asks the running step (and every later Run() on this object) to stop: SIGTERM to the
  // process group now, SIGKILL after the command's grace. Sticky and idempotent.
  void Cancel();
  bool cancelled() const { return cancelled_.load(); }

 private:
  const StepSupervisor* const supervisor_;
  const Isolation* const isolation_;
  std::atomic<bool> cancelled_{false};
  int cancel_fd_ = -1;  // eventfd; becomes readable (and stays so) on Cancel()
};

}  // namespace farm::agent
