#include "agent/isolation.h"

#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/logging.h"
#include "common/posix_io.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"

namespace farm::agent {
namespace {

struct RlimitName {
  const char* name;
  int resource;
  bool bytes;  // takes K/M/G/T suffixes
};
constexpr RlimitName kRlimits[] = {
    {"nofile", RLIMIT_NOFILE, false}, {"nproc", RLIMIT_NPROC, false},    {"as", RLIMIT_AS, true},
    {"fsize", RLIMIT_FSIZE, true},    {"core", RLIMIT_CORE, true},       {"cpu", RLIMIT_CPU, false},
    {"stack", RLIMIT_STACK, true},    {"memlock", RLIMIT_MEMLOCK, true},
};

absl::StatusOr<rlim_t> ParseRlimitValue(absl::string_view entry, absl::string_view text,
                                        bool bytes) {
  if (text == "unlimited") return RLIM_INFINITY;
  uint64_t scale = 1;
  if (bytes && !text.empty()) {
    const char unit = absl::ascii_toupper(text.back());
    const absl::string_view units = "KMGT";
    if (const size_t i = units.find(unit); i != absl::string_view::npos) {
      scale = uint64_t{1} << (10 * (i + 1));
      text.remove_suffix(1);
    }
  }
  uint64_t value = 0;
  if (text.empty() || !absl::ascii_isdigit(text[0]) || !absl::SimpleAtoi(text, &value) ||
      value > UINT64_MAX / scale || value * scale >= RLIM_INFINITY) {
    return absl::InvalidArgumentError(
        absl::StrCat("--step_rlimits: \"", entry, "\": expected a number",
                     bytes ? " (bytes; K, M, G or T may follow)" : "", " or \"unlimited\""));
  }
  return static_cast<rlim_t>(value * scale);
}

// Runs `fn` in a child process changed to `user` (when user.change), and returns its exit code
// (-1 when it could not be run). `fn` makes system calls only.
template <typename Fn>
int RunAsUser(const StepUser& user, Fn fn) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (user.change && (::setgroups(user.groups.size(), user.groups.data()) != 0 ||
                        ::setgid(user.gid) != 0 || ::setuid(user.uid) != 0)) {
      ::_exit(125);
    }
    ::_exit(fn());
  }
  if (pid < 0) return -1;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string FindProgram(const std::string& name) {
  if (absl::StrContains(name, '/')) return ::access(name.c_str(), X_OK) == 0 ? name : "";
  const char* path = ::getenv("PATH");
  for (absl::string_view dir :
       absl::StrSplit(path != nullptr ? path : "/usr/bin:/bin", ':', absl::SkipEmpty())) {
    std::string candidate = absl::StrCat(dir, "/", name);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

absl::StatusOr<StepUser> ResolveUser(const std::string& run_as) {
  const uid_t self = ::geteuid();
  StepUser user;
  struct passwd pw;
  struct passwd* found = nullptr;
  std::vector<char> buf(16384);
  const int rc = run_as.empty() ? ::getpwuid_r(self, &pw, buf.data(), buf.size(), &found)
                                : ::getpwnam_r(run_as.c_str(), &pw, buf.data(), buf.size(), &found);
  if (found == nullptr) {
    if (run_as.empty()) {  // an agent without a passwd entry (a container): itself, unnamed
      user.name = absl::StrCat(self);
      user.uid = self;
      user.gid = ::getegid();
      return user;
    }
    return absl::InvalidArgumentError(
        absl::StrCat("--run_as: no user \"", run_as, "\"",
                     rc != 0 ? absl::StrCat(" (", std::strerror(rc), ")") : ""));
  }
  user.name = pw.pw_name;
  user.uid = pw.pw_uid;
  user.gid = pw.pw_gid;
  user.home = pw.pw_dir;
  if (self != 0 && user.uid != self) {
    return absl::InvalidArgumentError(
        absl::StrCat("--run_as=", run_as,
                     ": the agent does not run as root, so its steps can only run as its "
                     "own user (uid ",
                     self, "); start the agent as root to run steps as another user"));
  }
  user.change = self == 0 && user.uid != 0;
  int count = 64;
  user.groups.resize(count);
  if (::getgrouplist(pw.pw_name, pw.pw_gid, user.groups.data(), &count) < 0) {
    user.groups.resize(count);
    ::getgrouplist(pw.pw_name, pw.pw_gid, user.groups.data(), &count);
  }
  user.groups.resize(count);
  return user;
}

// The uid and gid HandOver() gives files to (nftw's callback takes no context).
thread_local uid_t hand_over_uid;
thread_local gid_t hand_over_gid;
thread_local int hand_over_errno;

int HandOverEntry(const char* path, const struct stat*, int, struct FTW*) {
  if (::lchown(path, hand_over_uid, hand_over_gid) != 0) {
    hand_over_errno = errno;
    return 1;
  }
  return 0;
}

}  // namespace

absl::StatusOr<std::vector<StepRlimit>> ParseStepRlimits(absl::string_view text) {
  std::vector<StepRlimit> limits;
  for (absl::string_view entry : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    entry = absl::StripAsciiWhitespace(entry);
    const size_t eq = entry.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("--step_rlimits: \"", entry, "\" is not NAME=VALUE"));
    }
    const absl::string_view name = absl::StripAsciiWhitespace(entry.substr(0, eq));
    const RlimitName* known = nullptr;
    for (const RlimitName& r : kRlimits) {
      if (name == r.name) known = &r;
    }
    if (known == nullptr) {
      std::vector<std::string> names;
      for (const RlimitName& r : kRlimits) names.emplace_back(r.name);
      return absl::InvalidArgumentError(absl::StrCat("--step_rlimits: unknown limit \"", name,
                                                     "\" (known: ", absl::StrJoin(names, ", "),
                                                     ")"));
    }
    for (const StepRlimit& seen : limits) {
      if (seen.name == name) {
        return absl::InvalidArgumentError(
            absl::StrCat("--step_rlimits: \"", name, "\" given twice"));
      }
    }
    FARM_ASSIGN_OR_RETURN(
        rlim_t value,
        ParseRlimitValue(entry, absl::StripAsciiWhitespace(entry.substr(eq + 1)), known->bytes));
    limits.push_back({std::string(name), known->resource, value});
  }
  return limits;
}

absl::StatusOr<SandboxKind> ParseSandbox(absl::string_view text) {
  if (text.empty() || text == "none") return SandboxKind::kNone;
  if (text == "bwrap") return SandboxKind::kBwrap;
  return absl::InvalidArgumentError(
      absl::StrCat("--sandbox: expected none or bwrap, got \"", text, "\""));
}

std::string DefaultStepUser() {
  return ::getpwnam("farm-build") != nullptr ? "farm-build" : "nobody";
}

bool ApplyInChild(const ChildIsolation& isolation, const char** stage) {
  if (isolation.cgroup_procs_fd >= 0 && ::write(isolation.cgroup_procs_fd, "0", 1) != 1) {
    *stage = "moving into its cgroup";
    return false;
  }
  for (size_t i = 0; i < isolation.rlimit_count; ++i) {
    const struct rlimit limit = {isolation.rlimits[i].value, isolation.rlimits[i].value};
    if (::setrlimit(isolation.rlimits[i].resource, &limit) != 0) {
      *stage = "setrlimit";
      return false;
    }
  }
  const StepUser* user = isolation.user;
  if (user == nullptr || !user->change) return true;
  if (::setgroups(user->groups.size(), user->groups.data()) != 0) {
    *stage = "setgroups";
    return false;
  }
  if (::setgid(user->gid) != 0) {
    *stage = "setgid";
    return false;
  }
  if (::setuid(user->uid) != 0) {
    *stage = "setuid";
    return false;
  }
  // No set-user-ID program (su, sudo) can take the step back to root.
  ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  return true;
}

absl::StatusOr<std::unique_ptr<Isolation>> Isolation::Create(const IsolationOptions& options,
                                                             const std::string& work_dir) {
  FARM_ASSIGN_OR_RETURN(StepUser user, ResolveUser(options.run_as));
  std::unique_ptr<Isolation> isolation(new Isolation(options, work_dir, std::move(user)));
  FARM_RETURN_IF_ERROR(isolation->CheckUserAccess());
  if (options.sandbox == SandboxKind::kBwrap) {
    isolation->bwrap_path_ = FindProgram(options.bwrap);
    if (isolation->bwrap_path_.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--sandbox=bwrap: bubblewrap (", options.bwrap,
          ") is not installed or not executable; install it (apt-get install bubblewrap) or run "
          "without --sandbox"));
    }
    FARM_RETURN_IF_ERROR(isolation->CheckSandbox());
  }
  if (!options.cgroups) {
    isolation->fallback_reason_ = "cgroups turned off";
  } else {
    absl::StatusOr<std::unique_ptr<CgroupTree>> tree = CgroupTree::Open(options.cgroup_root);
    if (tree.ok()) {
      isolation->cgroups_ = *std::move(tree);
    } else if (!options.cgroup_root.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("--cgroup_root=", options.cgroup_root, ": ", tree.status().message()));
    } else {
      isolation->fallback_reason_ = std::string(tree.status().message());
    }
  }
  return isolation;
}

absl::Status Isolation::CheckUserAccess() const {
  if (!user_.change) return absl::OkStatus();
  const char* dir = work_dir_.c_str();
  if (RunAsUser(user_, [dir] { return ::access(dir, X_OK) == 0 ? 0 : 1; }) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--work_dir=", work_dir_, ": the step user ", user_.name,
        " cannot reach it (a directory above it is not searchable by others); choose a work dir "
        "whose parents are (mode o+x), or --run_as"));
  }
  for (const std::string& file : options_.secret_files) {
    const char* path = file.c_str();
    const int readable = RunAsUser(user_, [path] {
      const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
      return fd >= 0 ? 1 : 0;
    });
    if (readable != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat(file, " holds the agent's credential and the step user ", user_.name,
                       " can read it: make it root's, mode 0600 (chown root: ", file,
                       "; chmod 0600 ", file, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status Isolation::CheckSandbox() const {
  std::vector<std::string> argv = Wrap({"/bin/true"}, work_dir_, /*network=*/false);
  std::vector<char*> args;
  for (std::string& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  int err[2];
  if (::pipe2(err, O_CLOEXEC) != 0) return common::ErrnoStatus(errno, "pipe");
  common::UniqueFd read_end(err[0]);
  const int write_fd = err[1];
  char* const* argp = args.data();
  const char* program = bwrap_path_.c_str();
  const int code = RunAsUser(user_, [&] {
    ::dup2(write_fd, 1);
    ::dup2(write_fd, 2);
    ::execv(program, argp);
    return 127;
  });
  ::close(write_fd);
  std::string output;
  char buf[512];
  for (ssize_t n; (n = ::read(read_end.get(), buf, sizeof(buf))) > 0 && output.size() < 2048;) {
    output.append(buf, static_cast<size_t>(n));
  }
  if (code == 0) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "--sandbox=bwrap: bubblewrap cannot create its namespaces here (", bwrap_path_,
      " exited with ", code, ": ", absl::StripAsciiWhitespace(output),
      "); allow unprivileged user namespaces (sysctl user.max_user_namespaces) or run without "
      "--sandbox"));
}

std::string Isolation::sandbox_name() const {
  return options_.sandbox == SandboxKind::kBwrap ? "bwrap" : "";
}

absl::Status Isolation::SecureWorkDir(const std::vector<std::string>& private_entries) const {
  if (!user_.change) return absl::OkStatus();
  if (::chown(work_dir_.c_str(), 0, 0) != 0 || ::chmod(work_dir_.c_str(), 0711) != 0) {
    return common::ErrnoStatus(errno, absl::StrCat("--work_dir: securing ", work_dir_));
  }
  for (const std::string& name : private_entries) {
    const std::string path = absl::StrCat(work_dir_, "/", name);
    if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
      return common::ErrnoStatus(errno, absl::StrCat("--work_dir: creating ", path));
    }
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0 || (S_ISDIR(st.st_mode) && ::chmod(path.c_str(), 0700))) {
      return common::ErrnoStatus(errno, absl::StrCat("--work_dir: securing ", path));
    }
  }
  return absl::OkStatus();
}

absl::Status Isolation::HandOver(const std::string& workspace) const {
  if (!user_.change) return absl::OkStatus();
  // Before any step ran: only the agent has written here, so the walk races with nobody.
  hand_over_uid = user_.uid;
  hand_over_gid = user_.gid;
  hand_over_errno = 0;
  if (::nftw(workspace.c_str(), HandOverEntry, 32, FTW_PHYS) != 0) {
    return common::ErrnoStatus(hand_over_errno != 0 ? hand_over_errno : errno,
                               absl::StrCat("handing ", workspace, " over to ", user_.name));
  }
  return absl::OkStatus();
}

std::unique_ptr<Cgroup> Isolation::NewCgroup() const {
  if (cgroups_ == nullptr) return nullptr;
  absl::StatusOr<std::unique_ptr<Cgroup>> cgroup = cgroups_->NewCgroup();
  if (!cgroup.ok()) {
    FARM_LOG(ERROR) << cgroup.status() << "; the step runs in its process group only";
    return nullptr;
  }
  return *std::move(cgroup);
}

std::vector<std::string> Isolation::Wrap(std::vector<std::string> argv,
                                         const std::string& workspace, bool network) const {
  if (options_.sandbox != SandboxKind::kBwrap) return argv;
  std::vector<std::string> wrapped = {
      bwrap_path_.empty() ? options_.bwrap : bwrap_path_,
      // No --new-session: the step must stay in its process group (the fallback kill).
      "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
      "--unshare-cgroup-try", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs",
      "/tmp", "--tmpfs", work_dir_};
  if (!network) wrapped.push_back("--unshare-net");
  if (::geteuid() == 0 && !user_.change) {
    // Root in the sandbox would keep the capabilities to undo it (remount / writable).
    wrapped.insert(wrapped.end(), {"--cap-drop", "ALL"});
  }
  for (const std::string& file : options_.secret_files) {
    struct stat st;
    if (::stat(file.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      wrapped.insert(wrapped.end(), {"--ro-bind", "/dev/null", file});
    }
  }
  if (workspace != work_dir_) wrapped.insert(wrapped.end(), {"--bind", workspace, workspace});
  wrapped.insert(wrapped.end(), {"--chdir", workspace, "--"});
  wrapped.insert(wrapped.end(), std::make_move_iterator(argv.begin()),
                 std::make_move_iterator(argv.end()));
  return wrapped;
}

ChildIsolation Isolation::ForChild(const Cgroup* cgroup) const {
  ChildIsolation child;
  child.cgroup_procs_fd = cgroup != nullptr ? cgroup->procs_fd() : -1;
  child.rlimits = options_.rlimits.data();
  child.rlimit_count = options_.rlimits.size();
  child.user = &user_;
  return child;
}

}  // namespace farm::agent
