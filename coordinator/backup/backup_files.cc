#include "coordinator/backup/backup_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/posix_io.h"

namespace farm::coordinator {

absl::StatusOr<BackupTarget> CheckNewDir(const std::string& path, absl::string_view what) {
  if (path.empty() || path[0] != '/') {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " must be an absolute path on the coordinator's machine, not \"", path, "\""));
  }
  BackupTarget target;
  target.path = path;
  while (target.path.size() > 1 && target.path.back() == '/') target.path.pop_back();
  if (target.path == "/") return absl::InvalidArgumentError(absl::StrCat(what, " cannot be /"));
  const size_t slash = target.path.rfind('/');
  target.parent = slash == 0 ? "/" : target.path.substr(0, slash);
  target.name = target.path.substr(slash + 1);
  if (target.name == "." || target.name == "..") {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " must name a new directory, not ", target.path));
  }
  struct stat st;
  if (::lstat(target.path.c_str(), &st) == 0) {
    return absl::AlreadyExistsError(absl::StrCat(what, " ", target.path, " exists"));
  }
  if (::stat(target.parent.c_str(), &st) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("the parent of ", what, " ", target.path, " does not exist"));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("the parent of ", what, " ", target.path, " is not a directory"));
  }
  return target;
}

absl::Status WriteFileSynced(const std::string& path, absl::string_view content) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return common::ErrnoStatus(errno, absl::StrCat("cannot create ", path));
  absl::Status s = common::WriteAll(fd, content, absl::StrCat("cannot write ", path));
  if (s.ok() && ::fsync(fd) != 0)
    s = common::ErrnoStatus(errno, absl::StrCat("cannot sync ", path));
  if (::close(fd) != 0 && s.ok()) {
    s = common::ErrnoStatus(errno, absl::StrCat("cannot close ", path));
  }
  return s;
}

}  // namespace farm::coordinator
