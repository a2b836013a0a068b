#include "agent/step_supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace farm::agent {
namespace {

// One datagram on the socket pair. SOCK_SEQPACKET keeps records whole and each send is atomic,
// so threads (and vfork children) may send at once without a lock.
enum : int32_t { kTrack = 1, kUntrack = 2, kCgroup = 3 };
struct Record {
  int32_t op;
  int32_t pgid;
};

// Groups alive at once: one per slot (at most 256), with ample room.
constexpr int kCapacity = 4096;

// Cgroup directories guarded at once (one per agent, normally).
constexpr int kMaxCgroups = 8;

// How long the destructor waits for the supervisor to exit before it SIGKILLs it.
constexpr int kExitWaitMs = 5'000;

// Async-signal-safe decimal formatting for the supervisor's one message.
char* AppendNumber(char* out, int value) {
  char digits[16];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value > 0 && n < 16);
  while (n > 0) *out++ = digits[--n];
  return out;
}

char* AppendText(char* out, const char* text) {
  while (*text != '\0') *out++ = *text++;
  return out;
}

void CloseFrom(int first) {
#ifdef SYS_close_range
  if (::syscall(SYS_close_range, first, ~0U, 0) == 0) return;
#endif
  const long max_fd = ::sysconf(_SC_OPEN_MAX);
  for (long fd = first; fd < (max_fd > 0 ? max_fd : 1024); ++fd) ::close(static_cast<int>(fd));
}

// recv() of one record, and of the descriptor that came with it (SCM_RIGHTS) into `*passed`.
ssize_t ReceiveRecord(int fd, Record* record, int* passed) {
  struct iovec iov = {record, sizeof(*record)};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  struct msghdr msg;
  std::memset(&msg, 0, sizeof(msg));
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  const ssize_t n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  if (n <= 0) return n;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
        c->cmsg_len == CMSG_LEN(sizeof(int))) {
      std::memcpy(passed, CMSG_DATA(c), sizeof(int));
    }
  }
  return n;
}

// The supervisor process. It was forked, possibly from a multi-threaded process, so it makes
// system calls only: no allocation, no locks, no logging library.
[[noreturn]] void SupervisorMain(int fd) {
  ::setpgid(0, 0);
  ::prctl(PR_SET_NAME, "farm-step-guard");
  struct sigaction ignore;
  std::memset(&ignore, 0, sizeof(ignore));
  ignore.sa_handler = SIG_IGN;
  for (int sig :
       {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGUSR1, SIGUSR2, SIGTSTP, SIGTTIN, SIGTTOU}) {
    ::sigaction(sig, &ignore, nullptr);
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  // Keep stdio (stderr gets the one message) and the socket; drop every other descriptor,
  // above all the copy of the agent's end, or EOF would never come.
  if (fd != 3) {
    ::dup2(fd, 3);
    fd = 3;
  }
  CloseFrom(4);

  pid_t groups[kCapacity];
  int count = 0;
  int cgroups[kMaxCgroups];
  int cgroup_count = 0;
  while (true) {
    Record record;
    int passed = -1;
    const ssize_t n = ReceiveRecord(fd, &record, &passed);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EOF: every copy of the agent's end is closed; an error means the same
    if (passed >= 0) {
      if (record.op == kCgroup && cgroup_count < kMaxCgroups) {
        cgroups[cgroup_count++] = passed;
      } else {
        ::close(passed);
      }
      continue;
    }
    if (n != static_cast<ssize_t>(sizeof(record))) continue;
    // Never 0 (our own group) or 1 (kill(-1) is every process we may signal).
    if (record.pgid <= 1) continue;
    if (record.op == kTrack) {
      if (count < kCapacity) {
        groups[count++] = record.pgid;
      } else {
        ::kill(-record.pgid, SIGKILL);  // cannot guard it, so it does not run
      }
    } else if (record.op == kUntrack) {
      for (int i = 0; i < count; ++i) {
        if (groups[i] == record.pgid) {
          groups[i] = groups[--count];
          break;
        }
      }
    }
  }
  int killed = 0;
  for (int i = 0; i < count; ++i) {
    if (::kill(-groups[i], SIGKILL) == 0) ++killed;
  }
  // What left its process group is still in its cgroup.
  for (int i = 0; i < cgroup_count; ++i) {
    const int kill_fd = ::openat(cgroups[i], "cgroup.kill", O_WRONLY | O_CLOEXEC);
    if (kill_fd >= 0) {
      (void)!::write(kill_fd, "1", 1);
      ::close(kill_fd);
    }
  }
  if (killed > 0) {
    char message[128];
    char* end = AppendText(message, "farm-agent step supervisor: the agent is gone; killed ");
    end = AppendNumber(end, killed);
    end = AppendText(end, " step process group(s)\n");
    (void)!::write(2, message, static_cast<size_t>(end - message));
  }
  ::_exit(0);
}

}  // namespace

absl::StatusOr<std::unique_ptr<StepSupervisor>> StepSupervisor::Start() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) {
    return absl::InternalError(absl::StrCat("step supervisor: socketpair: ", std::strerror(errno)));
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    return absl::InternalError(absl::StrCat("step supervisor: fork: ", std::strerror(err)));
  }
  if (pid == 0) {
    ::close(fds[0]);
    SupervisorMain(fds[1]);
  }
  ::close(fds[1]);
  return std::unique_ptr<StepSupervisor>(new StepSupervisor(pid, fds[0]));
}

StepSupervisor::~StepSupervisor() {
  ::close(fd_);
  // It exits as soon as it reads EOF; bounded all the same, so that a supervisor someone has
  // stopped cannot hang the agent's exit.
#ifdef SYS_pidfd_open
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
#else
  const int pidfd = -1;  // no bound: wait as long as it takes
#endif
  if (pidfd >= 0) {
    struct pollfd p = {pidfd, POLLIN, 0};
    int ready;
    do {
      ready = ::poll(&p, 1, kExitWaitMs);
    } while (ready < 0 && errno == EINTR);
    ::close(pidfd);
    if (ready == 0) ::kill(pid_, SIGKILL);
  }
  int status;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
}

bool StepSupervisor::TrackSelf() const {
  const Record record{kTrack, static_cast<int32_t>(::getpgrp())};
  ssize_t n;
  do {
    n = ::send(fd_, &record, sizeof(record), MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(sizeof(record));
}

bool StepSupervisor::GuardCgroup(int dir_fd) const {
  Record record{kCgroup, 0};
  struct iovec iov = {&record, sizeof(record)};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  std::memset(control, 0, sizeof(control));
  struct msghdr msg;
  std::memset(&msg, 0, sizeof(msg));
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &dir_fd, sizeof(int));
  ssize_t n;
  do {
    n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(sizeof(record));
}

void StepSupervisor::Untrack(pid_t pgid) const {
  const Record record{kUntrack, static_cast<int32_t>(pgid)};
  ssize_t n;
  do {
    n = ::send(fd_, &record, sizeof(record), MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
}

bool StepSupervisor::Alive() const {
  siginfo_t info;
  std::memset(&info, 0, sizeof(info));
  if (::waitid(P_PID, pid_, &info, WEXITED | WNOHANG | WNOWAIT) != 0) return false;
  return info.si_pid != pid_;
}

}  // namespace farm::agent
