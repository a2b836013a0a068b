// Artifacts: the files a job keeps. After the steps, the agent expands the job's `artifacts:`
// globs inside the workspace, hashes every file once (SHA-256), asks the CAS which blobs it
// lacks (FindMissingBlobs) and uploads only those; the attempt's CompleteJob then lists them.
//
// Globs (relative to the workspace, '/'-separated):
//   *    any run of characters within one path component (also a leading '.')
//   ?    exactly one character within a component
//   **   as a whole component: zero or more directories
// Anything else is literal. A glob that matches a directory collects every file below it.
//
// The workspace is never escaped: a symbolic link is followed only when it resolves inside
// the workspace (else it is skipped and noted), and `**` does not descend into symlinked
// directories (no loops). Only regular files are collected; other kinds are skipped and noted.
//
// Thread-compatible free functions; nothing is shared between calls.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/cas_client.h"
#include "common/digest.h"
#include "common/job_limits.h"
#include "farm/v1/farm.pb.h"

namespace farm::agent {

// One file a glob matched.
struct ArtifactFile {
  std::string path;         // relative to the workspace, '/'-separated: what the job records
  std::string real_path;    // absolute, symlinks resolved: what is read and uploaded
  bool executable = false;  // the owner's execute bit of the file (the link's target)
  common::Digest digest;    // filled by HashArtifacts
};

struct ArtifactMatches {
  std::vector<ArtifactFile> files;       // sorted by path, each path once
  std::vector<std::string> empty_globs;  // globs that matched no file (not an error)
  std::vector<std::string> skipped;      // "PATH: why" for links leaving the workspace, ...
};

// True when the path component `name` matches the glob component `pattern` ('*' and '?').
bool MatchComponent(absl::string_view pattern, absl::string_view name);

// Expands `globs` (already valid per common::ValidateArtifactGlob) inside `workspace`.
// RESOURCE_EXHAUSTED when they match more than `max_files` files; INVALID_ARGUMENT for an invalid
// glob; INTERNAL when the workspace cannot be resolved. Unreadable directories are noted in
// `skipped`, not errors.
absl::StatusOr<ArtifactMatches> FindArtifacts(const std::string& workspace,
                                              const std::vector<std::string>& globs,
                                              int max_files = common::kMaxArtifactsPerJob);

// Hashes each file (one read; a file reached through several paths is read once) and fills its
// digest. The error names the path and keeps common::DigestFile's code.
absl::Status HashArtifacts(std::vector<ArtifactFile>& files);

struct UploadStats {
  int files = 0;           // files listed
  int blobs = 0;           // distinct contents
  int uploaded_blobs = 0;  // the ones the CAS lacked
  int64_t uploaded_bytes = 0;
};

// Asks the CAS which of the files' blobs are missing and uploads those (each distinct content
// once). The error is the CAS client's, with the path of the file that failed; CANCELLED when
// `cancel` fired.
absl::StatusOr<UploadStats> UploadArtifacts(common::CasClient& cas,
                                            const std::vector<ArtifactFile>& files,
                                            common::CancelSource* cancel);

// The records for CompleteJobRequest.artifacts, in the files' order.
std::vector<farm::v1::Artifact> ToArtifactProtos(const std::vector<ArtifactFile>& files);

}  // namespace farm::agent
