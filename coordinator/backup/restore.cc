// ValidateBackup, RestoreBackup and CheckNoUnfinishedRestore (backup.h).
#include <google/protobuf/util/json_util.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/digest.h"
#include "common/logging.h"
#include "common/posix_io.h"
#include "common/safe_path.h"
#include "common/status_macros.h"
#include "coordinator/backup/backup.h"
#include "coordinator/backup/backup_files.h"
#include "farm/internal/records.pb.h"

namespace farm::coordinator {
namespace {

namespace fs = std::filesystem;

// At most this much of a manifest or a blob list is read (a backup of 10 million blobs has a
// list of some 750 MB; the manifest lists the store's files only).
constexpr int64_t kMaxManifestBytes = 64 << 20;
constexpr int64_t kMaxBlobListBytes = int64_t{2} << 30;

absl::StatusOr<std::string> ReadSmallFile(const std::string& path, int64_t max_bytes) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return common::ErrnoStatus(errno, path);
  if (!S_ISREG(st.st_mode)) return absl::FailedPreconditionError(path + " is not a file");
  if (st.st_size > max_bytes) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is larger than ", max_bytes, " bytes"));
  }
  std::ifstream in(path, std::ios::binary);
  std::stringstream buf;
  buf << in.rdbuf();
  if (!in) return absl::UnavailableError(absl::StrCat("cannot read ", path));
  return buf.str();
}

absl::Status NotABackup(const std::string& dir, absl::string_view why) {
  return absl::FailedPreconditionError(absl::StrCat(dir, " is not a farm backup (", why, ")"));
}

absl::Status Corrupted(const std::string& dir, absl::string_view what) {
  return absl::DataLossError(absl::StrCat("backup ", dir, " is corrupted: ", what));
}

absl::StatusOr<farm::internal::BackupManifest> ReadManifest(const std::string& dir) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("backup dir ", dir, " does not exist or is not a directory"));
  }
  absl::StatusOr<std::string> json =
      ReadSmallFile(absl::StrCat(dir, "/", kBackupManifestName), kMaxManifestBytes);
  if (!json.ok()) return NotABackup(dir, json.status().message());
  farm::internal::BackupManifest manifest;
  google::protobuf::util::JsonParseOptions parse;
  parse.ignore_unknown_fields = false;
  if (auto s = google::protobuf::util::JsonStringToMessage(*json, &manifest, parse); !s.ok()) {
    return NotABackup(dir, absl::StrCat(kBackupManifestName, ": ", s.message().as_string()));
  }
  if (manifest.format() != kBackupFormat) {
    return NotABackup(dir, absl::StrCat(kBackupManifestName, " is not a farm backup manifest"));
  }
  if (manifest.format_version() != kBackupFormatVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("backup ", dir, " has format version ", manifest.format_version(),
                     "; this farm reads version ", kBackupFormatVersion));
  }
  return manifest;
}

// Checks one file's size and SHA-256; `what` names it in the error ("db file CURRENT").
absl::Status CheckFile(const std::string& dir, const std::string& path, int64_t size,
                       absl::string_view sha256, absl::string_view what) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return Corrupted(dir, absl::StrCat(what, " is missing"));
  }
  if (st.st_size != size) {
    return Corrupted(dir, absl::StrCat(what, " has ", st.st_size, " bytes, not ", size));
  }
  absl::StatusOr<common::Digest> digest = common::DigestFile(path);
  if (!digest.ok()) return Corrupted(dir, absl::StrCat(what, ": ", digest.status().message()));
  if (digest->hash != sha256) {
    return Corrupted(dir, absl::StrCat(what, " does not match its SHA-256 (altered)"));
  }
  return absl::OkStatus();
}

// blobs.txt, checked against the manifest.
absl::StatusOr<std::vector<common::Digest>> ReadBlobList(
    const std::string& dir, const farm::internal::BackupManifest& manifest) {
  const auto& entry = manifest.blobs_list();
  if (entry.name() != kBlobListName) return NotABackup(dir, "the manifest names no blob list");
  const std::string path = absl::StrCat(dir, "/", kBlobListName);
  FARM_RETURN_IF_ERROR(CheckFile(dir, path, entry.size(), entry.sha256(), kBlobListName));
  FARM_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(path, kMaxBlobListBytes));
  std::vector<common::Digest> blobs;
  int64_t bytes = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> parts = absl::StrSplit(line, ' ');
    int64_t size = 0;
    if (parts.size() != 2 || !common::ValidateHash(parts[0]).ok() ||
        !absl::SimpleAtoi(parts[1], &size) || size < 0) {
      return Corrupted(dir, absl::StrCat(kBlobListName, " has a malformed line"));
    }
    blobs.push_back(common::Digest{std::string(parts[0]), size});
    bytes += size;
  }
  if (static_cast<int64_t>(blobs.size()) != manifest.blobs() || bytes != manifest.blob_bytes()) {
    return Corrupted(dir, absl::StrCat(kBlobListName, " does not add up to the manifest's ",
                                       manifest.blobs(), " blobs"));
  }
  return blobs;
}

std::string BlobFile(const std::string& root, const common::Digest& d) {
  return absl::StrCat(root, "/cas/blobs/", d.hash.substr(0, 2), "/", d.hash);
}

// FAILED_PRECONDITION unless `data_dir` is missing (with an existing parent) or an empty
// directory. True when it exists.
absl::StatusOr<bool> CheckEmptyDataDir(const std::string& data_dir) {
  struct stat st;
  if (::lstat(data_dir.c_str(), &st) != 0) {
    if (errno != ENOENT) return common::ErrnoStatus(errno, data_dir);
    const std::string parent = fs::path(data_dir).parent_path().string();
    if (!parent.empty() && (::stat(parent.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))) {
      return absl::FailedPreconditionError(
          absl::StrCat("the parent of data dir ", data_dir, " does not exist"));
    }
    return false;
  }
  std::error_code ec;
  if (!S_ISDIR(st.st_mode) || !fs::is_empty(data_dir, ec) || ec) {
    return absl::FailedPreconditionError(absl::StrCat(
        "data dir ", data_dir, " is not empty: a restore goes into a new or empty directory"));
  }
  return true;
}

absl::Status MakeDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) != 0) {
    return common::ErrnoStatus(errno, absl::StrCat("cannot create ", path));
  }
  return absl::OkStatus();
}

// Puts one file in place and counts it.
absl::Status Place(const std::string& src, const std::string& dst, bool may_link,
                   RestoreSummary& summary) {
  bool linked = false;
  if (may_link) {
    FARM_RETURN_IF_ERROR(common::LinkOrCopyFile(src, dst, &linked));
  } else {
    FARM_RETURN_IF_ERROR(common::CopyFile(src, dst));
  }
  ++(linked ? summary.linked_files : summary.copied_files);
  return absl::OkStatus();
}

absl::Status CopyDb(const std::string& backup_dir, const std::string& data_dir,
                    const farm::internal::BackupManifest& manifest, RestoreSummary& summary) {
  const std::string db = absl::StrCat(data_dir, "/db");
  FARM_RETURN_IF_ERROR(MakeDir(db));
  for (const auto& file : manifest.db_files()) {
    // Table files are never written again: they may be shared. RocksDB appends to the others
    // (its MANIFEST, logs), which must therefore be the restored store's own.
    const bool table = absl::EndsWith(file.name(), ".sst");
    FARM_RETURN_IF_ERROR(Place(absl::StrCat(backup_dir, "/db/", file.name()),
                               absl::StrCat(db, "/", file.name()), table, summary));
    ++summary.db_files;
    summary.bytes += file.size();
  }
  return common::SyncDirectory(db);
}

absl::Status CopyBlobs(const std::string& backup_dir, const std::string& data_dir,
                       const std::vector<common::Digest>& blobs, RestoreSummary& summary) {
  const std::string root = absl::StrCat(data_dir, "/cas/blobs");
  FARM_RETURN_IF_ERROR(MakeDir(absl::StrCat(data_dir, "/cas")));
  FARM_RETURN_IF_ERROR(MakeDir(root));
  for (int i = 0; i < 256; ++i) {
    const unsigned char byte = static_cast<unsigned char>(i);
    FARM_RETURN_IF_ERROR(MakeDir(absl::StrCat(root, "/", common::HexEncode(&byte, 1))));
  }
  for (const common::Digest& d : blobs) {
    FARM_RETURN_IF_ERROR(Place(BlobFile(backup_dir, d), BlobFile(data_dir, d), true, summary));
    ++summary.blobs;
    summary.bytes += d.size;
  }
  for (int i = 0; i < 256; ++i) {
    const unsigned char byte = static_cast<unsigned char>(i);
    FARM_RETURN_IF_ERROR(
        common::SyncDirectory(absl::StrCat(root, "/", common::HexEncode(&byte, 1))));
  }
  FARM_RETURN_IF_ERROR(common::SyncDirectory(root));
  return common::SyncDirectory(absl::StrCat(data_dir, "/cas"));
}

// Every check of ValidateBackup; the manifest and the blob list for RestoreBackup.
absl::Status Validate(const std::string& dir, farm::internal::BackupManifest& manifest,
                      std::vector<common::Digest>& blobs) {
  FARM_ASSIGN_OR_RETURN(manifest, ReadManifest(dir));
  if (manifest.db_files().empty()) return NotABackup(dir, "the manifest lists no store files");
  for (const auto& file : manifest.db_files()) {
    if (!common::CheckPathComponent(file.name()).ok()) {
      return NotABackup(dir, "the manifest names a store file outside db/");
    }
    FARM_RETURN_IF_ERROR(CheckFile(dir, absl::StrCat(dir, "/db/", file.name()), file.size(),
                                   file.sha256(), absl::StrCat("store file db/", file.name())));
  }
  FARM_ASSIGN_OR_RETURN(blobs, ReadBlobList(dir, manifest));
  for (const common::Digest& d : blobs) {
    FARM_RETURN_IF_ERROR(
        CheckFile(dir, BlobFile(dir, d), d.size, d.hash, absl::StrCat("blob ", d.hash)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateBackup(const std::string& backup_dir) {
  farm::internal::BackupManifest manifest;
  std::vector<common::Digest> blobs;
  return Validate(backup_dir, manifest, blobs);
}

absl::StatusOr<RestoreSummary> RestoreBackup(const std::string& backup_dir,
                                             const std::string& data_dir) {
  FARM_ASSIGN_OR_RETURN(const bool exists, CheckEmptyDataDir(data_dir));
  farm::internal::BackupManifest manifest;
  std::vector<common::Digest> blobs;
  FARM_RETURN_IF_ERROR(Validate(backup_dir, manifest, blobs));
  if (!exists) FARM_RETURN_IF_ERROR(MakeDir(data_dir));
  const std::string marker = absl::StrCat(data_dir, "/", kRestoreMarker);
  FARM_RETURN_IF_ERROR(WriteFileSynced(
      marker, absl::StrCat("a restore from ", backup_dir, " is writing this directory\n")));
  FARM_RETURN_IF_ERROR(common::SyncDirectory(data_dir));
  RestoreSummary summary;
  FARM_RETURN_IF_ERROR(CopyDb(backup_dir, data_dir, manifest, summary));
  FARM_RETURN_IF_ERROR(CopyBlobs(backup_dir, data_dir, blobs, summary));
  FARM_RETURN_IF_ERROR(common::SyncDirectory(data_dir));
  if (::unlink(marker.c_str()) != 0) {
    return common::ErrnoStatus(errno, absl::StrCat("cannot remove ", marker));
  }
  FARM_RETURN_IF_ERROR(common::SyncDirectory(data_dir));
  FARM_LOG(INFO) << "restored " << backup_dir << " (taken "
                 << absl::FormatTime(absl::RFC3339_sec, absl::FromUnixMillis(manifest.created_ms()),
                                     absl::UTCTimeZone())
                 << " by farm " << manifest.farm_version() << ") into " << data_dir << ": "
                 << summary.db_files << " store files, " << summary.blobs << " blobs; "
                 << summary.linked_files << " hard links, " << summary.copied_files << " copies";
  return summary;
}

absl::Status CheckNoUnfinishedRestore(const std::string& data_dir) {
  const std::string marker = absl::StrCat(data_dir, "/", kRestoreMarker);
  struct stat st;
  if (::lstat(marker.c_str(), &st) != 0) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat("data dir ", data_dir,
                                                    " holds a restore that did not finish (",
                                                    marker, "): empty it and restore again"));
}

}  // namespace farm::coordinator
