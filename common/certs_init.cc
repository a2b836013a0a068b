// The file half of common/certs.h: InitCerts writes what certs.cc makes, all or nothing.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/certs.h"
#include "common/posix_io.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"

namespace farm::common {
namespace {

constexpr mode_t kPrivateMode = 0600;
constexpr mode_t kPublicMode = 0644;
constexpr mode_t kDirMode = 0700;

struct NewFile {
  std::string path;
  std::string contents;
  mode_t mode;
};

// Removes, unless Commit() was called, the files and directories it was told were made, the
// latest first.
class Rollback {
 public:
  Rollback() = default;
  Rollback(const Rollback&) = delete;
  Rollback& operator=(const Rollback&) = delete;
  ~Rollback() {
    if (committed_) return;
    for (auto it = files_.rbegin(); it != files_.rend(); ++it) ::unlink(it->c_str());
    for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) ::rmdir(it->c_str());
  }

  void AddFile(std::string path) { files_.push_back(std::move(path)); }
  void AddDir(std::string path) { dirs_.push_back(std::move(path)); }
  void Commit() { committed_ = true; }

 private:
  std::vector<std::string> files_;
  std::vector<std::string> dirs_;
  bool committed_ = false;
};

absl::Status AlreadyExists(const std::string& path) {
  return absl::AlreadyExistsError(
      absl::StrCat(path, " already exists; nothing was written (certs init never overwrites)"));
}

// OK when nothing (not even a dangling symlink) is at `path`.
absl::Status CheckAbsent(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) return AlreadyExists(path);
  if (errno != ENOENT) return ErrnoStatus(errno, path);
  return absl::OkStatus();
}

// Creates `dir` and its missing parents with mode 0700, telling `rollback` of each.
absl::Status MakeDirs(const std::string& dir, Rollback& rollback) {
  for (size_t end = 1; end <= dir.size(); ++end) {
    if (end < dir.size() && dir[end] != '/') continue;
    const std::string prefix = dir.substr(0, end);
    if (::mkdir(prefix.c_str(), kDirMode) == 0) {
      rollback.AddDir(prefix);
      // 0700 whatever the umask.
      if (::chmod(prefix.c_str(), kDirMode) != 0) return ErrnoStatus(errno, prefix);
    } else if (errno != EEXIST) {
      return ErrnoStatus(errno, absl::StrCat("creating ", prefix));
    }
  }
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return ErrnoStatus(errno, dir);
  if (!S_ISDIR(st.st_mode)) return absl::FailedPreconditionError(dir + " is not a directory");
  return absl::OkStatus();
}

// Moves `from` to `to` unless `to` exists (ALREADY_EXISTS then), atomically: renameat2's
// RENAME_NOREPLACE, or link(2) where the file system lacks it.
absl::Status RenameNoReplace(const std::string& from, const std::string& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) {
    return absl::OkStatus();
  }
  int err = errno;
  if (err == EINVAL || err == ENOSYS) {
    err = ::link(from.c_str(), to.c_str()) == 0 ? 0 : errno;
    ::unlink(from.c_str());
  }
  if (err == 0) return absl::OkStatus();
  if (err == EEXIST) return AlreadyExists(to);
  return ErrnoStatus(err, absl::StrCat("renaming to ", to));
}

// Writes `file` under a temporary name in its directory, synced, then renames it into place.
// The temporary file is gone whatever happens.
absl::Status WriteNewFile(const NewFile& file) {
  const size_t slash = file.path.rfind('/');
  const size_t base = slash == std::string::npos ? 0 : slash + 1;
  std::string temp = absl::StrCat(absl::string_view(file.path).substr(0, base), ".",
                                  absl::string_view(file.path).substr(base), ".tmp-XXXXXX");
  UniqueFd fd(::mkostemp(temp.data(), O_CLOEXEC));  // mode 0600
  if (fd.get() < 0) return ErrnoStatus(errno, absl::StrCat("creating a file next to ", file.path));
  absl::Status status = WriteAll(fd.get(), file.contents, temp);
  if (status.ok() && ::fchmod(fd.get(), file.mode) != 0) status = ErrnoStatus(errno, temp);
  if (status.ok() && ::fsync(fd.get()) != 0) status = ErrnoStatus(errno, temp);
  if (fd.Close() != 0 && status.ok()) status = ErrnoStatus(errno, temp);
  if (status.ok()) status = RenameNoReplace(temp, file.path);
  ::unlink(temp.c_str());  // after a rename: ENOENT, harmless
  return status;
}

absl::Status SyncDir(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoStatus(errno, dir);
  if (::fsync(fd.get()) != 0) return ErrnoStatus(errno, absl::StrCat("syncing ", dir));
  return absl::OkStatus();
}

// Everything InitCerts writes, made in memory first.
absl::StatusOr<std::vector<NewFile>> MakeFiles(const CertsOptions& options) {
  const auto path = [&options](const char* name) { return absl::StrCat(options.dir, "/", name); };
  FARM_ASSIGN_OR_RETURN(const CertAndKey ca, CreateCa("farm CA"));
  FARM_ASSIGN_OR_RETURN(const CertAndKey coordinator,
                        IssueServerCert(ca.cert_pem, ca.key_pem, options.hosts));
  FARM_ASSIGN_OR_RETURN(const CertAndKey admin,
                        IssueClientCert(ca.cert_pem, ca.key_pem, kRoleAdmin, "admin"));
  FARM_ASSIGN_OR_RETURN(std::string secrets_key, NewSecretsKey());
  std::vector<NewFile> files;
  files.push_back({path(kCaCertFile), ca.cert_pem, kPublicMode});
  files.push_back({path(kCaKeyFile), ca.key_pem, kPrivateMode});
  files.push_back({path(kCoordinatorCertFile), coordinator.cert_pem, kPublicMode});
  files.push_back({path(kCoordinatorKeyFile), coordinator.key_pem, kPrivateMode});
  files.push_back({path(kAdminCertFile), admin.cert_pem, kPublicMode});
  files.push_back({path(kAdminKeyFile), admin.key_pem, kPrivateMode});
  files.push_back({path(kSecretsKeyFile), std::move(secrets_key), kPrivateMode});
  return files;
}

}  // namespace

absl::Status InitCerts(const CertsOptions& options) {
  if (options.dir.empty()) return absl::InvalidArgumentError("no directory given for the certs");
  if (options.hosts.empty()) {
    return absl::InvalidArgumentError("the coordinator certificate needs at least one host");
  }
  for (const std::string& host : options.hosts) FARM_RETURN_IF_ERROR(CheckHostName(host));
  FARM_ASSIGN_OR_RETURN(const std::vector<NewFile> files, MakeFiles(options));
  for (const NewFile& file : files) FARM_RETURN_IF_ERROR(CheckAbsent(file.path));

  Rollback rollback;
  FARM_RETURN_IF_ERROR(MakeDirs(options.dir, rollback));
  for (const NewFile& file : files) {
    FARM_RETURN_IF_ERROR(WriteNewFile(file));
    rollback.AddFile(file.path);
  }
  FARM_RETURN_IF_ERROR(SyncDir(options.dir));
  rollback.Commit();
  return absl::OkStatus();
}

}  // namespace farm::common
