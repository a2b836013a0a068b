#include "agent/artifacts.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

namespace farm::agent {
namespace {

bool HasWildcard(absl::string_view component) {
  return component.find_first_of("*?") != absl::string_view::npos;
}

// realpath(3) as a string; empty when the path does not resolve (dangling link, loop, ...).
std::string RealPath(const std::string& path) {
  char buffer[PATH_MAX];
  if (::realpath(path.c_str(), buffer) == nullptr) return "";
  return buffer;
}

// Expands the globs of one job. `root_` is the workspace with symlinks resolved; every path
// handed out is checked to resolve inside it.
class Expander {
 public:
  Expander(std::string root, int max_files) : root_(std::move(root)), max_files_(max_files) {}

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
    std::string real_path;
    bool executable = false;
  };

  static std::string Join(const std::string& dir, absl::string_view name) {
    return dir.empty() ? std::string(name) : absl::StrCat(dir, "/", name);
  }

  std::string Absolute(const std::string& relative) const {
    return relative.empty() ? root_ : absl::StrCat(root_, "/", relative);
  }

  bool Inside(const std::string& real) const {
    return real == root_ ||
           (real.size() > root_.size() && real.compare(0, root_.size(), root_) == 0 &&
            real[root_.size()] == '/');
  }

  void Skip(const std::string& relative, absl::string_view why) {
    // One note per path: `**` can reach the same entry from several expansions.
    if (noted_.insert(relative).second) skipped_.push_back(absl::StrCat(relative, ": ", why));
  }

  // What `relative` is, following a symlink only when it resolves inside the workspace. A
  // missing entry is kSkipped without a note (globs are allowed to match nothing).
  Resolved Resolve(const std::string& relative) {
    Resolved r;
    const std::string absolute = Absolute(relative);
    struct stat st;
    if (::lstat(absolute.c_str(), &st) != 0) return r;
    if (S_ISLNK(st.st_mode)) {
      r.symlink = true;
      r.real_path = RealPath(absolute);
      if (r.real_path.empty()) {
        Skip(relative, "a symbolic link that does not resolve");
        return r;
      }
      if (!Inside(r.real_path)) {
        Skip(relative, "a symbolic link to a path outside the workspace");
        return r;
      }
      if (::stat(r.real_path.c_str(), &st) != 0) return r;
    } else {
      // A plain entry below a directory that was itself reached through an in-workspace link:
      // resolve the whole path so that what is read is named without links.
      r.real_path = RealPath(absolute);
      if (r.real_path.empty() || !Inside(r.real_path)) {
        Skip(relative, "does not resolve inside the workspace");
        return r;
      }
    }
    if (S_ISREG(st.st_mode)) {
      r.kind = Kind::kFile;
      r.executable = (st.st_mode & S_IXUSR) != 0;
    } else if (S_ISDIR(st.st_mode)) {
      r.kind = Kind::kDirectory;
    } else {
      Skip(relative, "not a regular file");
    }
    return r;
  }

  // The names in directory `relative`, sorted (for a deterministic order of notes and errors).
  std::vector<std::string> List(const std::string& relative) {
    std::vector<std::string> names;
    DIR* dir = ::opendir(Absolute(relative).c_str());
    if (dir == nullptr) {
      Skip(relative.empty() ? "." : relative,
           absl::StrCat("cannot list the directory: ", std::strerror(errno)));
      return names;
    }
    while (struct dirent* entry = ::readdir(dir)) {
      const absl::string_view name = entry->d_name;
      if (name == "." || name == "..") continue;
      names.emplace_back(name);
    }
    ::closedir(dir);
    std::sort(names.begin(), names.end());
    return names;
  }

  absl::Status AddFile(const std::string& relative, const Resolved& r) {
    ++matched_by_glob_;
    if (files_.count(relative) > 0) return absl::OkStatus();
    if (static_cast<int>(files_.size()) >= max_files_) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the artifacts globs match more than ", max_files_,
                       " files (the limit per job); narrow them or archive the files first"));
    }
    ArtifactFile file;
    file.path = relative;
    file.real_path = r.real_path;
    file.executable = r.executable;
    files_.emplace(relative, std::move(file));
    return absl::OkStatus();
  }

  // Every file below directory `relative`. Symlinked files are followed (inside the workspace);
  // symlinked directories are not descended into.
  absl::Status AddTree(const std::string& relative) {
    for (const std::string& name : List(relative)) {
      const std::string child = Join(relative, name);
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
      for (const std::string& name : List(relative)) {
        const std::string child = Join(relative, name);
        struct stat st;
        if (::lstat(Absolute(child).c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
        FARM_RETURN_IF_ERROR(ExpandFrom(child, components, i));
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
    for (const std::string& name : List(relative)) {
      if (MatchComponent(component, name)) FARM_RETURN_IF_ERROR(descend(Join(relative, name)));
    }
    return absl::OkStatus();
  }

  const std::string root_;
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

absl::StatusOr<ArtifactMatches> FindArtifacts(const std::string& workspace,
                                              const std::vector<std::string>& globs,
                                              int max_files) {
  const std::string root = RealPath(workspace);
  if (root.empty()) {
    return absl::InternalError(
        absl::StrCat("cannot resolve the workspace ", workspace, ": ", std::strerror(errno)));
  }
  Expander expander(root, max_files);
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

absl::Status HashArtifacts(std::vector<ArtifactFile>& files) {
  absl::flat_hash_map<std::string, common::Digest> by_real_path;
  for (ArtifactFile& file : files) {
    auto it = by_real_path.find(file.real_path);
    if (it == by_real_path.end()) {
      absl::StatusOr<common::Digest> digest = common::DigestFile(file.real_path);
      if (!digest.ok()) {
        return absl::Status(digest.status().code(), absl::StrCat("cannot hash artifact ", file.path,
                                                                 ": ", digest.status().message()));
      }
      it = by_real_path.emplace(file.real_path, *digest).first;
    }
    file.digest = it->second;
  }
  return absl::OkStatus();
}

absl::StatusOr<UploadStats> UploadArtifacts(common::CasClient& cas,
                                            const std::vector<ArtifactFile>& files,
                                            common::CancelSource* cancel) {
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
  for (const common::Digest& digest : missing) {
    auto it = by_digest.find(digest.ToString());
    if (it == by_digest.end()) continue;  // the server named a digest we did not ask about
    uploads.push_back({it->second->real_path, it->second->path, digest});
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
