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
#include <chrono>
#include <cstring>
#include <limits>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/logging.h"
#include "common/unique_fd.h"

namespace farm::agent {
namespace {

int64_t MonoMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string ErrnoText(int err) {
  char buf[256];
  // GNU strerror_r: returns a pointer that may or may not be `buf`.
  return strerror_r(err, buf, sizeof(buf));
}

// What the child reports through the exec-status pipe when it cannot exec.
struct ChildError {
  int stage;  // 1: chdir, 2: execve, 3: dup2, 4: listing the group with the supervisor
  int err;
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

}  // namespace

StepRunner::StepRunner(const StepSupervisor* supervisor) : supervisor_(supervisor) {
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

  // Everything the child needs is prepared before vfork(): between vfork and exec the child
  // shares our memory and only makes system calls (no allocation, no locks, no stores the
  // parent relies on except `error`, which it writes before the parent resumes).
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
    outcome.message = absl::StrCat("pipe: ", ErrnoText(errno));
    return outcome;
  }
  common::UniqueFd out_r(out_fds[0]), out_w(out_fds[1]);
  if (::pipe2(status_fds, O_CLOEXEC) != 0) {
    outcome.message = absl::StrCat("pipe: ", ErrnoText(errno));
    return outcome;
  }
  common::UniqueFd status_r(status_fds[0]), status_w(status_fds[1]);
  common::UniqueFd dev_null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (dev_null.get() < 0) {
    outcome.message = absl::StrCat("open /dev/null: ", ErrnoText(errno));
    return outcome;
  }
  const pid_t parent = ::getpid();
  const StepSupervisor* const supervisor = supervisor_;
  const char* cwd = command.cwd.c_str();
  const char* path = program.c_str();

  // vfork, not fork: the agent has many threads and mappings, and copying its page tables
  // made fork the largest part of starting a step (about 5 ms of 17 here). The child gets its
  // own signal handler table (no CLONE_SIGHAND), so resetting dispositions below is safe.
  const pid_t pid = ::vfork();
  if (pid < 0) {
    outcome.message = absl::StrCat("vfork: ", ErrnoText(errno));
    return outcome;
  }
  if (pid == 0) {
    // The child. Async-signal-safe calls only.
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the agent died before prctl took effect
    // Listed before the step runs a single instruction, so there is no moment in which the
    // agent could die and leave the group unguarded. (Until exec this process also holds a
    // copy of the agent's end, so the supervisor cannot read EOF before this record.)
    if (supervisor != nullptr && !supervisor->TrackSelf()) {
      const ChildError untracked{4, errno};
      (void)!::write(status_w.get(), &untracked, sizeof(untracked));
      ::_exit(127);
    }
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
    ChildError error{0, 0};
    if (::dup2(dev_null.get(), 0) < 0 || ::dup2(out_w.get(), 1) < 0 || ::dup2(out_w.get(), 2) < 0) {
      error = {3, errno};
    } else if (cwd[0] != '\0' && ::chdir(cwd) != 0) {
      error = {1, errno};
    } else {
      ::execve(path, argv.data(), envp.data());
      error = {2, errno};
    }
    (void)!::write(status_w.get(), &error, sizeof(error));
    ::_exit(127);
  }

  // The parent. setpgid here as well so that the group exists before we might signal it.
  ::setpgid(pid, pid);
  const int64_t start_ms = MonoMs();
  outcome.pid = pid;
  out_w.Reset();
  status_w.Reset();
  ChildError error{0, 0};
  ssize_t n;
  do {
    n = ::read(status_r.get(), &error, sizeof(error));
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof(error))) {
    if (supervisor_ != nullptr) supervisor_->Untrack(pid);  // before the reap: see Untrack()
    int ignored;
    while (::waitpid(pid, &ignored, 0) < 0 && errno == EINTR) {
    }
    outcome.pid = 0;
    switch (error.stage) {
      case 1:
        outcome.message = absl::StrCat("cannot enter ", command.cwd, ": ", ErrnoText(error.err));
        break;
      case 2:
        outcome.message = absl::StrCat("cannot execute ", program, ": ", ErrnoText(error.err));
        break;
      case 4:
        outcome.message =
            absl::StrCat("the agent's step supervisor (pid ", supervisor_->pid(),
                         ") is gone, so the step could outlive the agent: ", ErrnoText(error.err));
        break;
      default:
        outcome.message = absl::StrCat("cannot set up stdio: ", ErrnoText(error.err));
    }
    return outcome;
  }
  status_r.Reset();
  if (on_started) on_started();

  ::fcntl(out_r.get(), F_SETFL, ::fcntl(out_r.get(), F_GETFL) | O_NONBLOCK);
  common::UniqueFd pidfd(PidfdOpen(pid));  // readable when the child exits; -1 → poll every 20 ms

  enum class Stop { kNone, kTimeout, kCancel };
  Stop stop = Stop::kNone;
  const int64_t kNever = std::numeric_limits<int64_t>::max();
  const int64_t timeout_at = command.timeout_ms > 0 ? start_ms + command.timeout_ms : kNever;
  int64_t term_sent_ms = -1;
  bool kill_sent = false;
  bool pipe_open = true;
  bool leader_exited = false;
  siginfo_t leader_info;
  std::memset(&leader_info, 0, sizeof(leader_info));
  std::string buffer;
  buffer.reserve(kMaxChunkBytes);
  int64_t buffer_since_ms = -1;
  int64_t offset = 0;

  auto flush = [&]() {
    if (buffer.empty()) return;
    sink(offset, buffer);
    offset += static_cast<int64_t>(buffer.size());
    buffer.clear();
    buffer_since_ms = -1;
  };
  // The leader is reaped only at the very end: while it is a zombie its pid cannot be reused,
  // so signalling -pid can never hit an unrelated process group.
  auto check_leader = [&]() {
    if (leader_exited) return;
    siginfo_t info;
    std::memset(&info, 0, sizeof(info));
    if (::waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid) {
      leader_exited = true;
      leader_info = info;
    }
  };
  auto terminate = [&](int64_t now) {
    if (term_sent_ms < 0) {
      ::kill(-pid, SIGTERM);
      term_sent_ms = now;
    }
  };
  // Reads what the pipe holds, up to a bound so that timers are still checked against a
  // writer that never pauses.
  auto read_pipe = [&](int64_t now) {
    for (int i = 0; i < 16 && pipe_open; ++i) {
      char* dst;
      const size_t room = kMaxChunkBytes - buffer.size();
      const size_t old_size = buffer.size();
      buffer.resize(old_size + room);
      dst = buffer.data() + old_size;
      const ssize_t got = ::read(out_r.get(), dst, room);
      buffer.resize(old_size + (got > 0 ? got : 0));
      if (got > 0) {
        if (buffer_since_ms < 0) buffer_since_ms = now;
        if (static_cast<int64_t>(buffer.size()) >= kMaxChunkBytes) flush();
        continue;
      }
      if (got == 0) {
        pipe_open = false;
        out_r.Reset();
      } else if (errno != EINTR && errno != EAGAIN) {
        FARM_LOG(WARNING) << "reading step output: " << ErrnoText(errno);
        pipe_open = false;
        out_r.Reset();
      }
      if (got < 0 && errno == EINTR) continue;
      return;
    }
  };

  while (pipe_open || !leader_exited) {
    int64_t now = MonoMs();
    if (stop == Stop::kNone && cancelled_.load()) {
      stop = Stop::kCancel;
      terminate(now);
    }
    if (stop == Stop::kNone && now >= timeout_at) {
      stop = Stop::kTimeout;
      terminate(now);
    }
    if (leader_exited && pipe_open) terminate(now);  // descendants still hold the pipe
    if (term_sent_ms >= 0 && !kill_sent && now >= term_sent_ms + command.kill_grace_ms) {
      ::kill(-pid, SIGKILL);
      kill_sent = true;
    }
    if (kill_sent && leader_exited && pipe_open) {
      // Whatever still holds the pipe escaped the process group; take what was written and
      // stop reading.
      read_pipe(now);
      pipe_open = false;
      out_r.Reset();
      break;
    }
    if (buffer_since_ms >= 0 && now >= buffer_since_ms + kChunkFlushMs) flush();

    int64_t wake_at = kNever;
    if (buffer_since_ms >= 0) wake_at = std::min(wake_at, buffer_since_ms + kChunkFlushMs);
    if (stop == Stop::kNone) wake_at = std::min(wake_at, timeout_at);
    if (term_sent_ms >= 0 && !kill_sent) {
      wake_at = std::min(wake_at, term_sent_ms + command.kill_grace_ms);
    }
    if (pidfd.get() < 0 && !leader_exited) wake_at = std::min(wake_at, now + 20);

    struct pollfd fds[3];
    int nfds = 0;
    int out_idx = -1, pid_idx = -1;
    if (pipe_open) {
      out_idx = nfds;
      fds[nfds++] = {out_r.get(), POLLIN, 0};
    }
    if (pidfd.get() >= 0 && !leader_exited) {
      pid_idx = nfds;
      fds[nfds++] = {pidfd.get(), POLLIN, 0};
    }
    if (stop == Stop::kNone) fds[nfds++] = {cancel_fd_, POLLIN, 0};
    const int timeout =
        wake_at == kNever ? -1 : static_cast<int>(std::clamp<int64_t>(wake_at - now, 0, 60'000));
    const int ready = ::poll(fds, nfds, timeout);
    if (ready < 0 && errno != EINTR) {
      FARM_LOG(ERROR) << "poll: " << ErrnoText(errno);
    }
    now = MonoMs();
    if (ready > 0 && out_idx >= 0 && fds[out_idx].revents != 0) read_pipe(now);
    if (pid_idx < 0 || (ready > 0 && fds[pid_idx].revents != 0)) check_leader();
  }
  flush();
  // Background processes of the step do not outlive it.
  ::kill(-pid, SIGKILL);
  if (supervisor_ != nullptr) supervisor_->Untrack(pid);  // before the reap: see Untrack()
  int wait_status = 0;
  while (::waitpid(pid, &wait_status, 0) < 0 && errno == EINTR) {
  }
  outcome.duration_ms = MonoMs() - start_ms;
  outcome.output_bytes = offset;

  if (leader_info.si_code == CLD_EXITED) {
    outcome.exit_code = leader_info.si_status;
  } else {
    outcome.signal = leader_info.si_status;
  }
  switch (stop) {
    case Stop::kTimeout:
      outcome.kind = StepOutcome::Kind::kTimedOut;
      break;
    case Stop::kCancel:
      outcome.kind = StepOutcome::Kind::kCancelled;
      break;
    case Stop::kNone:
      outcome.kind = leader_info.si_code == CLD_EXITED ? StepOutcome::Kind::kExited
                                                       : StepOutcome::Kind::kSignaled;
  }
  return outcome;
}

}  // namespace farm::agent
