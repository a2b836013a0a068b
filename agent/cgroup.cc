#include "agent/cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/logging.h"
#include "common/posix_io.h"
#include "common/status_macros.h"

namespace farm::agent {
namespace {

constexpr char kTreePrefix[] = "farm-agent-";
// How long a kill may take to empty a cgroup before we give up on removing it.
constexpr int kEmptyWaitMs = 5'000;

absl::StatusOr<std::string> ReadAt(int dir_fd, const char* name) {
  common::UniqueFd fd(::openat(dir_fd, name, O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return common::ErrnoStatus(errno, name);
  std::string text;
  char buf[4096];
  while (true) {
    const ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return common::ErrnoStatus(errno, name);
    if (n == 0) return text;
    text.append(buf, static_cast<size_t>(n));
  }
}

absl::Status WriteAt(int dir_fd, const char* name, absl::string_view text) {
  common::UniqueFd fd(::openat(dir_fd, name, O_WRONLY | O_CLOEXEC));
  if (fd.get() < 0) return common::ErrnoStatus(errno, name);
  return common::WriteAll(fd.get(), text, name);
}

std::vector<pid_t> Members(int dir_fd) {
  std::vector<pid_t> pids;
  absl::StatusOr<std::string> procs = ReadAt(dir_fd, "cgroup.procs");
  if (!procs.ok()) return pids;
  for (absl::string_view line : absl::StrSplit(*procs, '\n', absl::SkipEmpty())) {
    pid_t pid = 0;
    if (absl::SimpleAtoi(line, &pid) && pid > 1) pids.push_back(pid);
  }
  return pids;
}

// "populated 0" in cgroup.events: no live process in the cgroup or below.
bool IsEmpty(int dir_fd) {
  absl::StatusOr<std::string> events = ReadAt(dir_fd, "cgroup.events");
  return events.ok() && absl::StrContains(*events, "populated 0");
}

bool WaitEmpty(int dir_fd, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!IsEmpty(dir_fd)) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// SIGKILLs everything in the cgroup at `dir_fd` and below: cgroup.kill where the kernel has it
// (5.14+), else freeze (no member can fork meanwhile), kill each member, thaw; repeated until
// nothing is left or the bound passes.
void KillAll(int dir_fd) {
  if (WriteAt(dir_fd, "cgroup.kill", "1").ok()) return;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kEmptyWaitMs);
  while (!IsEmpty(dir_fd) && std::chrono::steady_clock::now() < deadline) {
    (void)WriteAt(dir_fd, "cgroup.freeze", "1");
    for (pid_t pid : Members(dir_fd)) ::kill(pid, SIGKILL);
    (void)WriteAt(dir_fd, "cgroup.freeze", "0");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// Kills and removes the cgroup `name` under `parent_fd` and every cgroup below it.
void RemoveTree(int parent_fd, const std::string& name) {
  common::UniqueFd dir(::openat(parent_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() < 0) return;
  KillAll(dir.get());
  WaitEmpty(dir.get(), kEmptyWaitMs);
  if (DIR* d = ::fdopendir(::dup(dir.get())); d != nullptr) {
    std::vector<std::string> children;
    while (const dirent* e = ::readdir(d)) {
      if (e->d_type == DT_DIR && e->d_name[0] != '.') children.emplace_back(e->d_name);
    }
    ::closedir(d);
    for (const std::string& child : children) RemoveTree(dir.get(), child);
  }
  if (::unlinkat(parent_fd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    FARM_LOG(WARNING) << "cannot remove cgroup " << name << ": " << std::strerror(errno);
  }
}

// Kills and removes the trees of agents that died without removing theirs ("farm-agent-<pid>-
// <n>" whose pid no longer exists).
void RemoveLeftovers(int base_fd) {
  DIR* d = ::fdopendir(::dup(base_fd));
  if (d == nullptr) return;
  std::vector<std::string> dead;
  while (const dirent* e = ::readdir(d)) {
    absl::string_view name = e->d_name;
    if (e->d_type != DT_DIR || !absl::ConsumePrefix(&name, kTreePrefix)) continue;
    pid_t pid = 0;
    if (!absl::SimpleAtoi(name.substr(0, name.find('-')), &pid) || pid <= 1) continue;
    if (::kill(pid, 0) != 0 && errno == ESRCH) dead.emplace_back(e->d_name);
  }
  ::closedir(d);
  for (const std::string& name : dead) {
    FARM_LOG(INFO) << "removing the step cgroups of a dead agent: " << name;
    RemoveTree(base_fd, name);
  }
}

// mountinfo escapes blanks in paths as octal ("\040").
std::string Unescape(absl::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 3 < text.size()) {
      const int value = (text[i + 1] - '0') * 64 + (text[i + 2] - '0') * 8 + (text[i + 3] - '0');
      out.push_back(static_cast<char>(value));
      i += 3;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

// Proves that a process can be moved into a cgroup of `tree` and killed there.
absl::Status Probe(const CgroupTree& tree) {
  FARM_ASSIGN_OR_RETURN(std::unique_ptr<Cgroup> cgroup, tree.NewCgroup());
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) return common::ErrnoStatus(errno, "pipe");
  const pid_t pid = ::fork();
  if (pid == 0) {
    // System calls only: the agent may have threads.
    const char verdict = ::write(cgroup->procs_fd(), "0", 1) == 1 ? 'y' : 'n';
    (void)!::write(ready[1], &verdict, 1);
    if (verdict == 'y') ::pause();
    ::_exit(0);
  }
  ::close(ready[1]);
  char verdict = 'n';
  const bool heard = pid > 0 && ::read(ready[0], &verdict, 1) == 1;
  ::close(ready[0]);
  if (pid < 0) return common::ErrnoStatus(errno, "fork");
  const bool moved = heard && verdict == 'y' && !cgroup->Empty();
  cgroup->Kill();
  int status;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!moved) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot move a process into ", cgroup->path(), " (cgroup.procs)"));
  }
  if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
    return absl::FailedPreconditionError(absl::StrCat("killing ", cgroup->path(), " did not work"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> OwnCgroupV2Dir() {
  std::string mount;
  std::ifstream mountinfo("/proc/self/mountinfo");
  for (std::string line; mount.empty() && std::getline(mountinfo, line);) {
    const size_t dash = line.find(" - ");
    if (dash == std::string::npos || !absl::StartsWith(line.substr(dash + 3), "cgroup2 ")) continue;
    std::vector<std::string> fields = absl::StrSplit(line.substr(0, dash), ' ');
    if (fields.size() >= 5) mount = Unescape(fields[4]);
  }
  if (mount.empty()) {
    return absl::FailedPreconditionError(
        "no cgroup2 file system is mounted (/proc/self/mountinfo)");
  }
  std::ifstream cgroup("/proc/self/cgroup");
  for (std::string line; std::getline(cgroup, line);) {
    if (absl::StartsWith(line, "0::")) {
      const std::string path = line.substr(3);
      return path == "/" ? mount : absl::StrCat(mount, path);
    }
  }
  return absl::FailedPreconditionError("this process is in no cgroup v2 (/proc/self/cgroup)");
}

absl::StatusOr<std::unique_ptr<CgroupTree>> CgroupTree::Open(const std::string& root) {
  std::string base = root;
  if (base.empty()) {
    FARM_ASSIGN_OR_RETURN(base, OwnCgroupV2Dir());
  }
  common::UniqueFd base_fd(::open(base.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  struct statfs fs;
  if (base_fd.get() < 0 || ::fstatfs(base_fd.get(), &fs) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open the cgroup ", base, ": ", std::strerror(errno)));
  }
  if (fs.f_type != CGROUP2_SUPER_MAGIC) {
    return absl::FailedPreconditionError(absl::StrCat(base, " is not a cgroup v2 directory"));
  }
  RemoveLeftovers(base_fd.get());
  static std::atomic<int> trees{0};
  const std::string name = absl::StrCat(kTreePrefix, ::getpid(), "-", trees++);
  if (::mkdirat(base_fd.get(), name.c_str(), 0755) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create a cgroup under ", base, ": ", std::strerror(errno)));
  }
  common::UniqueFd dir(::openat(base_fd.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() < 0) {
    const int err = errno;
    ::unlinkat(base_fd.get(), name.c_str(), AT_REMOVEDIR);
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open the cgroup ", base, "/", name, ": ", std::strerror(err)));
  }
  std::unique_ptr<CgroupTree> tree(new CgroupTree(absl::StrCat(base, "/", name), std::move(dir)));
  if (::faccessat(tree->dir_.get(), "cgroup.kill", F_OK, 0) != 0 &&
      ::faccessat(tree->dir_.get(), "cgroup.freeze", F_OK, 0) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("the kernel offers neither cgroup.kill nor cgroup.freeze in ", tree->path()));
  }
  if (absl::Status probed = Probe(*tree); !probed.ok()) {
    return absl::FailedPreconditionError(probed.message());
  }
  return tree;
}

CgroupTree::~CgroupTree() {
  const size_t slash = path_.rfind('/');
  common::UniqueFd parent(
      ::open(path_.substr(0, slash).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (parent.get() >= 0) RemoveTree(parent.get(), path_.substr(slash + 1));
}

absl::StatusOr<std::unique_ptr<Cgroup>> CgroupTree::NewCgroup() const {
  const std::string name = absl::StrCat("step-", next_++);
  const std::string path = absl::StrCat(path_, "/", name);
  if (::mkdirat(dir_.get(), name.c_str(), 0755) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot create the cgroup ", path, ": ", std::strerror(errno)));
  }
  common::UniqueFd dir(::openat(dir_.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  common::UniqueFd procs(dir.get() < 0 ? -1
                                       : ::openat(dir.get(), "cgroup.procs", O_WRONLY | O_CLOEXEC));
  if (procs.get() < 0) {
    const int err = errno;
    ::unlinkat(dir_.get(), name.c_str(), AT_REMOVEDIR);
    return absl::InternalError(
        absl::StrCat("cannot open ", path, "/cgroup.procs: ", std::strerror(err)));
  }
  return std::unique_ptr<Cgroup>(
      new Cgroup(path, dir_.get(), name, std::move(dir), std::move(procs)));
}

Cgroup::~Cgroup() {
  Kill();
  if (!WaitEmpty(dir_.get(), kEmptyWaitMs)) {
    FARM_LOG(WARNING) << "cgroup " << path_ << " still has processes after SIGKILL; left in place";
    return;
  }
  if (::unlinkat(parent_fd_, name_.c_str(), AT_REMOVEDIR) != 0) {
    FARM_LOG(WARNING) << "cannot remove cgroup " << path_ << ": " << std::strerror(errno);
  }
}

void Cgroup::Signal(int sig) const {
  for (pid_t pid : Members(dir_.get())) ::kill(pid, sig);
}

void Cgroup::Kill() const { KillAll(dir_.get()); }

bool Cgroup::Empty() const { return IsEmpty(dir_.get()); }

}  // namespace farm::agent
