#include "agent/step_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/unique_fd.h"

namespace farm::agent {
namespace {

// The step's timeouts are poll(2) timeouts, which run on real time: so does their clock.
int64_t MonoMs() { return common::RealClock()->MonotonicMs(); }

std::string ErrnoText(int err) {
  char buf[256];
  // GNU strerror_r: returns a pointer that may or may not be `buf`.
  return strerror_r(err, buf, sizeof(buf));
}

// What the child reports through the exec-status pipe when it cannot exec.
struct ChildError {
  // 1: chdir, 2: execve, 3: dup2, 4: listing the group with the supervisor, 5: isolation
  int stage;
  int err;
  const char* what = nullptr;  // stage 5: which part of it (ApplyInChild), a static string
};

// argv[0] with a '/' is used as is; otherwise it is looked up in the step's own PATH (execvp
// would use the agent's PATH, not the step's).
std::string ResolveProgram(const StepCommand& command) {
  const std::string& name = command.argv[0];
  if (absl::StrContains(name, '/')) return name;
  std::string path = "/usr/local/bin:/usr/bin:/bin";
  for (const std::string& kv : command.env) {
    if (absl::StartsWith(kv, "PATH=")) path = kv.substr(5);
  }
  for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty())) {
    std::string candidate = absl::StrCat(dir, "/", name);
    struct stat st;
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return "";
}

int PidfdOpen(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
  errno = ENOSYS;
  return -1;
#endif
}

// Everything the child needs between vfork() and exec, prepared before vfork: the child shares
// our memory and only makes system calls (no allocation, no locks, no stores the parent relies
// on except the ChildError it writes to status_fd before the parent resumes).
struct ChildSetup {
  const char* path;  // the program
  char* const* argv;
  char* const* envp;
  const char* cwd;  // "" to stay in the agent's
  int stdin_fd;     // /dev/null
  int out_fd;       // the write end of the output pipe: stdout and stderr
  int status_fd;    // the write end of the exec-status pipe (O_CLOEXEC: EOF once exec worked)
  pid_t parent;
  const StepSupervisor* supervisor;
  ChildIsolation isolation;  // cgroup, limits, user (isolation.h)
};

// The child, from vfork() to exec: async-signal-safe calls only. Never returns.
[[noreturn]] void ExecChild(const ChildSetup& setup) {
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != setup.parent) ::_exit(127);  // the agent died before prctl took effect
  // Listed before the step runs a single instruction, so there is no moment in which the
  // agent could die and leave the group unguarded. (Until exec this process also holds a
  // copy of the agent's end, so the supervisor cannot read EOF before this record.)
  if (setup.supervisor != nullptr && !setup.supervisor->TrackSelf()) {
    const ChildError untracked{4, errno};
    (void)!::write(setup.status_fd, &untracked, sizeof(untracked));
    ::_exit(127);
  }
  const char* stage = nullptr;
  if (!ApplyInChild(setup.isolation, &stage)) {
    const ChildError isolation_failed{5, errno, stage};
    (void)!::write(setup.status_fd, &isolation_failed, sizeof(isolation_failed));
    ::_exit(127);
  }
  // A change of user cleared the parent-death signal: set it again, and check again that the
  // agent did not die meanwhile.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != setup.parent) ::_exit(127);
  // The agent blocks SIGTERM/SIGINT in its threads and gRPC ignores SIGPIPE; both the mask
  // and ignored dispositions survive exec, so reset them for the step.
  sigset_t empty;
  sigemptyset(&empty);
  ::sigprocmask(SIG_SETMASK, &empty, nullptr);
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &dfl, nullptr);
  }
  ChildError error{0, 0, nullptr};
  if (::dup2(setup.stdin_fd, 0) < 0 || ::dup2(setup.out_fd, 1) < 0 || ::dup2(setup.out_fd, 2) < 0) {
    error = {3, errno};
  } else if (setup.cwd[0] != '\0' && ::chdir(setup.cwd) != 0) {
    error = {1, errno};
  } else {
    ::execve(setup.path, setup.argv, setup.envp);
    error = {2, errno};
  }
  (void)!::write(setup.status_fd, &error, sizeof(error));
  ::_exit(127);
}

// Watches a running step until its output pipe is closed and its leader has exited: reads the
// output into chunks for the sink (kMaxChunkBytes, or kChunkFlushMs after the oldest byte),
// stops it on its timeout or a cancel (SIGTERM to the group, SIGKILL after the grace), and
// stops reading once only processes that escaped the group hold the pipe. The leader is not
// reaped here: while it is a zombie its pid cannot be reused, so signalling -pid can never hit
// an unrelated process group.
class StepWatch {
 public:
  enum class Stop { kNone, kTimeout, kCancel };

  StepWatch(const StepCommand& command, pid_t pid, const Cgroup* cgroup, common::UniqueFd out,
            int64_t start_ms, int cancel_fd, const std::atomic<bool>& cancelled,
            const StepRunner::OutputSink& sink)
      : command_(command),
        pid_(pid),
        cgroup_(cgroup),
        out_(std::move(out)),
        pidfd_(PidfdOpen(pid)),  // readable when the child exits; -1 → poll every 20 ms
        cancel_fd_(cancel_fd),
        cancelled_(cancelled),
        sink_(sink),
        timeout_at_(command.timeout_ms > 0 ? start_ms + command.timeout_ms : kNever) {
    ::fcntl(out_.get(), F_SETFL, ::fcntl(out_.get(), F_GETFL) | O_NONBLOCK);
    std::memset(&leader_, 0, sizeof(leader_));
    buffer_.reserve(kMaxChunkBytes);
  }

  void Run() {
    while (pipe_open_ || !leader_exited_) {
      const int64_t now = MonoMs();
      if (!Act(now)) break;
      Wait(now);
    }
    Flush();
  }

  Stop stop() const { return stop_; }
  // How the leader ended (waitid): si_code CLD_EXITED with the exit code in si_status, or the
  // signal in si_status.
  const siginfo_t& leader() const { return leader_; }
  int64_t output_bytes() const { return offset_; }

 private:
  static constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

  // Does what is due at `now`: stop, escalate, flush. False when reading must end: the group
  // is killed and the leader gone, and what still holds the pipe escaped the group.
  bool Act(int64_t now) {
    if (stop_ == Stop::kNone && cancelled_.load()) {
      stop_ = Stop::kCancel;
      Terminate(now);
    }
    if (stop_ == Stop::kNone && now >= timeout_at_) {
      stop_ = Stop::kTimeout;
      Terminate(now);
    }
    if (leader_exited_ && pipe_open_) Terminate(now);  // descendants still hold the pipe
    if (term_sent_ms_ >= 0 && !kill_sent_ && now >= term_sent_ms_ + command_.kill_grace_ms) {
      ::kill(-pid_, SIGKILL);
      if (cgroup_ != nullptr) cgroup_->Kill();
      kill_sent_ = true;
    }
    if (kill_sent_ && leader_exited_ && pipe_open_) {
      // Take what was written and stop reading.
      ReadPipe(now);
      ClosePipe();
      return false;
    }
    if (buffer_since_ms_ >= 0 && now >= buffer_since_ms_ + kChunkFlushMs) Flush();
    return true;
  }

  // Waits for output, the leader's exit, a cancel or the next timer, and takes what came.
  void Wait(int64_t now) {
    int64_t wake_at = kNever;
    if (buffer_since_ms_ >= 0) wake_at = std::min(wake_at, buffer_since_ms_ + kChunkFlushMs);
    if (stop_ == Stop::kNone) wake_at = std::min(wake_at, timeout_at_);
    if (term_sent_ms_ >= 0 && !kill_sent_) {
      wake_at = std::min(wake_at, term_sent_ms_ + command_.kill_grace_ms);
    }
    if (pidfd_.get() < 0 && !leader_exited_) wake_at = std::min(wake_at, now + 20);

    struct pollfd fds[3];
    int nfds = 0;
    int out_idx = -1, pid_idx = -1;
    if (pipe_open_) {
      out_idx = nfds;
      fds[nfds++] = {out_.get(), POLLIN, 0};
    }
    if (pidfd_.get() >= 0 && !leader_exited_) {
      pid_idx = nfds;
      fds[nfds++] = {pidfd_.get(), POLLIN, 0};
    }
    if (stop_ == Stop::kNone) fds[nfds++] = {cancel_fd_, POLLIN, 0};
    const int timeout =
        wake_at == kNever ? -1 : static_cast<int>(std::clamp<int64_t>(wake_at - now, 0, 60'000));
    const int ready = ::poll(fds, nfds, timeout);
    if (ready < 0 && errno != EINTR) {
      FARM_LOG(ERROR) << "poll: " << ErrnoText(errno);
    }
    if (ready > 0 && out_idx >= 0 && fds[out_idx].revents != 0) ReadPipe(MonoMs());
    if (pid_idx < 0 || (ready > 0 && fds[pid_idx].revents != 0)) CheckLeader();
  }

  void Flush() {
    if (buffer_.empty()) return;
    sink_(offset_, buffer_);
    offset_ += static_cast<int64_t>(buffer_.size());
    buffer_.clear();
    buffer_since_ms_ = -1;
  }

  void CheckLeader() {
    if (leader_exited_) return;
    siginfo_t info;
    std::memset(&info, 0, sizeof(info));
    if (::waitid(P_PID, pid_, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid_) {
      leader_exited_ = true;
      leader_ = info;
    }
  }

  void Terminate(int64_t now) {
    if (term_sent_ms_ < 0) {
      ::kill(-pid_, SIGTERM);
      if (cgroup_ != nullptr) cgroup_->Signal(SIGTERM);
      term_sent_ms_ = now;
    }
  }

  void ClosePipe() {
    pipe_open_ = false;
    out_.Reset();
  }

  // Reads what the pipe holds, up to a bound so that timers are still checked against a
  // writer that never pauses.
  void ReadPipe(int64_t now) {
    for (int i = 0; i < 16 && pipe_open_; ++i) {
      const size_t room = kMaxChunkBytes - buffer_.size();
      const size_t old_size = buffer_.size();
      buffer_.resize(old_size + room);
      const ssize_t got = ::read(out_.get(), buffer_.data() + old_size, room);
      buffer_.resize(old_size + (got > 0 ? got : 0));
      if (got > 0) {
        if (buffer_since_ms_ < 0) buffer_since_ms_ = now;
        if (static_cast<int64_t>(buffer_.size()) >= kMaxChunkBytes) Flush();
        continue;
      }
      if (got == 0) {
        ClosePipe();
      } else if (errno != EINTR && errno != EAGAIN) {
        FARM_LOG(WARNING) << "reading step output: " << ErrnoText(errno);
        ClosePipe();
      }
      if (got < 0 && errno == EINTR) continue;
      return;
    }
  }

  const StepCommand& command_;
  const pid_t pid_;
  const Cgroup* const cgroup_;  // the step's, when it has one
  common::UniqueFd out_;
  const common::UniqueFd pidfd_;
  const int cancel_fd_;
  const std::atomic<bool>& cancelled_;
  const StepRunner::OutputSink& sink_;
  const int64_t timeout_at_;
  Stop stop_ = Stop::kNone;
  int64_t term_sent_ms_ = -1;
  bool kill_sent_ = false;
  bool pipe_open_ = true;
  bool leader_exited_ = false;
  siginfo_t leader_;
  std::string buffer_;
  int64_t buffer_since_ms_ = -1;
  int64_t offset_ = 0;
};

// A step that started: its process (and process group) id, the read end of its output pipe,
// and when it started (MonoMs).
struct StartedStep {
  pid_t pid = 0;
  common::UniqueFd out;
  int64_t start_ms = 0;
};

// Starts the child. vfork, not fork: the agent has many threads and mappings, and copying its
// page tables made fork the largest part of starting a step (about 5 ms of 17 here). The child
// gets its own signal handler table (no CLONE_SIGHAND), so resetting dispositions in it is
// safe. A function of its own (never inlined), so that no local of the caller lives across
// vfork(); the child never returns from it.
__attribute__((noinline)) pid_t VforkExec(const ChildSetup& setup) {
  const pid_t pid = ::vfork();
  if (pid == 0) ExecChild(setup);
  return pid;
}

// Why the child could not exec, from what it reported.
std::string ExecFailure(const ChildError& failed, const StepCommand& command,
                        const std::string& program, const StepSupervisor* supervisor) {
  switch (failed.stage) {
    case 1:
      return absl::StrCat("cannot enter ", command.cwd, ": ", ErrnoText(failed.err));
    case 2:
      return absl::StrCat("cannot execute ", program, ": ", ErrnoText(failed.err));
    case 4:
      return absl::StrCat(
          "the agent's step supervisor (pid ", supervisor->pid(),
          ") is gone, so the step could outlive the agent: ", ErrnoText(failed.err));
    case 5:
      return absl::StrCat("cannot isolate the step (", failed.what != nullptr ? failed.what : "?",
                          "): ", ErrnoText(failed.err));
    default:
      return absl::StrCat("cannot set up stdio: ", ErrnoText(failed.err));
  }
}

// Reaps the step's leader (a zombie by now, or about to be), unlisting its group first.
void Reap(pid_t pid, const StepSupervisor* supervisor) {
  if (supervisor != nullptr) supervisor->Untrack(pid);  // before the reap: see Untrack()
  int status;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

// Starts `command` (its resolved `program`) as the leader of a new process group, listed with
// `supervisor` (may be null), isolated by `isolation`. Returns it with the read end of its
// output pipe, or, when it did not start, a pid of 0 and the reason in `error`.
StartedStep StartStep(const StepCommand& command, const std::string& program,
                      const StepSupervisor* supervisor, const ChildIsolation& isolation,
                      std::string* error) {
  std::vector<char*> argv;
  for (const std::string& a : command.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const std::string& e : command.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  // O_CLOEXEC everywhere: other slots fork concurrently, and a leaked write end would keep
  // another step's pipe from ever reaching EOF.
  int out_fds[2];
  int status_fds[2];
  if (::pipe2(out_fds, O_CLOEXEC) != 0) {
    *error = absl::StrCat("pipe: ", ErrnoText(errno));
    return StartedStep();
  }
  common::UniqueFd out_r(out_fds[0]), out_w(out_fds[1]);
  if (::pipe2(status_fds, O_CLOEXEC) != 0) {
    *error = absl::StrCat("pipe: ", ErrnoText(errno));
    return StartedStep();
  }
  common::UniqueFd status_r(status_fds[0]), status_w(status_fds[1]);
  common::UniqueFd dev_null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (dev_null.get() < 0) {
    *error = absl::StrCat("open /dev/null: ", ErrnoText(errno));
    return StartedStep();
  }
  const ChildSetup setup{program.c_str(), argv.data(), envp.data(),    command.cwd.c_str(),
                         dev_null.get(),  out_w.get(), status_w.get(), ::getpid(),
                         supervisor,      isolation};

  const pid_t pid = VforkExec(setup);
  if (pid < 0) {
    *error = absl::StrCat("vfork: ", ErrnoText(errno));
    return StartedStep();
  }
  if (pid == 0) ExecChild(setup);

  // The parent. setpgid here as well so that the group exists before we might signal it.
  ::setpgid(pid, pid);
  const int64_t start_ms = MonoMs();
  out_w.Reset();
  status_w.Reset();
  ChildError failed{0, 0, nullptr};
  ssize_t n;
  do {
    n = ::read(status_r.get(), &failed, sizeof(failed));
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(sizeof(failed))) return {pid, std::move(out_r), start_ms};
  Reap(pid, supervisor);
  *error = ExecFailure(failed, command, program, supervisor);
  return StartedStep();
}

}  // namespace

StepRunner::StepRunner(const StepSupervisor* supervisor, const Isolation* isolation)
    : supervisor_(supervisor), isolation_(isolation) {
  cancel_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  FARM_CHECK(cancel_fd_ >= 0) << "eventfd: " << ErrnoText(errno);
}

StepRunner::~StepRunner() { ::close(cancel_fd_); }

void StepRunner::Cancel() {
  cancelled_.store(true);
  const uint64_t one = 1;
  (void)!::write(cancel_fd_, &one, sizeof(one));
}

StepOutcome StepRunner::Run(const StepCommand& command, const OutputSink& sink,
                            const std::function<void()>& on_started) {
  FARM_CHECK(!command.argv.empty());
  FARM_CHECK(command.kill_grace_ms > 0);
  StepOutcome outcome;
  if (cancelled_.load()) {
    outcome.kind = StepOutcome::Kind::kCancelled;
    outcome.message = "cancelled before it started";
    return outcome;
  }
  const std::string program = ResolveProgram(command);
  if (program.empty()) {
    outcome.message = absl::StrCat(command.argv[0], ": command not found");
    return outcome;
  }
  // Its own cgroup when the agent can: what leaves the process group stays in it.
  std::unique_ptr<Cgroup> cgroup = isolation_ != nullptr ? isolation_->NewCgroup() : nullptr;
  const ChildIsolation child =
      isolation_ != nullptr ? isolation_->ForChild(cgroup.get()) : ChildIsolation();
  StartedStep started = StartStep(command, program, supervisor_, child, &outcome.message);
  if (started.pid <= 0) return outcome;  // kFailedToStart
  const pid_t pid = started.pid;
  outcome.pid = pid;
  if (on_started) on_started();

  StepWatch watch(command, pid, cgroup.get(), std::move(started.out), started.start_ms, cancel_fd_,
                  cancelled_, sink);
  watch.Run();
  // Background processes of the step do not outlive it.
  ::kill(-pid, SIGKILL);
  if (cgroup != nullptr) cgroup->Kill();
  Reap(pid, supervisor_);
  cgroup.reset();  // waits until it is empty, and removes it
  outcome.duration_ms = MonoMs() - started.start_ms;
  outcome.output_bytes = watch.output_bytes();

  const siginfo_t& leader = watch.leader();
  if (leader.si_code == CLD_EXITED) {
    outcome.exit_code = leader.si_status;
  } else {
    outcome.signal = leader.si_status;
  }
  switch (watch.stop()) {
    case StepWatch::Stop::kTimeout:
      outcome.kind = StepOutcome::Kind::kTimedOut;
      break;
    case StepWatch::Stop::kCancel:
      outcome.kind = StepOutcome::Kind::kCancelled;
      break;
    case StepWatch::Stop::kNone:
      outcome.kind =
          leader.si_code == CLD_EXITED ? StepOutcome::Kind::kExited : StepOutcome::Kind::kSignaled;
  }
  return outcome;
}

}  // namespace farm::agent
