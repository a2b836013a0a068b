#include "coordinator/cli/download.h"

#include <sys/stat.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/job_limits.h"
#include "common/posix_io.h"

namespace farm::cli {
namespace {

std::string RealPath(const std::string& path) {
  char buffer[PATH_MAX];
  if (::realpath(path.c_str(), buffer) == nullptr) return "";
  return buffer;
}

bool Inside(const std::string& root, const std::string& path) {
  return path == root || (absl::StartsWith(path, root) &&
                          (root == "/" || (path.size() > root.size() && path[root.size()] == '/')));
}

// "DIR/a/b": the first `count` parts of an artifact path, as the user would name them.
std::string Prefix(const std::string& dir, const std::vector<std::string>& parts, size_t count) {
  return JoinPath(dir, absl::StrJoin(parts.begin(), parts.begin() + static_cast<long>(count), "/"));
}

}  // namespace

std::string JoinPath(absl::string_view dir, absl::string_view relative) {
  if (dir.empty() || dir == ".") return std::string(relative);
  return absl::StrCat(absl::StripSuffix(dir, "/"), "/", relative);
}

std::string NormalizeFilter(absl::string_view raw) {
  std::vector<absl::string_view> parts;
  for (absl::string_view part : absl::StrSplit(raw, '/')) {
    if (!part.empty() && part != ".") parts.push_back(part);
  }
  return absl::StrJoin(parts, "/");
}

std::string DescribeArtifactPaths(const farm::v1::Job& job) {
  if (job.artifacts().empty()) return " (it has none)";
  constexpr int kShown = 5;
  std::vector<std::string> paths;
  for (int i = 0; i < job.artifacts_size() && i < kShown; ++i) {
    paths.push_back(job.artifacts(i).path());
  }
  std::string more = job.artifacts_size() > kShown
                         ? absl::StrCat(" and ", job.artifacts_size() - kShown, " more")
                         : "";
  return absl::StrCat(" (its artifacts: ", absl::StrJoin(paths, ", "), more, ")");
}

absl::StatusOr<std::vector<const farm::v1::Artifact*>> SelectArtifacts(
    const farm::v1::Job& job, const std::vector<std::string>& filters) {
  std::vector<const farm::v1::Artifact*> selected;
  if (filters.empty()) {
    for (const farm::v1::Artifact& artifact : job.artifacts()) selected.push_back(&artifact);
    return selected;
  }
  std::vector<bool> taken(static_cast<size_t>(job.artifacts_size()), false);
  for (const std::string& raw : filters) {
    const std::string path = NormalizeFilter(raw);
    bool any = false;
    for (int i = 0; i < job.artifacts_size(); ++i) {
      const std::string& candidate = job.artifacts(i).path();
      if (path.empty() || candidate == path || absl::StartsWith(candidate, path + "/")) {
        any = true;
        if (!taken[static_cast<size_t>(i)]) {
          taken[static_cast<size_t>(i)] = true;
          selected.push_back(&job.artifacts(i));
        }
      }
    }
    if (!any) {
      return absl::NotFoundError(absl::StrCat("job ", job.id(), " has no artifact \"", raw, "\"",
                                              DescribeArtifactPaths(job)));
    }
  }
  return selected;
}

absl::StatusOr<std::string> PrepareDirectory(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat(dir, ": cannot create: ", ec.message()));
  const std::string root = RealPath(dir);
  if (root.empty()) return common::ErrnoStatus(errno, dir);
  struct stat st;
  if (::stat(root.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(dir, ": not a directory"));
  }
  return root;
}

absl::StatusOr<std::string> PrepareTarget(const std::string& root, const std::string& dir,
                                          const std::string& path) {
  if (absl::Status s = common::ValidateArtifactPath(path); !s.ok()) {
    return absl::PermissionDeniedError(
        absl::StrCat("refusing to write artifact \"", path, "\" outside ", dir, ": ", s.message()));
  }
  const std::vector<std::string> parts = absl::StrSplit(path, '/');
  std::string current = root;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    current = absl::StrCat(current, "/", parts[i]);
    struct stat st;
    if (::lstat(current.c_str(), &st) != 0) {
      if (errno != ENOENT) return common::ErrnoStatus(errno, JoinPath(dir, path));
      if (::mkdir(current.c_str(), 0777) != 0 && errno != EEXIST) {
        return common::ErrnoStatus(errno,
                                   absl::StrCat(JoinPath(dir, path), ": cannot create directory"));
      }
      continue;
    }
    if (S_ISLNK(st.st_mode)) {
      const std::string real = RealPath(current);
      if (real.empty() || !Inside(root, real)) {
        return absl::PermissionDeniedError(
            absl::StrCat("refusing to write artifact \"", path, "\": ", Prefix(dir, parts, i + 1),
                         " is a symbolic link leading outside ", dir));
      }
      if (::stat(real.c_str(), &st) != 0) return common::ErrnoStatus(errno, JoinPath(dir, path));
    }
    if (!S_ISDIR(st.st_mode)) {
      return absl::FailedPreconditionError(absl::StrCat("cannot write artifact \"", path,
                                                        "\": ", Prefix(dir, parts, i + 1),
                                                        " exists and is not a directory"));
    }
  }
  return absl::StrCat(root, "/", path);
}

}  // namespace farm::cli
