// A job attempt's private working directory under the agent's --work_dir.
//
// Thread-compatible: one owner (the slot running the attempt).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace farm::agent {

// `id` (a job id) as a file name: anything outside [A-Za-z0-9._-] becomes '_', and "", "." and
// ".." get a '_' in front.
std::string SafeFileName(absl::string_view id);

class Workspace {
 public:
  // Creates `work_dir/<job_id>-<attempt>-<random hex>` (job_id with anything outside
  // [A-Za-z0-9._-] replaced by '_'). `work_dir` must exist. The directory is new: a retried
  // attempt never sees a previous attempt's files. INTERNAL when it cannot be created.
  static absl::StatusOr<Workspace> Create(absl::string_view work_dir, absl::string_view job_id,
                                          uint32_t attempt);

  // Absolute when `work_dir` was absolute.
  const std::string& path() const { return path_; }

  // Deletes the directory and everything in it, including read-only subdirectories a step left
  // behind. INTERNAL with the first path that could not be removed.
  absl::Status Remove() const;

 private:
  explicit Workspace(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

}  // namespace farm::agent
