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
// The workspace is never escaped, also while a step's leftover process keeps changing it: every
// look and every read walks from the workspace's directory descriptor, opened once, one
// component at a time without following links (common/safe_path.h); a symbolic link is then
// followed by hand, only while it stays inside the workspace. What the user sees:
// - a glob that is absolute or has a ".." component: INVALID_ARGUMENT, the attempt fails (as the
//   coordinator refuses such a job at submit, this only guards against a bad lease);
// - an entry that cannot be an artifact (a link leading outside the workspace or nowhere, a
//   FIFO, socket or device, a directory swapped for a link while it is looked at, a directory
//   whose path is already over common::kMaxRelativePathBytes) is skipped and noted in
//   `skipped`, which the agent logs as a warning with the job's prefix: the same as before these
//   checks, for the same kinds of entries. A FIFO is never opened, a device never read;
// - a matched file whose path cannot be recorded (control characters, invalid UTF-8, a name or
//   path over common/safe_path.h's limits) fails the collection: INVALID_ARGUMENT naming the
//   path (escaped) and the rule;
// - a file that changed between being found and being read (swapped for a link or another
//   file, a directory on its way swapped for a link) fails the collection: FAILED_PRECONDITION
//   or PERMISSION_DENIED naming the path.
// `**` does not descend into symlinked directories (no loops).
//
// Thread-compatible free functions; nothing is shared between calls.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/cas_client.h"
#include "common/digest.h"
#include "common/job_limits.h"
#include "common/safe_path.h"
#include "farm/v1/farm.pb.h"

namespace farm::agent {

// One file a glob matched.
struct ArtifactFile {
  std::string path;         // relative to the workspace, '/'-separated: what the job records
  std::string source;       // relative to the workspace, links resolved: what is read
  bool executable = false;  // the owner's execute bit of the file (the link's target)
  dev_t device = 0;         // the file found (a read checks it is still the one)
  ino_t inode = 0;
  common::Digest digest;  // filled by HashArtifacts
};

struct ArtifactMatches {
  std::shared_ptr<const common::BeneathRoot> root;  // the workspace the files are read from
  std::vector<ArtifactFile> files;                  // sorted by path, each path once
  std::vector<std::string> empty_globs;             // globs that matched no file (not an error)
  std::vector<std::string> skipped;  // "PATH: why" for links leaving the workspace, ...
};

// True when the path component `name` matches the glob component `pattern` ('*' and '?').
bool MatchComponent(absl::string_view pattern, absl::string_view name);

// Expands `globs` (already valid per common::ValidateArtifactGlob) inside `workspace` (the
// directory the agent opened when it created it, before any step ran). RESOURCE_EXHAUSTED when
// they match more than `max_files` files; INVALID_ARGUMENT for an invalid glob or a file whose
// path cannot be recorded. Unreadable directories are noted in `skipped`, not errors.
absl::StatusOr<ArtifactMatches> FindArtifacts(std::shared_ptr<const common::BeneathRoot> workspace,
                                              const std::vector<std::string>& globs,
                                              int max_files = common::kMaxArtifactsPerJob);
// The same in the directory at `workspace`, opened now; INTERNAL when it cannot be opened.
absl::StatusOr<ArtifactMatches> FindArtifacts(const std::string& workspace,
                                              const std::vector<std::string>& globs,
                                              int max_files = common::kMaxArtifactsPerJob);

// Opens a file found by FindArtifacts for reading, beneath `root` and following no link:
// FAILED_PRECONDITION or PERMISSION_DENIED when its source is no longer the regular file found.
absl::StatusOr<common::UniqueFd> OpenArtifact(const common::BeneathRoot& root,
                                              const ArtifactFile& file);

// Hashes each file (one read, through OpenArtifact; a file reached through several paths is
// read once) and fills its digest. The error names the path and keeps the cause's code.
absl::Status HashArtifacts(ArtifactMatches& matches);

struct UploadStats {
  int files = 0;           // files listed
  int blobs = 0;           // distinct contents
  int uploaded_blobs = 0;  // the ones the CAS lacked
  int64_t uploaded_bytes = 0;
};

// Asks the CAS which of the files' blobs are missing and uploads those (each distinct content
// once, read through OpenArtifact). The error is the CAS client's, with the path of the file
// that failed; CANCELLED when `cancel` fired.
absl::StatusOr<UploadStats> UploadArtifacts(common::CasClient& cas, const ArtifactMatches& matches,
                                            common::CancelSource* cancel);

// The records for CompleteJobRequest.artifacts, in the files' order.
std::vector<farm::v1::Artifact> ToArtifactProtos(const std::vector<ArtifactFile>& files);

}  // namespace farm::agent
