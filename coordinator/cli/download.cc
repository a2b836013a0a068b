#include "coordinator/cli/download.h"

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
#include "common/text.h"

namespace farm::cli {

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

absl::StatusOr<common::BeneathRoot> PrepareDirectory(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat(dir, ": cannot create: ", ec.message()));
  return common::BeneathRoot::Open(dir, dir);
}

absl::StatusOr<Target> PrepareTarget(const common::BeneathRoot& root, const std::string& dir,
                                     const std::string& path) {
  if (absl::Status s = common::ValidateArtifactPath(path); !s.ok()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "refusing to write artifact ", common::Quote(path), " outside ", dir, ": ", s.message()));
  }
  absl::StatusOr<common::WalkEnd> end = common::WalkBeneath(
      root, path, {.follow_links = true, .follow_last = false, .create_dirs = true});
  if (!end.ok()) {
    const bool refused = end.status().code() == absl::StatusCode::kPermissionDenied;
    return absl::Status(
        end.status().code(),
        absl::StrCat(refused ? "refusing to write artifact " : "cannot write artifact ",
                     common::Quote(path), " in ", dir, ": ", end.status().message()));
  }
  return Target{std::move(end->dir), std::move(end->name)};
}

}  // namespace farm::cli
