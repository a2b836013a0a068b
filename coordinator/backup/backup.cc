// BackupMaker (backup.h): the online backup. The restore is in restore.cc.
#include "coordinator/backup/backup.h"

#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "common/digest.h"
#include "common/logging.h"
#include "common/posix_io.h"
#include "common/status_macros.h"
#include "coordinator/backup/backup_files.h"
#include "farm/internal/records.pb.h"

namespace farm::coordinator {
namespace {

namespace fs = std::filesystem;

// The manifest's entries for the files of the checkpoint in `db_dir`; counts hard links.
absl::Status DescribeDbFiles(const std::string& db_dir, farm::internal::BackupManifest& manifest,
                             BackupSummary& summary) {
  std::vector<std::string> names;
  std::error_code ec;
  for (auto it = fs::directory_iterator(db_dir, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    names.push_back(it->path().filename().string());
  }
  if (ec) return absl::UnavailableError(absl::StrCat("cannot list ", db_dir, ": ", ec.message()));
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    const std::string path = absl::StrCat(db_dir, "/", name);
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) {
      return common::ErrnoStatus(errno, absl::StrCat("cannot stat ", path));
    }
    if (!S_ISREG(st.st_mode)) {
      return absl::InternalError(absl::StrCat("the checkpoint holds ", path, ", not a file"));
    }
    FARM_ASSIGN_OR_RETURN(common::Digest digest, common::DigestFile(path));
    farm::internal::BackupManifest::File* file = manifest.add_db_files();
    file->set_name(name);
    file->set_size(digest.size);
    file->set_sha256(digest.hash);
    ++summary.db_files;
    summary.db_bytes += digest.size;
    ++(st.st_nlink > 1 ? summary.linked_files : summary.copied_files);
  }
  return absl::OkStatus();
}

// blobs.txt, and its entry in the manifest.
absl::Status WriteBlobList(const std::string& dir, const FileBlobStore::ExportedBlobs& blobs,
                           farm::internal::BackupManifest& manifest) {
  std::string list;
  list.reserve(blobs.blobs.size() * 80);
  for (const common::Digest& d : blobs.blobs) absl::StrAppend(&list, d.hash, " ", d.size, "\n");
  FARM_RETURN_IF_ERROR(WriteFileSynced(absl::StrCat(dir, "/", kBlobListName), list));
  const common::Digest digest = common::DigestOf(list);
  manifest.mutable_blobs_list()->set_name(kBlobListName);
  manifest.mutable_blobs_list()->set_size(digest.size);
  manifest.mutable_blobs_list()->set_sha256(digest.hash);
  manifest.set_blobs(static_cast<int64_t>(blobs.blobs.size()));
  manifest.set_blob_bytes(blobs.bytes);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<BackupSummary> BackupMaker::CreateBackup(const std::string& requested) {
  FARM_ASSIGN_OR_RETURN(const BackupTarget target, CheckNewDir(requested, "backup dir"));
  // A backup inside the data dir would go with it (and the CAS's start-up would sweep it).
  std::error_code ec;
  const fs::path data = fs::weakly_canonical(data_dir_, ec);
  const fs::path parent = fs::weakly_canonical(target.parent, ec);
  if (!data.empty() &&
      std::mismatch(data.begin(), data.end(), parent.begin(), parent.end()).first == data.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("backup dir ", target.path, " is inside the data dir ", data_dir_));
  }
  {
    absl::MutexLock lock(&mu_);
    if (running_) {
      return absl::FailedPreconditionError(
          "a backup is already running; try again once it has finished");
    }
    running_ = true;
  }
  absl::Cleanup done = [this] {
    absl::MutexLock lock(&mu_);
    running_ = false;
  };
  const std::string tmp =
      absl::StrCat(target.parent, "/.", target.name, ".partial-", static_cast<int>(::getpid()));
  fs::remove_all(tmp, ec);  // a leftover of a backup this pid's predecessor did not finish
  if (::mkdir(tmp.c_str(), 0755) != 0) {
    return common::ErrnoStatus(errno, absl::StrCat("cannot create ", tmp));
  }
  absl::StatusOr<BackupSummary> summary = WriteInto(tmp);
  if (summary.ok()) {
    // RENAME_NOREPLACE: a directory made at `dir` meanwhile is refused, never replaced.
    if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, target.path.c_str(), RENAME_NOREPLACE) != 0) {
      const int err = errno;
      summary =
          err == EEXIST
              ? absl::AlreadyExistsError(absl::StrCat("backup dir ", target.path, " exists"))
              : common::ErrnoStatus(err, absl::StrCat("cannot rename ", tmp, " to ", target.path));
    } else if (absl::Status s = common::SyncDirectory(target.parent); !s.ok()) {
      summary = s;
    }
  }
  if (!summary.ok()) {
    fs::remove_all(tmp, ec);
    return summary.status();
  }
  summary->dir = target.path;
  summary->took_ms = clock_->NowMs() - summary->created_ms;
  FARM_LOG(INFO) << "backup written to " << target.path << ": " << summary->db_files
                 << " store files (" << summary->db_bytes << " bytes), " << summary->blobs
                 << " blobs (" << summary->blob_bytes << " bytes); " << summary->linked_files
                 << " hard links, " << summary->copied_files << " copies, in " << summary->took_ms
                 << " ms";
  return summary;
}

absl::StatusOr<BackupSummary> BackupMaker::WriteInto(const std::string& tmp) {
  BackupSummary summary;
  farm::internal::BackupManifest manifest;
  FileBlobStore::ExportedBlobs blobs;
  {
    // See the header: no blob leaves the CAS between the checkpoint and the links.
    FileBlobStore::EvictionHold hold = cas_->HoldEvictions();
    summary.created_ms = clock_->NowMs();
    FARM_RETURN_IF_ERROR(store_->Checkpoint(absl::StrCat(tmp, "/db")));
    const std::string cas_dir = absl::StrCat(tmp, "/cas");
    if (::mkdir(cas_dir.c_str(), 0755) != 0) {
      return common::ErrnoStatus(errno, absl::StrCat("cannot create ", cas_dir));
    }
    FARM_ASSIGN_OR_RETURN(blobs, cas_->ExportBlobs(absl::StrCat(cas_dir, "/blobs")));
    FARM_RETURN_IF_ERROR(common::SyncDirectory(cas_dir));
  }
  summary.blobs = static_cast<int64_t>(blobs.blobs.size());
  summary.blob_bytes = blobs.bytes;
  summary.linked_files = blobs.linked;
  summary.copied_files = blobs.copied;
  FARM_RETURN_IF_ERROR(DescribeDbFiles(absl::StrCat(tmp, "/db"), manifest, summary));
  FARM_RETURN_IF_ERROR(WriteBlobList(tmp, blobs, manifest));
  manifest.set_format(kBackupFormat);
  manifest.set_format_version(kBackupFormatVersion);
  manifest.set_farm_version(version_);
  manifest.set_created_ms(summary.created_ms);
  manifest.set_source_data_dir(data_dir_);
  std::string json;
  google::protobuf::util::JsonPrintOptions print;
  print.add_whitespace = true;
  print.preserve_proto_field_names = true;
  if (!google::protobuf::util::MessageToJsonString(manifest, &json, print).ok()) {
    return absl::InternalError("cannot write the backup manifest as JSON");
  }
  FARM_RETURN_IF_ERROR(WriteFileSynced(absl::StrCat(tmp, "/", kBackupManifestName), json));
  FARM_RETURN_IF_ERROR(common::SyncDirectory(tmp));
  return summary;
}

}  // namespace farm::coordinator
