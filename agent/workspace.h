// A job attempt's private working directory under the agent's --work_dir.
//
// The directory is opened when it is created, before any step runs, and everything the agent
// does in it afterwards (staging inputs, collecting artifacts, removing it) goes through that
// descriptor (common/safe_path.h), never through its path: a step may rename or replace its
// workspace (or anything in it) with a symbolic link, and the agent still only touches what is
// inside the directory it created.
//
// Thread-compatible: one owner (the slot running the attempt). Copies share the descriptors.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/safe_path.h"
#include "common/unique_fd.h"

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

  // Absolute when `work_dir` was absolute. For the steps (their working directory) and for
  // messages; the agent's own reads and writes go through root().
  const std::string& path() const { return path_; }
  // The directory as it was created (labelled "the workspace" in messages).
  const std::shared_ptr<const common::BeneathRoot>& root() const { return root_; }

  // Deletes the directory and everything in it, including read-only subdirectories a step left
  // behind, without following any symbolic link in it (common::RemoveTreeAt, from the work
  // dir's descriptor). INTERNAL with the first path that could not be removed.
  absl::Status Remove() const;

 private:
  Workspace(std::string path, std::string name, std::shared_ptr<common::UniqueFd> work_dir,
            std::shared_ptr<const common::BeneathRoot> root)
      : path_(std::move(path)),
        name_(std::move(name)),
        work_dir_(std::move(work_dir)),
        root_(std::move(root)) {}

  std::string path_;
  std::string name_;                            // in the work dir
  std::shared_ptr<common::UniqueFd> work_dir_;  // the work dir, opened at Create
  std::shared_ptr<const common::BeneathRoot> root_;
};

}  // namespace farm::agent
