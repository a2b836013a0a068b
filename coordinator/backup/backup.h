// Online backups of a coordinator's data directory, and their restore (issue 13).
//
// A backup directory holds:
//   db/                the store: a RocksDB checkpoint (Store::Checkpoint)
//   cas/blobs/XX/HASH  the CAS blobs, in the layout of data_dir/cas/blobs
//   blobs.txt          "HASH SIZE\n" per blob, in hash order
//   farm-backup.json   the manifest (farm.internal.BackupManifest): format, versions, time,
//                      every db file with its size and SHA-256, the blobs' count and bytes,
//                      and blobs.txt's size and SHA-256. Written last.
// The secrets key file (--secrets_key_file) lives outside the data directory and is NOT in a
// backup: secrets restored without it cannot be opened. Keep it apart (it is the one thing that
// must not sit next to the data it protects).
//
// Consistency between the store and the blobs. The CAS's metadata (which blobs exist) lives in
// the store, so the checkpoint fixes the set of blobs the restored farm will know; every one of
// them must have its file in the backup. CreateBackup therefore
//   1. holds CAS eviction (FileBlobStore::HoldEvictions, which waits for an eviction under
//      way): from here on no blob file is removed, but for a blob found corrupt;
//   2. takes the checkpoint;
//   3. links (or copies) the file of every blob the LIVE metadata lists: a superset of the
//      checkpoint's, since nothing was removed since 1; blobs written after the checkpoint come
//      along as extras, which the restored coordinator's start-up removes as files without an
//      entry (FileBlobStore::Open);
//   4. lets eviction go on, and hashes the db files for the manifest (table files never change).
// Holding eviction rather than pinning writes nothing to the store and ends with the call (or
// the process): a crash mid-backup leaves no pin behind. The hold lasts for the links (or the
// copies, on another file system), while the CAS may grow past --cas_max_bytes.
// A blob removed as corrupt during the backup is left out; the restored start-up then drops its
// entry, as for any blob whose file is lost.
//
// Hard links share their data with the live files (blobs and table files are never written
// again, so neither side can change the other's), which makes a backup on the same file system
// cheap and instant, but not a copy that survives the disk: copy it elsewhere (cp -a, rsync
// -H) for that.
//
// Nothing half-written looks like a backup: everything is written under a temporary name
// beside `dir` (".NAME.partial-PID"), synced, and renamed to `dir` at the end; a failed backup
// removes its temporary directory. Restore writes into the data directory under a marker file
// (kRestoreMarker) that it removes last; a coordinator refuses to open a data directory that
// still has it (CheckNoUnfinishedRestore).
//
// Thread-safety: CreateBackup may be called from any thread; concurrent calls are refused
// (FAILED_PRECONDITION) rather than queued. The restore functions touch no shared state.
#pragma once

#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "coordinator/cas/file_blob_store.h"
#include "coordinator/store/store.h"

namespace farm::coordinator {

inline constexpr char kBackupManifestName[] = "farm-backup.json";
inline constexpr char kBackupFormat[] = "farm-backup";
inline constexpr int kBackupFormatVersion = 1;
// In a data directory while a restore writes it.
inline constexpr char kRestoreMarker[] = "RESTORE-INCOMPLETE";

struct BackupSummary {
  std::string dir;
  int64_t created_ms = 0;
  int64_t db_files = 0;
  int64_t db_bytes = 0;
  int64_t blobs = 0;
  int64_t blob_bytes = 0;
  int64_t linked_files = 0;  // hard links, db files and blobs together
  int64_t copied_files = 0;
  int64_t took_ms = 0;
};

class BackupMaker {
 public:
  // Not owned; all outlive the BackupMaker. `version` goes into every manifest.
  BackupMaker(Store* store, FileBlobStore* cas, common::Clock* clock, std::string data_dir,
              std::string version)
      : store_(store),
        cas_(cas),
        clock_(clock),
        data_dir_(std::move(data_dir)),
        version_(std::move(version)) {}

  // Writes a backup into `dir` (absolute, on this machine), as the header says. Errors, each one
  // line naming the path: INVALID_ARGUMENT (not absolute), ALREADY_EXISTS ("backup dir X
  // exists"), FAILED_PRECONDITION (its parent does not exist or is not a directory; a backup is
  // already running), and the file system's and the store's errors (nothing is left behind).
  absl::StatusOr<BackupSummary> CreateBackup(const std::string& dir);

 private:
  // The steps of CreateBackup into the temporary directory `tmp`.
  absl::StatusOr<BackupSummary> WriteInto(const std::string& tmp);

  Store* const store_;
  FileBlobStore* const cas_;
  common::Clock* const clock_;
  const std::string data_dir_;
  const std::string version_;
  absl::Mutex mu_;
  bool running_ ABSL_GUARDED_BY(mu_) = false;
};

struct RestoreSummary {
  int64_t db_files = 0;
  int64_t blobs = 0;
  int64_t bytes = 0;
  int64_t linked_files = 0;
  int64_t copied_files = 0;
};

// Checks that `backup_dir` is a complete, unaltered backup: the manifest parses and is of a
// format this build reads, every db file listed is there with its size and SHA-256, blobs.txt
// matches its checksum, and every blob it lists is there and hashes to its name. Reads every
// byte. FAILED_PRECONDITION "X is not a farm backup (...)" when the manifest is missing or
// unreadable; DATA_LOSS naming the first file found missing or altered ("backup X is corrupted:
// blob HASH ...").
absl::Status ValidateBackup(const std::string& backup_dir);

// Validates `backup_dir`, then fills `data_dir` (which must not exist, its parent must, or be an
// empty directory) with it: db files and blobs hard-linked where the file system allows (blobs
// and table files; the others, which RocksDB appends to, are copied), everything synced, under
// kRestoreMarker. FAILED_PRECONDITION "data dir X is not empty" (or its parent missing), and
// ValidateBackup's errors, all before anything is written; a failure while writing leaves the
// marker, so that no coordinator starts on the half.
absl::StatusOr<RestoreSummary> RestoreBackup(const std::string& backup_dir,
                                             const std::string& data_dir);

// FAILED_PRECONDITION when `data_dir` holds a restore that did not finish (kRestoreMarker).
absl::Status CheckNoUnfinishedRestore(const std::string& data_dir);

}  // namespace farm::coordinator
