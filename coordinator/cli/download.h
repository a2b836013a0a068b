// Where `farmctl download` writes a job's artifacts, and the checks that keep it inside the
// directory the user named: an artifact's recorded path comes from the coordinator and is not
// trusted. Also the small path helpers the artifact commands share.
//
// DIR is opened once (PrepareDirectory) and every directory below it is created and opened
// beneath that descriptor one component at a time (common/safe_path.h): a symbolic link is
// followed only while it stays inside DIR, and a directory swapped for a link while farmctl
// works is refused instead of followed. The file itself is written to a temporary file created
// with O_EXCL | O_NOFOLLOW in its directory's descriptor and renamed over the artifact's name
// (common::CasClient::DownloadAt): a link planted at that name is replaced, never followed.
//
// Thread-safe (no state).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/safe_path.h"
#include "common/unique_fd.h"
#include "farm/v1/farm.pb.h"

namespace farm::cli {

// "DIR/relative", or `relative` alone when `dir` is "." or empty.
std::string JoinPath(absl::string_view dir, absl::string_view relative);

// A download filter as a user may type it ("./out/", "out//x") in the form paths are recorded
// ("out", "out/x"); "" for "." or "/".
std::string NormalizeFilter(absl::string_view raw);

// " (its artifacts: a, b, ... and N more)" or " (it has none)", for "no such artifact".
std::string DescribeArtifactPaths(const farm::v1::Job& job);

// The artifacts of `job` that `filters` name (each a file, or a directory: everything below;
// none: all), in the job's order, each once. NOT_FOUND naming the first filter that matches
// nothing, with the job's artifact paths.
absl::StatusOr<std::vector<const farm::v1::Artifact*>> SelectArtifacts(
    const farm::v1::Job& job, const std::vector<std::string>& filters);

// Creates `dir` (and its parents) when missing and opens it (links in `dir` itself are the
// user's and are followed). PERMISSION_DENIED (or errno's code) when it cannot be made;
// FAILED_PRECONDITION when it is not a directory.
absl::StatusOr<common::BeneathRoot> PrepareDirectory(const std::string& dir);

// Where one artifact is written: its name in its directory, opened beneath DIR.
struct Target {
  common::UniqueFd dir;
  std::string name;
};

// Makes the directories for artifact `path` beneath `root` (DIR, opened; `dir` is how the user
// named it) and opens the last one. Refuses (PERMISSION_DENIED) a path that is not a plain
// relative path (common::CheckRelativePath), or whose directories lead outside DIR through a
// symbolic link; FAILED_PRECONDITION when one of them exists and is not a directory, or changed
// while being walked.
absl::StatusOr<Target> PrepareTarget(const common::BeneathRoot& root, const std::string& dir,
                                     const std::string& path);

}  // namespace farm::cli
