// Small POSIX I/O helpers shared by every binary: the one errno → Status mapping, and loops
// that write or read a whole buffer across short transfers and EINTR.
//
// Error codes follow absl::ErrnoToStatusCode (ENOENT → NOT_FOUND, EACCES/EPERM →
// PERMISSION_DENIED, ENOSPC → RESOURCE_EXHAUSTED, EISDIR/ENOTDIR → FAILED_PRECONDITION, ...);
// the message is "<what>: <strerror>". Thread-safe (no state).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace farm::common {

// The Status for a failed system call: "<what>: <strerror(err)>" with errno's canonical code.
absl::Status ErrnoStatus(int err, absl::string_view what);

// Writes all of `data` to fd (write(2), retrying short writes and EINTR). The error names
// `what` (a path or a description) and the call.
absl::Status WriteAll(int fd, absl::string_view data, absl::string_view what = "write");

// pwrite(2)s all of `data` at `offset`.
absl::Status WriteAllAt(int fd, absl::string_view data, int64_t offset,
                        absl::string_view what = "write");

// pread(2)s exactly `n` bytes at `offset` into buf; false at a premature end of file.
absl::StatusOr<bool> ReadExactlyAt(int fd, char* buf, size_t n, int64_t offset,
                                   absl::string_view what = "read");

// Issue 13 (backup and restore): files that are never modified once written (blobs, RocksDB
// table files) are shared by hard links where the file system allows.
//
// Makes `dst` (which must not exist) hold the content of the regular file `src`: a hard link
// when both are on one file system that allows it (*linked = true), else a copy (synced, with
// src's permission bits). Errors name the paths; a failed copy leaves no `dst` behind.
absl::Status LinkOrCopyFile(const std::string& src, const std::string& dst, bool* linked);
// A synced copy of `src` into the new file `dst` (0644 unless `mode` says otherwise).
absl::Status CopyFile(const std::string& src, const std::string& dst, int mode = 0644);
// fsync(2)s a directory, so that the names created in it survive a crash.
absl::Status SyncDirectory(const std::string& dir);
// Writes `content` to `path` through a temporary file (PATH.tmp) renamed over it, so that a
// reader (a test waiting for a port file) sees the whole file or none. FAILED_PRECONDITION
// naming the file when it cannot.
absl::Status WriteFileAtomically(const std::string& path, const std::string& content);
// Bytes of the regular files under `dir`, recursively; what cannot be read counts 0.
int64_t DirectoryBytes(const std::string& dir);

}  // namespace farm::common
