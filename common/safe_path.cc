#include "common/safe_path.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/posix_io.h"
#include "common/status_macros.h"
#include "common/text.h"

namespace farm::common {
namespace {

// The length of the character at text[i] when it is valid UTF-8 (no overlong form, no
// surrogate, at most U+10FFFF); 0 when it is not. `control`: it is a C0 or C1 control or DEL.
size_t CharAt(absl::string_view text, size_t i, bool* control) {
  const unsigned char c = static_cast<unsigned char>(text[i]);
  if (c < 0x80) {
    *control = c < 0x20 || c == 0x7f;
    return 1;
  }
  // The lead byte says how many continuation bytes follow, its payload bits, and the smallest
  // code point that needs that many (anything below is an overlong form).
  struct Lead {
    unsigned char mask, value;
    size_t extra;
    uint32_t min;
  };
  static constexpr Lead kLeads[] = {
      {0xE0, 0xC0, 1, 0x80}, {0xF0, 0xE0, 2, 0x800}, {0xF8, 0xF0, 3, 0x10000}};
  const Lead* lead = nullptr;
  for (const Lead& candidate : kLeads) {
    if ((c & candidate.mask) == candidate.value) lead = &candidate;
  }
  if (lead == nullptr) return 0;
  const size_t extra = lead->extra;
  const uint32_t min = lead->min;
  uint32_t code = c & static_cast<unsigned char>(~lead->mask);
  if (text.size() - i <= extra) return 0;
  for (size_t k = 1; k <= extra; ++k) {
    const unsigned char cc = static_cast<unsigned char>(text[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    code = (code << 6) | (cc & 0x3F);
  }
  if (code < min || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return 0;
  *control = code >= 0x80 && code <= 0x9F;
  return extra + 1;
}

// The character rules of CheckRelativePath.
absl::Status CheckCharacters(absl::string_view path) {
  for (size_t i = 0; i < path.size();) {
    bool control = false;
    const size_t n = CharAt(path, i, &control);
    if (n == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(Quote(path), " is not valid UTF-8 (at byte ", i, ")"));
    }
    if (control) {
      return absl::InvalidArgumentError(absl::StrCat(
          Quote(path), path[i] == '\0' ? " contains a NUL byte" : " contains a control character"));
    }
    i += n;
  }
  return absl::OkStatus();
}

absl::Status CheckComponent(absl::string_view path, absl::string_view part) {
  if (part.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Quote(path),
                     " is not a plain relative path: it has an empty component "
                     "(a leading, trailing or doubled '/')"));
  }
  if (part == "." || part == "..") {
    return absl::InvalidArgumentError(absl::StrCat(
        Quote(path), " is not a plain relative path: it has a \"", part, "\" component"));
  }
  if (part.size() > static_cast<size_t>(kMaxPathComponentBytes)) {
    return absl::InvalidArgumentError(absl::StrCat(Quote(path), " has a component of ", part.size(),
                                                   " bytes; the limit is ",
                                                   kMaxPathComponentBytes));
  }
  return absl::OkStatus();
}

// The directory `fd` opened again: a new open file description, so that listing it (readdir
// moves the offset) never disturbs another listing of the same directory, as dup would.
absl::StatusOr<UniqueFd> Dup(int fd) {
  UniqueFd copy(::openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (copy.get() < 0) return ErrnoStatus(errno, "cannot open a directory again");
  return copy;
}

std::string Join(const std::vector<std::string>& parts, absl::string_view last) {
  std::string joined = absl::StrJoin(parts, "/");
  if (!last.empty()) absl::StrAppend(&joined, joined.empty() ? "" : "/", last);
  return joined;
}

// One walk beneath a root: see WalkBeneath. Holds at most two descriptors at once: the
// directory it is in, and the one it opens next; ".." walks down again from the root along the
// names already resolved (each opened without following links).
class Walker {
 public:
  Walker(const BeneathRoot& root, absl::string_view path, const WalkOptions& options)
      : root_(root), path_(path), options_(options) {}

  absl::StatusOr<WalkEnd> Run() {
    FARM_ASSIGN_OR_RETURN(top_, Dup(root_.fd()));
    Push(path_);
    while (!pending_.empty()) {
      const std::string name = std::move(pending_.front());
      pending_.pop_front();
      if (name == "..") {
        if (names_.empty()) return Outside(name);
        names_.pop_back();
        FARM_RETURN_IF_ERROR(Reopen());
        continue;
      }
      const bool last = pending_.empty();
      struct stat st;
      if (::fstatat(top_.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno != ENOENT) return Errno(errno, name);
        if (last) return End(name, nullptr);
        if (!options_.create_dirs) {
          return absl::NotFoundError(absl::StrCat(Here(name), " does not exist"));
        }
        if (::mkdirat(top_.get(), name.c_str(), 0777) != 0 && errno != EEXIST) {
          return Errno(errno, name);
        }
        if (::fstatat(top_.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
          return Errno(errno, name);
        }
      }
      if (S_ISLNK(st.st_mode) && (!last || options_.follow_last)) {
        FARM_RETURN_IF_ERROR(FollowLink(name));
        continue;
      }
      if (last) return End(name, &st);
      if (!S_ISDIR(st.st_mode)) {
        return absl::FailedPreconditionError(absl::StrCat(Here(name), " is not a directory"));
      }
      FARM_RETURN_IF_ERROR(Enter(name));
    }
    // The path ended in a directory already entered (the root, or "a/.."): end on it.
    if (names_.empty()) {
      WalkEnd end;
      FARM_ASSIGN_OR_RETURN(end.dir, Dup(root_.fd()));
      end.exists = ::fstat(root_.fd(), &end.st) == 0;
      return end;
    }
    std::string name = std::move(names_.back());
    names_.pop_back();
    FARM_RETURN_IF_ERROR(Reopen());
    struct stat st;
    if (::fstatat(top_.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return Errno(errno, name);
    }
    return End(name, &st);
  }

 private:
  // The path walked so far, ending in `name`, quoted for a message.
  std::string Here(absl::string_view name) const { return Quote(Join(names_, name)); }

  absl::Status Errno(int err, absl::string_view name) const { return ErrnoStatus(err, Here(name)); }
  // A link at `name` (or, for "..", the last link followed) leads outside the root.
  absl::Status Outside(absl::string_view name) const {
    if (name == "..") {
      if (last_link_.empty()) {
        return absl::PermissionDeniedError(
            absl::StrCat(Quote(path_), ": \"..\" leads outside ", root_.label()));
      }
      return absl::PermissionDeniedError(
          absl::StrCat(Quote(last_link_), " is a symbolic link leading outside ", root_.label()));
    }
    return absl::PermissionDeniedError(
        absl::StrCat(Here(name), " is a symbolic link leading outside ", root_.label()));
  }
  absl::Status Changed(absl::string_view name) const {
    return absl::FailedPreconditionError(absl::StrCat(Here(name), " changed while being walked"));
  }

  // Puts the components of `text` before the ones still pending.
  void Push(absl::string_view text) {
    std::vector<std::string> parts;
    for (absl::string_view part : absl::StrSplit(text, '/')) {
      if (!part.empty() && part != ".") parts.emplace_back(part);
    }
    pending_.insert(pending_.begin(), parts.begin(), parts.end());
  }

  absl::Status FollowLink(const std::string& name) {
    if (!options_.follow_links) {
      return absl::PermissionDeniedError(absl::StrCat(Here(name), " is a symbolic link"));
    }
    if (++hops_ > kMaxSymlinkHops) {
      return absl::FailedPreconditionError(
          absl::StrCat("more than ", kMaxSymlinkHops, " symbolic links (a loop?) at ", Here(name)));
    }
    char buffer[PATH_MAX];
    const ssize_t n = ::readlinkat(top_.get(), name.c_str(), buffer, sizeof(buffer));
    if (n < 0) return errno == EINVAL ? Changed(name) : Errno(errno, name);
    if (static_cast<size_t>(n) >= sizeof(buffer)) {
      return absl::FailedPreconditionError(
          absl::StrCat(Here(name), ": the link's target is too long"));
    }
    const absl::string_view target(buffer, static_cast<size_t>(n));
    last_link_ = Join(names_, name);
    if (!absl::StartsWith(target, "/")) {
      Push(target);
      return absl::OkStatus();
    }
    for (const std::string& root_name : root_.names()) {
      if (target == root_name || absl::StartsWith(target, absl::StrCat(root_name, "/"))) {
        names_.clear();
        FARM_ASSIGN_OR_RETURN(top_, Dup(root_.fd()));
        Push(target.substr(root_name.size()));
        return absl::OkStatus();
      }
    }
    return Outside(name);
  }

  absl::Status Enter(const std::string& name) {
    UniqueFd next(
        ::openat(top_.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (next.get() < 0) {
      return (errno == ELOOP || errno == ENOTDIR) ? Changed(name) : Errno(errno, name);
    }
    top_ = std::move(next);
    names_.push_back(name);
    return absl::OkStatus();
  }

  // Opens names_ again from the root, following no link (they were resolved already).
  absl::Status Reopen() {
    FARM_ASSIGN_OR_RETURN(top_, Dup(root_.fd()));
    std::vector<std::string> names = std::move(names_);
    names_.clear();
    for (const std::string& name : names) FARM_RETURN_IF_ERROR(Enter(name));
    return absl::OkStatus();
  }

  absl::StatusOr<WalkEnd> End(const std::string& name, const struct stat* st) {
    WalkEnd end;
    end.resolved = Join(names_, name);
    end.name = name;
    end.dir = std::move(top_);
    end.exists = st != nullptr;
    if (st != nullptr) end.st = *st;
    return end;
  }

  const BeneathRoot& root_;
  const std::string path_;
  const WalkOptions options_;
  UniqueFd top_;                     // the directory names_ leads to
  std::vector<std::string> names_;   // resolved, from the root
  std::deque<std::string> pending_;  // still to walk
  int hops_ = 0;
  std::string last_link_;  // the last link followed, for messages
};

absl::Status RemoveAt(int dir, const std::string& name, const std::string& label, int depth) {
  if (::unlinkat(dir, name.c_str(), 0) == 0 || errno == ENOENT) return absl::OkStatus();
  if (errno != EISDIR && errno != EPERM) {
    return absl::InternalError(absl::StrCat("cannot remove ", label, ": ", std::strerror(errno)));
  }
  if (depth >= kMaxTreeDepth) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot remove ", label, ": more than ", kMaxTreeDepth, " levels deep"));
  }
  const int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
  UniqueFd fd(::openat(dir, name.c_str(), flags));
  if (fd.get() < 0 && errno == EACCES) {
    // A directory without read permission: give the owner rwx (never through a link).
    ::fchmodat(dir, name.c_str(), 0700, AT_SYMLINK_NOFOLLOW);
    fd.Reset(::openat(dir, name.c_str(), flags));
  }
  if (fd.get() < 0) {
    // Swapped for a link or a file since unlinkat looked: remove whatever it is now.
    if ((errno == ELOOP || errno == ENOTDIR) && ::unlinkat(dir, name.c_str(), 0) == 0) {
      return absl::OkStatus();
    }
    return absl::InternalError(absl::StrCat("cannot remove ", label, ": ", std::strerror(errno)));
  }
  struct stat st;
  if (::fstat(fd.get(), &st) == 0 && (st.st_mode & 0700) != 0700) ::fchmod(fd.get(), 0700);
  std::vector<std::string> names;
  {
    const int copy = ::fcntl(fd.get(), F_DUPFD_CLOEXEC, 0);
    DIR* entries = copy >= 0 ? ::fdopendir(copy) : nullptr;
    if (entries == nullptr) {
      const int err = errno;
      if (copy >= 0) ::close(copy);
      return absl::InternalError(absl::StrCat("cannot list ", label, ": ", std::strerror(err)));
    }
    while (struct dirent* entry = ::readdir(entries)) {
      const absl::string_view child = entry->d_name;
      if (child != "." && child != "..") names.emplace_back(child);
    }
    ::closedir(entries);
  }
  for (const std::string& child : names) {
    FARM_RETURN_IF_ERROR(RemoveAt(fd.get(), child, absl::StrCat(label, "/", child), depth + 1));
  }
  fd.Reset();
  if (::unlinkat(dir, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    return absl::InternalError(absl::StrCat("cannot remove ", label, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckRelativePath(absl::string_view path) {
  if (path.empty()) return absl::InvalidArgumentError("the path is empty");
  if (path.size() > static_cast<size_t>(kMaxRelativePathBytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the path is ", path.size(), " bytes; the limit is ", kMaxRelativePathBytes));
  }
  FARM_RETURN_IF_ERROR(CheckCharacters(path));
  if (path[0] == '/') {
    return absl::InvalidArgumentError(absl::StrCat(Quote(path), " is an absolute path"));
  }
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    FARM_RETURN_IF_ERROR(CheckComponent(path, part));
  }
  return absl::OkStatus();
}

absl::Status CheckPathComponent(absl::string_view name) {
  if (name.find('/') != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(Quote(name), " is not one name: it has a '/'"));
  }
  return CheckRelativePath(name);
}

BeneathRoot::BeneathRoot(UniqueFd fd, std::vector<std::string> names, std::string label)
    : fd_(std::move(fd)), names_(std::move(names)), label_(std::move(label)) {}

absl::StatusOr<BeneathRoot> BeneathRoot::Open(const std::string& path, std::string label) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOTDIR) {
      return absl::FailedPreconditionError(absl::StrCat(path, ": not a directory"));
    }
    return ErrnoStatus(errno, absl::StrCat("cannot open ", path));
  }
  std::vector<std::string> names = NamesOf(path);
  return BeneathRoot(std::move(fd), std::move(names), label.empty() ? path : std::move(label));
}

std::vector<std::string> BeneathRoot::NamesOf(const std::string& path) {
  std::vector<std::string> names;
  auto add = [&names](std::string name) {
    while (!name.empty() && name.back() == '/') name.pop_back();  // "/" becomes ""
    for (const std::string& known : names) {
      if (known == name) return;
    }
    names.push_back(std::move(name));
  };
  if (absl::StartsWith(path, "/")) {
    add(path);
  } else if (char* cwd = ::getcwd(nullptr, 0); cwd != nullptr) {
    add(absl::StrCat(cwd, "/", path));
    std::free(cwd);
  }
  if (char* real = ::realpath(path.c_str(), nullptr); real != nullptr) {
    add(real);
    std::free(real);
  }
  return names;
}

absl::StatusOr<WalkEnd> WalkBeneath(const BeneathRoot& root, absl::string_view relative,
                                    const WalkOptions& options) {
  return Walker(root, relative, options).Run();
}

absl::StatusOr<UniqueFd> OpenDirBeneath(const BeneathRoot& root, absl::string_view relative,
                                        const WalkOptions& options) {
  FARM_ASSIGN_OR_RETURN(WalkEnd end, WalkBeneath(root, relative, options));
  if (end.name.empty()) return std::move(end.dir);
  const std::string where = Quote(end.resolved);
  if (!end.exists) {
    if (!options.create_dirs) return absl::NotFoundError(absl::StrCat(where, " does not exist"));
    if (::mkdirat(end.dir.get(), end.name.c_str(), 0777) != 0 && errno != EEXIST) {
      return ErrnoStatus(errno, absl::StrCat("cannot create ", where));
    }
  } else if (S_ISLNK(end.st.st_mode)) {  // only without follow_links or follow_last
    return absl::PermissionDeniedError(absl::StrCat(where, " is a symbolic link"));
  } else if (!S_ISDIR(end.st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(where, " is not a directory"));
  }
  UniqueFd fd(
      ::openat(end.dir.get(), end.name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ELOOP || errno == ENOTDIR) {
      return absl::FailedPreconditionError(absl::StrCat(where, " changed while being walked"));
    }
    return ErrnoStatus(errno, where);
  }
  return fd;
}

absl::StatusOr<UniqueFd> OpenRegularFileAt(int dir, const std::string& name,
                                           absl::string_view label, const struct stat* expect) {
  struct stat before;
  if (::fstatat(dir, name.c_str(), &before, AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoStatus(errno, label);
  }
  const auto not_regular = [&] {
    return absl::FailedPreconditionError(absl::StrCat(label, ": not a regular file"));
  };
  if (!S_ISREG(before.st_mode)) return not_regular();
  UniqueFd fd(
      ::openat(dir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (fd.get() < 0) return errno == ELOOP ? not_regular() : ErrnoStatus(errno, label);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, label);
  if (!S_ISREG(st.st_mode)) return not_regular();
  const struct stat& want = expect != nullptr ? *expect : before;
  if (st.st_dev != want.st_dev || st.st_ino != want.st_ino) {
    return absl::FailedPreconditionError(absl::StrCat(label, ": changed while being read"));
  }
  return fd;
}

absl::StatusOr<UniqueFd> CreateFileAt(int dir, const std::string& name, mode_t mode,
                                      absl::string_view label) {
  UniqueFd fd(
      ::openat(dir, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
  if (fd.get() < 0) {
    if (errno == EEXIST) return absl::AlreadyExistsError(absl::StrCat(label, " already exists"));
    return ErrnoStatus(errno, absl::StrCat("cannot create ", label));
  }
  return fd;
}

absl::Status RemoveTreeAt(int dir, const std::string& name, absl::string_view label) {
  return RemoveAt(dir, name, std::string(label), 0);
}

}  // namespace farm::common
