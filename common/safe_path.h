// Safe paths: the one checker for the relative paths that name files inside a directory the farm
// owns (a job's workspace, a directory farmctl downloads into), and the walks that use such a
// path without ever leaving that directory.
//
// Paths come from untrusted places (job files, leases, the coordinator's job records, whatever a
// step left in its workspace), and the directories they are used in are changed by untrusted
// processes while the agent or farmctl works in them: a step's background process can swap a
// directory for a symbolic link between any two system calls. So nothing here resolves a path
// string with the kernel's own lookup. A walk starts from a directory descriptor opened once
// (BeneathRoot) and takes one component at a time: fstatat(AT_SYMLINK_NOFOLLOW) to see what it
// is, then openat(O_NOFOLLOW | O_DIRECTORY) relative to the descriptor of its parent. A
// component swapped for a link after it was looked at fails to open (ELOOP/ENOTDIR) instead of
// being followed. Symbolic links are resolved here, in user space, and followed only while
// every step stays beneath the root: ".." pops the walk's own stack of opened directories and
// is refused at the root; an absolute target is accepted only when it names a path below the
// root by one of the root's own absolute names. Files are opened relative to their directory's
// descriptor with O_NOFOLLOW | O_NONBLOCK and accepted only when fstat says S_ISREG (a FIFO
// cannot block the caller, a device is never read).
//
// What this cannot prevent: a process that can rename directories may move a directory out of
// the root while a walk holds it open; what is then read is still that process's own files. Hard
// links are ordinary files (the kernel's protected_hardlinks keeps others' files out).
//
// Thread-safe: free functions without state; a BeneathRoot is immutable after Open.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/unique_fd.h"

namespace farm::common {

// The limits on a relative path, named once (job_limits.h's kMaxArtifactPathBytes is this one).
inline constexpr int kMaxRelativePathBytes = 4096;  // a whole path (PATH_MAX)
inline constexpr int kMaxPathComponentBytes = 255;  // one name (NAME_MAX)
inline constexpr int kMaxSymlinkHops = 40;          // links followed in one walk (MAXSYMLINKS)
inline constexpr int kMaxTreeDepth = 1000;          // directories deep that RemoveTreeAt goes

// A plain relative path: non-empty, at most kMaxRelativePathBytes, '/'-separated components that
// are neither empty (no leading, trailing or doubled '/') nor "." or "..", each at most
// kMaxPathComponentBytes, valid UTF-8 without control characters (C0, DEL, C1; NUL among them).
// OK or INVALID_ARGUMENT saying which rule is broken (callers prefix which path). Pure: no system
// call, no allocation beyond the message; the entry point of the path checker's fuzzer.
absl::Status CheckRelativePath(absl::string_view path);

// One component of such a path (a file name): the same rules, and no '/'.
absl::Status CheckPathComponent(absl::string_view name);

// A directory opened once, the root of walks beneath it.
class BeneathRoot {
 public:
  // Opens the directory `path`, named by the operator or by the farm itself: symbolic links in
  // it are followed like in any path an operator gives. NOT_FOUND / PERMISSION_DENIED (errno's
  // code) when it cannot be opened, FAILED_PRECONDITION when it is not a directory.
  // `label` names the root in messages ("the workspace"; `path` when empty).
  static absl::StatusOr<BeneathRoot> Open(const std::string& path, std::string label = "");
  // `path`'s absolute names for names(): made absolute (against the current directory) and its
  // real path now, each without a trailing '/' ("/" is "").
  static std::vector<std::string> NamesOf(const std::string& path);
  // Takes over `fd` (a directory); `names` as in names() below.
  BeneathRoot(UniqueFd fd, std::vector<std::string> names, std::string label);

  int fd() const { return fd_.get(); }
  // The root's absolute names (as it was opened, made absolute, and its real path then): an
  // absolute link target below one of them is read as relative to the root.
  const std::vector<std::string>& names() const { return names_; }
  const std::string& label() const { return label_; }

 private:
  UniqueFd fd_;
  std::vector<std::string> names_;
  std::string label_;
};

struct WalkOptions {
  // Follow symbolic links whose targets stay beneath the root; false: a link is refused.
  bool follow_links = true;
  // Also follow a link in the last component (else the walk ends on the link itself).
  bool follow_last = true;
  // Create the missing directories on the way (not the last component), mode 0777 & ~umask.
  bool create_dirs = false;
};

// Where a walk ended.
struct WalkEnd {
  UniqueFd dir;          // the directory that holds `name`, beneath the root
  std::string name;      // the last component; "" when the path named the root itself
  std::string resolved;  // the path from the root with links resolved ("" for the root)
  bool exists = false;   // whether `name` exists (false: a missing name or a dangling link)
  struct stat st = {};   // lstat of `name` when it exists
};

// Walks `relative` ('/'-separated; empty and "." components are skipped, ".." goes up within
// the walk and never above the root) beneath `root`. Error messages name the part walked so far,
// links resolved and quoted (callers say which path they walked): PERMISSION_DENIED for a link
// that leads outside the root ("\"out\" is a symbolic link leading outside the workspace"), or
// for any link without follow_links; FAILED_PRECONDITION for a component on the way that is not
// a directory, one that changed while being walked (a directory swapped for a link), or more
// than kMaxSymlinkHops links; NOT_FOUND for a missing directory on the way (without
// create_dirs); errno's code otherwise.
absl::StatusOr<WalkEnd> WalkBeneath(const BeneathRoot& root, absl::string_view relative,
                                    const WalkOptions& options = {});

// Opens the directory `relative` beneath `root` (links followed only beneath it). Errors as
// WalkBeneath's; NOT_FOUND when it does not exist; FAILED_PRECONDITION when it is not a
// directory.
absl::StatusOr<UniqueFd> OpenDirBeneath(const BeneathRoot& root, absl::string_view relative,
                                        const WalkOptions& options = {});

// Opens `name` in `dir` for reading, without following a link and without blocking: only a
// regular file is opened (looked at with fstatat first, so that a device is never opened, and
// checked again with fstat on the descriptor). FAILED_PRECONDITION "not a regular file" (also
// for a link), or "changed while being read" when `expect` (may be null) names another file
// (st_dev/st_ino) than the one opened; errno's code otherwise. Messages start with `label`.
absl::StatusOr<UniqueFd> OpenRegularFileAt(int dir, const std::string& name,
                                           absl::string_view label,
                                           const struct stat* expect = nullptr);

// Creates `name` in `dir` as a new file (O_CREAT | O_EXCL | O_NOFOLLOW: whatever is there, a
// planted link too, is never followed): ALREADY_EXISTS when something is; errno's code otherwise.
absl::StatusOr<UniqueFd> CreateFileAt(int dir, const std::string& name, mode_t mode,
                                      absl::string_view label);

// Removes `name` in `dir` and everything below it, never following a link (a link is removed,
// not its target) and giving the owner rwx on directories it cannot empty (read-only trees). OK
// when `name` does not exist. INTERNAL naming the first path (below `label`) that could not be
// removed; FAILED_PRECONDITION beyond kMaxTreeDepth levels.
absl::Status RemoveTreeAt(int dir, const std::string& name, absl::string_view label);

}  // namespace farm::common
