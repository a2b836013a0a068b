#include "agent/artifacts.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/posix_io.h"
#include "common/status_macros.h"
#include "common/text.h"

namespace farm::agent {
namespace {

// The digest of what is left to read from `fd` (common::DigestFile does the same for a path).
absl::StatusOr<common::Digest> HashOpenFile(int fd) {
  common::Sha256Hasher hasher;
  std::vector<char> buffer(1 << 20);
  for (;;) {
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n == 0) return hasher.Finish();
    if (n < 0 && errno != EINTR) return common::ErrnoStatus(errno, "cannot read");
    if (n > 0) hasher.Update(buffer.data(), static_cast<size_t>(n));
  }
}

bool HasWildcard(absl::string_view component) {
  return component.find_first_of("*?") != absl::string_view::npos;
}

// Expands the globs of one job. Every look at the workspace is a walk beneath `root_`
// (common::WalkBeneath): symlinks are followed only while they stay inside it.
class Expander {
 public:
  Expander(std::shared_ptr<const common::BeneathRoot> root, int max_files)
      : root_(std::move(root)), max_files_(max_files) {}

  // Expands one glob; returns whether it matched at least one file.
  absl::StatusOr<bool> Expand(absl::string_view glob) {
    std::vector<std::string> components;
    for (absl::string_view part : absl::StrSplit(glob, '/')) {
      if (part.empty() || part == ".") continue;
      // "**/**" is "**".
      if (part == "**" && !components.empty() && components.back() == "**") continue;
      components.emplace_back(part);
    }
    const size_t before = matched_by_glob_;
    matched_by_glob_ = 0;
    FARM_RETURN_IF_ERROR(ExpandFrom("", components, 0));
    const bool any = matched_by_glob_ > 0;
    matched_by_glob_ = before;
    return any;
  }

  ArtifactMatches Take() {
    ArtifactMatches matches;
    matches.root = root_;
    matches.files.reserve(files_.size());
    for (auto& [path, file] : files_) matches.files.push_back(std::move(file));
    matches.skipped = std::move(skipped_);
    return matches;
  }

 private:
  enum class Kind { kFile, kDirectory, kSkipped };

  struct Resolved {
    Kind kind = Kind::kSkipped;
    bool symlink = false;
    std::string source;
    bool executable = false;
    dev_t device = 0;
    ino_t inode = 0;
  };

  static std::string Join(const std::string& dir, absl::string_view name) {
    return dir.empty() ? std::string(name) : absl::StrCat(dir, "/", name);
  }

  void Skip(const std::string& relative, absl::string_view why) {
    // One note per path: `**` can reach the same entry from several expansions. A name that
    // would not print plainly (a control character) is noted escaped.
    if (!noted_.insert(relative).second) return;
    const std::string shown =
        common::CheckRelativePath(relative).ok() ? relative : common::Quote(relative);
    skipped_.push_back(absl::StrCat(shown, ": ", why));
  }

  // Notes why a walk to `relative` failed.
  void SkipFailedWalk(const std::string& relative, const absl::Status& status) {
    if (status.code() == absl::StatusCode::kNotFound) return;  // a glob may match nothing
    if (status.code() == absl::StatusCode::kPermissionDenied) {
      Skip(relative, "a symbolic link to a path outside the workspace");
    } else {
      Skip(relative, status.message());
    }
  }

  // What `relative` is, following a symlink only when it resolves inside the workspace. A
  // missing entry is kSkipped without a note (globs are allowed to match nothing).
  Resolved Resolve(const std::string& relative) {
    Resolved r;
    absl::StatusOr<common::WalkEnd> end =
        common::WalkBeneath(*root_, relative, {.follow_links = true, .follow_last = false});
    if (end.ok() && end->exists && S_ISLNK(end->st.st_mode)) {
      r.symlink = true;
      end = common::WalkBeneath(*root_, relative);
      if (end.ok() && !end->exists) {
        Skip(relative, "a symbolic link that does not resolve");
        return r;
      }
    }
    if (!end.ok()) {
      SkipFailedWalk(relative, end.status());
      return r;
    }
    if (!end->exists) return r;
    const struct stat& st = end->st;
    r.source = end->resolved;
    if (S_ISREG(st.st_mode)) {
      r.kind = Kind::kFile;
      r.executable = (st.st_mode & S_IXUSR) != 0;
      r.device = st.st_dev;
      r.inode = st.st_ino;
    } else if (S_ISDIR(st.st_mode)) {
      r.kind = Kind::kDirectory;
    } else {
      Skip(relative, "not a regular file");
    }
    return r;
  }

  struct Entry {
    std::string name;
    bool directory = false;  // a directory itself, not a link to one
  };

  // The entries of directory `relative`, sorted by name (for a deterministic order of notes and
  // errors).
  std::vector<Entry> List(const std::string& relative) {
    std::vector<Entry> entries;
    const std::string shown = relative.empty() ? "." : relative;
    if (relative.size() > static_cast<size_t>(common::kMaxRelativePathBytes)) {
      // Nothing below could be recorded; and a step's endless tree must not be walked for ever.
      Skip(relative, absl::StrCat("not searched: the path is ", relative.size(),
                                  " bytes; the limit is ", common::kMaxRelativePathBytes));
      return entries;
    }
    absl::StatusOr<common::UniqueFd> fd = common::OpenDirBeneath(*root_, relative);
    if (!fd.ok()) {
      if (fd.status().code() == absl::StatusCode::kPermissionDenied) {
        SkipFailedWalk(shown, fd.status());
      } else {
        Skip(shown, absl::StrCat("cannot list the directory: ", fd.status().message()));
      }
      return entries;
    }
    const int dir_fd = fd->get();
    DIR* dir = ::fdopendir(dir_fd);
    if (dir == nullptr) {
      Skip(shown, absl::StrCat("cannot list the directory: ", std::strerror(errno)));
      return entries;
    }
    fd->Release();  // closedir closes it
    while (struct dirent* entry = ::readdir(dir)) {
      const absl::string_view name = entry->d_name;
      if (name == "." || name == "..") continue;
      bool directory = entry->d_type == DT_DIR;
      if (entry->d_type == DT_UNKNOWN) {
        struct stat st;
        directory =
            ::fstatat(dir_fd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
      }
      entries.push_back({std::string(name), directory});
    }
    ::closedir(dir);
    std::sort(entries.begin(), entries.end(),
              [](const Entry& a, const Entry& b) { return a.name < b.name; });
    return entries;
  }

  absl::Status AddFile(const std::string& relative, const Resolved& r) {
    ++matched_by_glob_;
    if (files_.count(relative) > 0) return absl::OkStatus();
    if (absl::Status s = common::CheckRelativePath(relative); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot record a file as an artifact: ", s.message()));
    }
    if (static_cast<int>(files_.size()) >= max_files_) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the artifacts globs match more than ", max_files_,
                       " files (the limit per job); narrow them or archive the files first"));
    }
    ArtifactFile file;
    file.path = relative;
    file.source = r.source;
    file.executable = r.executable;
    file.device = r.device;
    file.inode = r.inode;
    files_.emplace(relative, std::move(file));
    return absl::OkStatus();
  }

  // Every file below directory `relative`. Symlinked files are followed (inside the workspace);
  // symlinked directories are not descended into.
  absl::Status AddTree(const std::string& relative) {
    for (const Entry& entry : List(relative)) {
      const std::string child = Join(relative, entry.name);
      const Resolved r = Resolve(child);
      if (r.kind == Kind::kFile) {
        FARM_RETURN_IF_ERROR(AddFile(child, r));
      } else if (r.kind == Kind::kDirectory && !r.symlink) {
        FARM_RETURN_IF_ERROR(AddTree(child));
      }
    }
    return absl::OkStatus();
  }

  // `relative` (a directory, or the workspace when empty) matched components[0, i); matches the
  // rest below it.
  absl::Status ExpandFrom(const std::string& relative, const std::vector<std::string>& components,
                          size_t i) {
    if (i == components.size()) {
      if (relative.empty()) return AddTree(relative);
      const Resolved r = Resolve(relative);
      if (r.kind == Kind::kFile) return AddFile(relative, r);
      if (r.kind == Kind::kDirectory) return AddTree(relative);
      return absl::OkStatus();
    }
    const std::string& component = components[i];
    if (component == "**") {
      if (i + 1 == components.size()) return AddTree(relative);
      FARM_RETURN_IF_ERROR(ExpandFrom(relative, components, i + 1));  // zero directories
      // Only into directories themselves, never through a link (no loops). Descending walks
      // from the root again, so a directory swapped for a link meanwhile is not followed.
      for (const Entry& entry : List(relative)) {
        if (entry.directory) {
          FARM_RETURN_IF_ERROR(ExpandFrom(Join(relative, entry.name), components, i));
        }
      }
      return absl::OkStatus();
    }
    const bool last = i + 1 == components.size();
    auto descend = [&](const std::string& child) -> absl::Status {
      if (last) return ExpandFrom(child, components, i + 1);
      const Resolved r = Resolve(child);
      if (r.kind != Kind::kDirectory) return absl::OkStatus();
      return ExpandFrom(child, components, i + 1);
    };
    if (!HasWildcard(component)) return descend(Join(relative, component));
    for (const Entry& entry : List(relative)) {
      if (MatchComponent(component, entry.name)) {
        FARM_RETURN_IF_ERROR(descend(Join(relative, entry.name)));
      }
    }
    return absl::OkStatus();
  }

  const std::shared_ptr<const common::BeneathRoot> root_;
  const int max_files_;
  std::map<std::string, ArtifactFile> files_;  // by path: sorted, each once
  std::vector<std::string> skipped_;
  std::set<std::string> noted_;
  size_t matched_by_glob_ = 0;
};

}  // namespace

bool MatchComponent(absl::string_view pattern, absl::string_view name) {
  // Greedy with one backtrack point (the last '*'): linear in practice, no recursion.
  size_t p = 0;
  size_t n = 0;
  size_t star = absl::string_view::npos;
  size_t star_n = 0;
  while (n < name.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      ++p;
      ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      star_n = n;
    } else if (star != absl::string_view::npos) {
      p = star + 1;
      n = ++star_n;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

absl::StatusOr<ArtifactMatches> FindArtifacts(std::shared_ptr<const common::BeneathRoot> workspace,
                                              const std::vector<std::string>& globs,
                                              int max_files) {
  Expander expander(std::move(workspace), max_files);
  std::vector<std::string> empty;
  for (const std::string& glob : globs) {
    if (absl::Status s = common::ValidateArtifactGlob(glob); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("artifacts: ", s.message()));
    }
    FARM_ASSIGN_OR_RETURN(const bool matched, expander.Expand(glob));
    if (!matched) empty.push_back(glob);
  }
  ArtifactMatches matches = expander.Take();
  matches.empty_globs = std::move(empty);
  return matches;
}

absl::StatusOr<ArtifactMatches> FindArtifacts(const std::string& workspace,
                                              const std::vector<std::string>& globs,
                                              int max_files) {
  absl::StatusOr<common::BeneathRoot> root = common::BeneathRoot::Open(workspace, "the workspace");
  if (!root.ok()) {
    return absl::InternalError(
        absl::StrCat("cannot open the workspace ", workspace, ": ", root.status().message()));
  }
  return FindArtifacts(std::make_shared<const common::BeneathRoot>(*std::move(root)), globs,
                       max_files);
}

absl::StatusOr<common::UniqueFd> OpenArtifact(const common::BeneathRoot& root,
                                              const ArtifactFile& file) {
  // The source has no link left in it: one now is a swap, and is refused, not followed.
  const common::WalkOptions no_links{.follow_links = false, .follow_last = false};
  FARM_ASSIGN_OR_RETURN(common::WalkEnd end, common::WalkBeneath(root, file.source, no_links));
  if (!end.exists) {
    return absl::NotFoundError(absl::StrCat(file.path, ": it is gone since it was found"));
  }
  struct stat expect = {};
  expect.st_dev = file.device;
  expect.st_ino = file.inode;
  return common::OpenRegularFileAt(end.dir.get(), end.name, "the file", &expect);
}

absl::Status HashArtifacts(ArtifactMatches& matches) {
  absl::flat_hash_map<std::pair<dev_t, ino_t>, common::Digest> by_file;
  for (ArtifactFile& file : matches.files) {
    auto it = by_file.find(std::make_pair(file.device, file.inode));
    if (it == by_file.end()) {
      absl::StatusOr<common::UniqueFd> fd = OpenArtifact(*matches.root, file);
      const absl::StatusOr<common::Digest> digest =
          fd.ok() ? HashOpenFile(fd->get()) : absl::StatusOr<common::Digest>(fd.status());
      if (!digest.ok()) {
        return absl::Status(digest.status().code(), absl::StrCat("cannot hash artifact ", file.path,
                                                                 ": ", digest.status().message()));
      }
      it = by_file.emplace(std::make_pair(file.device, file.inode), *digest).first;
    }
    file.digest = it->second;
  }
  return absl::OkStatus();
}

absl::StatusOr<UploadStats> UploadArtifacts(common::CasClient& cas, const ArtifactMatches& matches,
                                            common::CancelSource* cancel) {
  const std::vector<ArtifactFile>& files = matches.files;
  UploadStats stats;
  stats.files = static_cast<int>(files.size());
  // One file per distinct content: the first path that has it.
  std::vector<const ArtifactFile*> unique;
  absl::flat_hash_map<std::string, const ArtifactFile*> by_digest;
  for (const ArtifactFile& file : files) {
    if (by_digest.emplace(file.digest.ToString(), &file).second) {
      unique.push_back(&file);
    }
  }
  stats.blobs = static_cast<int>(unique.size());
  if (unique.empty()) return stats;

  std::vector<common::Digest> digests;
  digests.reserve(unique.size());
  for (const ArtifactFile* file : unique) digests.push_back(file->digest);
  FARM_ASSIGN_OR_RETURN(std::vector<common::Digest> missing, cas.FindMissing(digests, cancel));

  std::vector<common::CasClient::FileUpload> uploads;
  const common::BeneathRoot* root = matches.root.get();
  for (const common::Digest& digest : missing) {
    auto it = by_digest.find(digest.ToString());
    if (it == by_digest.end()) continue;  // the server named a digest we did not ask about
    const ArtifactFile* file = it->second;
    uploads.push_back(
        {file->source, file->path, digest, [root, file] { return OpenArtifact(*root, *file); }});
    ++stats.uploaded_blobs;
    stats.uploaded_bytes += digest.size;
  }
  FARM_RETURN_IF_ERROR(cas.UploadFiles(uploads, cancel));
  return stats;
}

std::vector<farm::v1::Artifact> ToArtifactProtos(const std::vector<ArtifactFile>& files) {
  std::vector<farm::v1::Artifact> artifacts;
  artifacts.reserve(files.size());
  for (const ArtifactFile& file : files) {
    farm::v1::Artifact& artifact = artifacts.emplace_back();
    artifact.set_path(file.path);
    artifact.set_hash(file.digest.hash);
    artifact.set_size(file.digest.size);
    artifact.set_executable(file.executable);
  }
  return artifacts;
}

}  // namespace farm::agent
