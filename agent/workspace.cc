#include "agent/workspace.h"

#include <filesystem>
#include <random>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace farm::agent {
namespace {

namespace fs = std::filesystem;

// Gives the owner rwx on every directory below `root` so that remove_all can unlink their
// entries (build tools like to leave read-only trees behind).
void MakeTreeWritable(const fs::path& root) {
  std::error_code ec;
  fs::permissions(root, fs::perms::owner_all, fs::perm_options::add, ec);
  for (fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec),
       end;
       !ec && it != end; it.increment(ec)) {
    std::error_code ignored;
    if (it->is_directory(ignored) && !it->is_symlink(ignored)) {
      fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ignored);
    }
  }
}

}  // namespace

std::string SafeFileName(absl::string_view id) {
  std::string out(id);
  for (char& c : out) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) c = '_';
  }
  if (out.empty() || out == "." || out == "..") out = absl::StrCat("_", out);
  return out;
}

absl::StatusOr<Workspace> Workspace::Create(absl::string_view work_dir, absl::string_view job_id,
                                            uint32_t attempt) {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  for (int tries = 0; tries < 5; ++tries) {
    const std::string path = absl::StrCat(work_dir, "/", SafeFileName(job_id), "-", attempt, "-",
                                          absl::StrFormat("%08x", rng() & 0xffffffffu));
    std::error_code ec;
    // create_directory returns false (no error) when it already exists: pick another name.
    if (fs::create_directory(path, ec)) return Workspace(path);
    if (ec) {
      return absl::InternalError(
          absl::StrCat("cannot create workspace ", path, ": ", ec.message()));
    }
  }
  return absl::InternalError(absl::StrCat("cannot pick a fresh workspace name under ", work_dir));
}

absl::Status Workspace::Remove() const {
  std::error_code ec;
  fs::remove_all(path_, ec);
  if (!ec) return absl::OkStatus();
  MakeTreeWritable(path_);
  ec.clear();
  fs::remove_all(path_, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("cannot remove workspace ", path_, ": ", ec.message()));
  }
  return absl::OkStatus();
}

}  // namespace farm::agent
