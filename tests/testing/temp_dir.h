// A fresh directory for one test, removed (recursively) when the TempDir goes away.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace farm::testing {

// Thread-compatible. Not copyable; movable.
class TempDir {
 public:
  // Creates a unique directory under $TEST_TMPDIR, else $TMPDIR, else /tmp, named after
  // `prefix`. INTERNAL when it cannot be created.
  static absl::StatusOr<TempDir> Create(const std::string& prefix = "farm-test");

  TempDir(TempDir&& other) noexcept;
  TempDir& operator=(TempDir&& other) noexcept;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  // Removes the tree, unless Keep() was called. Errors are ignored (best effort).
  ~TempDir();

  // Absolute path, without a trailing slash.
  const std::string& path() const { return path_; }
  // path() + "/" + relative.
  std::string Join(const std::string& relative) const;
  // Leaves the directory on disk (e.g. for a post-mortem after a failure).
  void Keep() { keep_ = true; }

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  void Remove();

  std::string path_;
  bool keep_ = false;
};

// Small file helpers for tests: whole-file reads and writes. Errors carry the path.
absl::StatusOr<std::string> ReadFile(const std::string& path);
absl::Status WriteFile(const std::string& path, const std::string& contents);
bool FileExists(const std::string& path);
// The file's contents, or "" when it cannot be read (for logs in failure messages).
std::string ReadFileOrEmpty(const std::string& path);
// The last `max_lines` lines of `text`.
std::string TailLines(const std::string& text, size_t max_lines);

}  // namespace farm::testing
