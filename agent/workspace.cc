#include "agent/workspace.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace farm::agent {

std::string SafeFileName(absl::string_view id) {
  std::string out(id);
  for (char& c : out) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) c = '_';
  }
  if (out.empty() || out == "." || out == "..") out = absl::StrCat("_", out);
  return out;
}

absl::StatusOr<Workspace> Workspace::Create(absl::string_view work_dir, absl::string_view job_id,
                                            uint32_t attempt) {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  const std::string parent(work_dir);
  auto work_fd = std::make_shared<common::UniqueFd>(
      ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (work_fd->get() < 0) {
    return absl::InternalError(
        absl::StrCat("cannot create workspace under ", parent, ": ", std::strerror(errno)));
  }
  for (int tries = 0; tries < 5; ++tries) {
    const std::string name = absl::StrCat(SafeFileName(job_id), "-", attempt, "-",
                                          absl::StrFormat("%08x", rng() & 0xffffffffu));
    const std::string path = absl::StrCat(parent, "/", name);
    if (::mkdirat(work_fd->get(), name.c_str(), 0777) != 0) {
      if (errno == EEXIST) continue;  // pick another name
      return absl::InternalError(
          absl::StrCat("cannot create workspace ", path, ": ", std::strerror(errno)));
    }
    common::UniqueFd fd(
        ::openat(work_fd->get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (fd.get() < 0) {
      return absl::InternalError(
          absl::StrCat("cannot open workspace ", path, ": ", std::strerror(errno)));
    }
    auto root = std::make_shared<const common::BeneathRoot>(
        std::move(fd), common::BeneathRoot::NamesOf(path), "the workspace");
    return Workspace(path, name, std::move(work_fd), std::move(root));
  }
  return absl::InternalError(absl::StrCat("cannot pick a fresh workspace name under ", work_dir));
}

absl::Status Workspace::Remove() const {
  absl::Status removed = common::RemoveTreeAt(work_dir_->get(), name_, path_);
  if (removed.ok()) return removed;
  return absl::InternalError(
      absl::StrCat("cannot remove workspace ", path_, ": ", removed.message()));
}

}  // namespace farm::agent
