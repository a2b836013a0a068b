// What backup.cc and restore.cc share: the file names inside a backup, and small file helpers.
// Only for coordinator/backup/. Thread-safe (no state).
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace farm::coordinator {

inline constexpr char kBlobListName[] = "blobs.txt";

// A directory to be made: its path without trailing slashes, its parent and its name.
struct BackupTarget {
  std::string path;
  std::string parent;
  std::string name;
};
// Checks that `path` is absolute, does not exist, and that its parent is a directory. `what`
// names it in the errors ("backup dir"): INVALID_ARGUMENT, ALREADY_EXISTS ("backup dir X
// exists"), FAILED_PRECONDITION (the parent is missing or not a directory).
absl::StatusOr<BackupTarget> CheckNewDir(const std::string& path, absl::string_view what);

// Writes `content` to the new file `path` (0644), synced.
absl::Status WriteFileSynced(const std::string& path, absl::string_view content);

}  // namespace farm::coordinator
