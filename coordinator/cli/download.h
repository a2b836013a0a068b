// Where `farmctl download` writes a job's artifacts, and the checks that keep it inside the
// directory the user named: an artifact's recorded path comes from the coordinator and is not
// trusted. Also the small path helpers the artifact commands share.
//
// Thread-safe (no state); the checks race with anyone changing DIR meanwhile, as any
// path-based check does.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
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

// Creates `dir` (and its parents) when missing; returns it with symbolic links resolved.
// PERMISSION_DENIED (or errno's code) when it cannot be made; FAILED_PRECONDITION when it is
// not a directory.
absl::StatusOr<std::string> PrepareDirectory(const std::string& dir);

// Makes the directories for artifact `path` under `root` (the resolved DIR; `dir` is how the
// user named it) and returns the file's full path. Refuses (PERMISSION_DENIED) a path that is
// not plainly relative, or whose directories lead outside DIR through a symbolic link;
// FAILED_PRECONDITION when one of them exists and is not a directory.
absl::StatusOr<std::string> PrepareTarget(const std::string& root, const std::string& dir,
                                          const std::string& path);

}  // namespace farm::cli
