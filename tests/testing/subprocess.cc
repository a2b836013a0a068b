#include "tests/testing/subprocess.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/testing/temp_dir.h"

extern char** environ;

namespace farm::testing {
namespace {

absl::Status ErrnoToStatus(int err, absl::string_view what) {
  std::string message = absl::StrCat(what, ": ", strerror(err));
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    default:
      return absl::InternalError(message);
  }
}

int DecodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Opens `path` for the child's output (or /dev/null), close-on-exec in this process; dup2 in the
// child clears the flag on the copy.
absl::StatusOr<int> OpenOutput(const std::string& path) {
  const char* p = path.empty() ? "/dev/null" : path.c_str();
  int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("open ", p));
  return fd;
}

// Writes errno to the exec-status pipe and exits; only async-signal-safe calls (we are in a
// forked child of a multi-threaded process).
[[noreturn]] void ChildFail(int pipe_fd) {
  int err = errno;
  ssize_t ignored = write(pipe_fd, &err, sizeof(err));
  (void)ignored;
  _exit(127);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Subprocess>> Subprocess::Start(SubprocessOptions options) {
  if (options.binary.empty()) return absl::InvalidArgumentError("Subprocess: no binary");

  // Everything the child needs is built before fork: after it, only async-signal-safe calls.
  std::vector<std::string> argv_storage;
  argv_storage.push_back(options.binary);
  for (const std::string& a : options.args) argv_storage.push_back(a);
  std::vector<char*> argv;
  for (std::string& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);

  absl::flat_hash_set<std::string> overridden;
  for (const auto& [k, v] : options.env) overridden.insert(k);
  std::vector<std::string> env_storage;
  for (char** e = environ; *e != nullptr; ++e) {
    absl::string_view entry(*e);
    absl::string_view key = entry.substr(0, entry.find('='));
    if (!overridden.contains(key)) env_storage.emplace_back(entry);
  }
  for (const auto& [k, v] : options.env) env_storage.push_back(absl::StrCat(k, "=", v));
  std::vector<char*> envp;
  for (std::string& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);

  const char* in_path = options.stdin_path.empty() ? "/dev/null" : options.stdin_path.c_str();
  int in_fd = open(in_path, O_RDONLY | O_CLOEXEC);
  if (in_fd < 0) return ErrnoToStatus(errno, absl::StrCat("open ", in_path));
  absl::StatusOr<int> out_fd = OpenOutput(options.stdout_path);
  absl::StatusOr<int> err_fd = OpenOutput(options.stderr_path);
  int exec_pipe[2] = {-1, -1};
  auto close_all = [&] {
    for (int fd : {in_fd, out_fd.value_or(-1), err_fd.value_or(-1), exec_pipe[0], exec_pipe[1]}) {
      if (fd >= 0) close(fd);
    }
  };
  if (!out_fd.ok() || !err_fd.ok()) {
    close_all();
    return out_fd.ok() ? err_fd.status() : out_fd.status();
  }
  if (pipe2(exec_pipe, O_CLOEXEC) != 0) {
    int err = errno;
    close_all();
    return ErrnoToStatus(err, "pipe2");
  }

  const pid_t parent = getpid();
  const bool new_group = options.new_process_group;
  const char* cwd = options.cwd.empty() ? nullptr : options.cwd.c_str();
  pid_t pid = fork();
  if (pid < 0) {
    int err = errno;
    close_all();
    return ErrnoToStatus(err, "fork");
  }
  if (pid == 0) {
    if (new_group) setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the parent died before prctl took effect
    // Dispositions set to "ignore" (gRPC ignores SIGPIPE) and blocked signals survive exec;
    // the farm binaries must start with the defaults, as they would from a shell.
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig) sigaction(sig, &dfl, nullptr);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    if (dup2(in_fd, 0) < 0 || dup2(*out_fd, 1) < 0 || dup2(*err_fd, 2) < 0) {
      ChildFail(exec_pipe[1]);
    }
    if (cwd != nullptr && chdir(cwd) != 0) ChildFail(exec_pipe[1]);
    execve(argv[0], argv.data(), envp.data());
    ChildFail(exec_pipe[1]);
  }

  close(exec_pipe[1]);
  exec_pipe[1] = -1;
  int child_errno = 0;
  ssize_t n;
  do {
    n = read(exec_pipe[0], &child_errno, sizeof(child_errno));
  } while (n < 0 && errno == EINTR);
  close_all();
  if (n > 0) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return ErrnoToStatus(child_errno, absl::StrCat("exec ", options.binary));
  }
  return std::unique_ptr<Subprocess>(new Subprocess(std::move(options), pid));
}

Subprocess::~Subprocess() {
  if (!TryReap()) (void)Kill9();
}

bool Subprocess::TryReap() {
  if (reaped_) return true;
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    reaped_ = true;
    result_ = DecodeWaitStatus(status);
  } else if (r < 0) {
    // ECHILD: someone else reaped it; nothing more to learn.
    reaped_ = true;
  }
  return reaped_;
}

absl::Status Subprocess::Signal(int sig) {
  if (TryReap()) {
    return absl::FailedPreconditionError(absl::StrCat("process ", pid_, " has exited"));
  }
  if (kill(pid_, sig) != 0) return ErrnoToStatus(errno, absl::StrCat("kill ", pid_));
  return absl::OkStatus();
}

absl::Status Subprocess::Kill9() {
  if (reaped_) return absl::OkStatus();
  // Descendants first: once the child dies they are re-parented and can no longer be found.
  kill(pid_, SIGSTOP);  // so that it forks no more while we look
  for (pid_t d : Descendants(pid_)) kill(d, SIGKILL);
  if (options_.new_process_group) kill(-pid_, SIGKILL);
  kill(pid_, SIGKILL);
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &status, 0);
  } while (r < 0 && errno == EINTR);
  reaped_ = true;
  if (r == pid_) result_ = DecodeWaitStatus(status);
  return absl::OkStatus();
}

absl::StatusOr<int> Subprocess::Wait(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  // waitpid has no timeout; poll it. The interval bounds the latency, not the correctness.
  while (!TryReap()) {
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(options_.binary, " (pid ", pid_,
                                                      ") still running after ",
                                                      absl::FormatDuration(timeout)));
    }
    absl::SleepFor(absl::Milliseconds(2));
  }
  return result_;
}

absl::StatusOr<int> Subprocess::Terminate(absl::Duration timeout) {
  if (!TryReap()) (void)Signal(SIGTERM);
  absl::StatusOr<int> result = Wait(timeout);
  if (!result.ok()) {
    (void)Kill9();
    return result.status();
  }
  return result;
}

bool Subprocess::IsRunning() { return !TryReap(); }

bool IsProcessAlive(pid_t pid) {
  if (pid <= 0) return false;
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  if (!stat) return kill(pid, 0) == 0 || errno == EPERM;
  std::stringstream buffer;
  buffer << stat.rdbuf();
  const std::string text = buffer.str();
  // "pid (comm) S ...": comm may contain spaces and parentheses, the state follows the last ')'.
  size_t close = text.rfind(')');
  if (close == std::string::npos || close + 2 >= text.size()) return false;
  char state = text[close + 2];
  return state != 'Z' && state != 'X' && state != 'x';
}

std::vector<pid_t> Descendants(pid_t pid) {
  std::vector<std::pair<pid_t, pid_t>> parent_of;  // (pid, ppid)
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    // A process may exit between the listing and the read, which then fails with ESRCH; the
    // stream form of the read swallows that (an istreambuf_iterator would throw).
    const std::string text = ReadFileOrEmpty((it->path() / "stat").string());
    size_t close = text.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(text.substr(close + 1));
    std::string state;
    pid_t ppid = 0;
    if (fields >> state >> ppid) parent_of.emplace_back(std::stoi(name), ppid);
  }
  std::vector<pid_t> result;
  std::vector<pid_t> frontier = {pid};
  while (!frontier.empty()) {
    pid_t p = frontier.back();
    frontier.pop_back();
    for (const auto& [child, parent] : parent_of) {
      if (parent == p) {
        result.push_back(child);
        frontier.push_back(child);
      }
    }
  }
  return result;
}

absl::StatusOr<std::string> WaitForAddressFile(Subprocess& child, const std::string& path,
                                               absl::Duration timeout,
                                               const std::string& log_path) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (!child.IsRunning()) {
      absl::StatusOr<int> code = child.Wait(absl::ZeroDuration());
      return absl::UnavailableError(absl::StrCat(child.options().binary, " exited (",
                                                 code.ok() ? *code : -1, ") before serving; log:\n",
                                                 TailLines(ReadFileOrEmpty(log_path), 30)));
    }
    const std::string text = ReadFileOrEmpty(path);
    if (absl::EndsWith(text, "\n")) {
      std::string address(absl::StripAsciiWhitespace(text));
      if (!address.empty()) return address;
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("timed out after ", absl::FormatDuration(timeout), " waiting for ", path,
                       "; log:\n", TailLines(ReadFileOrEmpty(log_path), 30)));
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
}

}  // namespace farm::testing
