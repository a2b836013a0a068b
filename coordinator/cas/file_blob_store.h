// The production BlobStore: one file per blob under a directory, metadata in the coordinator's
// Store (RocksDB in production).
//
// On disk (root = <data_dir>/cas):
//   root/blobs/ab/abcdef...  one read-only file per blob, named by its hash, sharded by the
//                            first two hex digits (256 directories)
//   root/tmp/                uploads in progress and batch writes before they are renamed
//                            into place; emptied at start-up (uploads do not survive a restart)
//
// Metadata (column families in store.h):
//   cas_blobs: hash(64 hex)             → size(8) | created_ms(8) | accessed_ms(8) |
//                                         pinned_until_ms(8)
//   cas_lru:   accessed_ms(8) | hash(64) → ""   (eviction order: least recently used first)
// All integers big-endian. A blob is visible exactly when its cas_blobs entry exists; the
// entry is written (synced) after the file is synced, renamed and its directory synced, so a
// crash leaves at worst a file without an entry, which start-up removes.
//
// Access times are hints: uses are collected in memory and written (unsynced) by
// RunMaintenance, so a crash may forget recent uses. Eviction starts when the stored bytes
// exceed max_bytes and removes least recently used blobs until they are at most
// low_watermark_percent of it, skipping blobs used within min_age_ms and pinned blobs.
//
// Parts, one source file each, all sharing the metadata and the stripe locks below:
//   file_blob_store.cc              start-up reconciliation, metadata, Contains/FindMissing
//   file_blob_store_read.cc         verified reads; corrupt blobs are removed
//   file_blob_store_upload.cc       resumable streamed uploads (the upload table)
//   file_blob_store_put.cc          batch puts, and installing any finished blob file
//   file_blob_store_maintenance.cc  access-time flush, upload sweep, eviction, its thread
//   file_blob_store_pin.cc          artifact pins, also asynchronously on the CAS's IoPool
//   file_blob_store_backup.cc       eviction holds and the export of every blob (backups)
//
// Errors from the file system carry errno's canonical code (common::ErrnoStatus: a full disk is
// RESOURCE_EXHAUSTED, EACCES PERMISSION_DENIED, EIO UNKNOWN, ...) and name the file and the
// call; errors of the metadata store come back as the Store gives them.
//
// Concurrency: metadata changes of one blob happen under one of 64 stripe locks chosen by its
// hash, so an eviction, a corruption report, a pin and a concurrent upload of the same blob
// never interleave. Code that needs several stripes (installing a batch, pinning) takes them in
// one global order; everything else holds at most one. File reads and writes happen outside the
// locks (open files survive an unlink). All methods are thread-safe and, but for
// PinArtifactsAsync, blocking: call them off latency-sensitive threads (the REAPI services run
// them on an IoPool of their own).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/io_pool.h"
#include "coordinator/cas/blob_store.h"
#include "coordinator/store/store.h"

namespace farm::coordinator {

struct FileBlobStoreOptions {
  std::string root;                       // created if missing
  int64_t max_bytes = int64_t{10} << 30;  // high watermark (--cas_max_bytes)
  int low_watermark_percent = 90;         // eviction stops at this share of max_bytes
  int64_t min_age_ms = 10 * 60'000;       // never evict a blob used more recently (--cas_min_age)
  int64_t upload_idle_ttl_ms = 30 * 60'000;  // partial uploads idle this long are swept
  int max_uploads = 10'000;                  // partial uploads held at once
  int64_t maintenance_interval_ms = 5'000;   // access-time flush, sweep and eviction cadence
  int io_threads = 2;                        // the CAS's own IoPool (PinArtifactsAsync)

  // INVALID_ARGUMENT naming the offending field (as its flag where there is one).
  absl::Status Validate() const;
};

class FileBlobStore final : public BlobStore {
 public:
  // Creates the directories, empties root/tmp, and reconciles files with metadata (entries
  // without a file are dropped, files without an entry are deleted). `store` and `clock` must
  // outlive the FileBlobStore. FAILED_PRECONDITION when the directories cannot be created;
  // store errors as they come.
  static absl::StatusOr<std::unique_ptr<FileBlobStore>> Open(FileBlobStoreOptions options,
                                                             Store* store, common::Clock* clock);
  // Stops maintenance, then finishes the asynchronous pins already asked for (calling their
  // `done`). Readers and writers must be gone.
  ~FileBlobStore() override;

  // Runs RunMaintenance every options.maintenance_interval_ms on a thread of its own, and at
  // once whenever an upload takes the store above max_bytes. Idempotent.
  void StartMaintenance();
  void StopMaintenance();
  // Writes collected access times, sweeps idle uploads, expires nothing else (pins expire by
  // comparison), and evicts when above max_bytes. Tests call it directly.
  absl::Status RunMaintenance();
  // The bytes the next eviction would take off, at most: down to the low watermark once the
  // store is above max_bytes, else 0 (pinned and recent blobs stay, so it may take less).
  int64_t BytesOverBudget() const;

  // The file that holds the blob (whether or not it exists), for tests and operators.
  std::string BlobPath(const Digest& digest) const;

  // BlobStore:
  absl::StatusOr<bool> Contains(const Digest& digest) override;
  absl::StatusOr<std::vector<Digest>> FindMissing(const std::vector<Digest>& digests) override;
  absl::Status Put(const Digest& digest, absl::string_view data) override;
  std::vector<absl::Status> PutBatch(const std::vector<BlobData>& blobs) override;
  absl::StatusOr<std::unique_ptr<BlobReader>> OpenRead(const Digest& digest, int64_t offset,
                                                       int64_t limit) override;
  absl::StatusOr<std::string> Read(const Digest& digest) override;
  absl::StatusOr<std::unique_ptr<BlobWriter>> OpenWrite(absl::string_view upload_id,
                                                        const Digest& digest,
                                                        int64_t offset) override;
  UploadStatus QueryWrite(absl::string_view upload_id, const Digest& digest) override;
  // As BlobStore::PinArtifacts, and: every pin that changes is written in ONE synced store
  // batch, under the stripes of all the digests at once (pins that would not extend anything
  // write nothing). INVALID_ARGUMENT naming a malformed digest (then nothing is pinned); store
  // errors as they come (then nothing is pinned either).
  absl::Status PinArtifacts(const std::vector<Digest>& digests, int64_t until_ms) override;
  BlobStoreStats Stats() override;
  absl::StatusOr<std::optional<Use>> UseOf(absl::string_view hash) override;
  absl::StatusOr<std::vector<AgeCount>> CountByAge(const std::vector<int64_t>& bounds_ms,
                                                   int64_t now_ms) override;

  // PinArtifacts run on the CAS's own IoPool, for callers that must not block or take the
  // CAS's locks (the scheduler's engine thread). Returns at once; `done` is called exactly
  // once, on a pool thread, with PinArtifacts' result (NOT_FOUND naming the missing digests,
  // ...). `done` should be quick (it holds a pool thread); it may call this store again. Pins
  // asked for before the destructor starts complete, and call `done`, before it returns.
  void PinArtifactsAsync(std::vector<Digest> digests, int64_t until_ms,
                         std::function<void(absl::Status)> done);

  // --- Backups (file_blob_store_backup.cc; coordinator/backup/backup.h) ---
  // While an EvictionHold lives, no blob leaves the store but one found corrupt: eviction
  // waits (the store may grow past max_bytes meanwhile) and resumes when the last hold goes.
  // Taking a hold waits for an eviction in progress to end, so that every blob whose entry a
  // checkpoint taken after it holds still has its file. Any other path that removes blobs
  // (retention) must honour holds the same way.
  class EvictionHold {
   public:
    explicit EvictionHold(std::atomic<int>* holds) : holds_(holds) {}
    EvictionHold(EvictionHold&& other) noexcept : holds_(std::exchange(other.holds_, nullptr)) {}
    EvictionHold& operator=(EvictionHold&&) = delete;
    ~EvictionHold() {
      if (holds_ != nullptr) holds_->fetch_sub(1);
    }

   private:
    std::atomic<int>* holds_;
  };
  EvictionHold HoldEvictions();

  struct ExportedBlobs {
    std::vector<Digest> blobs;  // in hash order
    int64_t bytes = 0;
    int64_t linked = 0;  // hard links
    int64_t copied = 0;  // copies (another file system)
  };
  // Puts the file of every blob the metadata records into dir/XX/HASH (the layout of
  // root/blobs; `dir` must not exist, its parent must): hard links where the file system
  // allows, synced copies otherwise; every directory made is synced. A blob whose file is gone
  // by the time it is reached (removed as corrupt) is left out. Call it under an EvictionHold
  // to get every blob of an earlier checkpoint. Errors name the file.
  absl::StatusOr<ExportedBlobs> ExportBlobs(const std::string& dir);

 private:
  // --- Shared by every part (file_blob_store.cc) ---
  struct Meta {
    int64_t size = 0;
    int64_t created_ms = 0;
    int64_t accessed_ms = 0;
    int64_t pinned_until_ms = 0;
  };

  FileBlobStore(FileBlobStoreOptions options, Store* store, common::Clock* clock);

  // Start-up, in this order. Each returns how many things it removed, for the start-up log.
  absl::Status Init();
  absl::Status CreateDirectories();
  absl::StatusOr<int64_t> EmptyTmp();
  absl::StatusOr<int64_t> DropEntriesWithoutFiles();  // and counts the blobs that stay
  absl::StatusOr<int64_t> RemoveFilesWithoutEntries();

  std::string ShardDir(int shard) const;
  absl::Mutex& StripeFor(absl::string_view hash);
  // The distinct stripes of these (validated) hashes, in the one order in which code that holds
  // several takes them.
  std::vector<absl::Mutex*> StripesFor(const std::vector<absl::string_view>& hashes);
  absl::StatusOr<std::optional<Meta>> GetMeta(absl::string_view hash);
  // Marks the blob used now (recorded by the next RunMaintenance).
  void Touch(absl::string_view hash);
  // A new temp file path under root/tmp.
  std::string TempPath(absl::string_view kind);
  // Removes the blob's file and metadata. Caller holds its stripe lock.
  absl::Status RemoveLocked(absl::string_view hash, const Meta& meta);

  // --- Reads (file_blob_store_read.cc) ---
  class Reader;
  // A reader found the blob's bytes wrong: remove it (unless `inode` no longer names the file,
  // i.e. a fresh copy replaced it meanwhile) and log.
  void ReportCorrupt(const Digest& digest, uint64_t inode, const std::string& why);

  // --- Streamed uploads (file_blob_store_upload.cc; Upload in file_blob_store_internal.h) ---
  class Writer;
  struct Upload;
  // The upload of `key`, created (with its temp file) when absent; a dead one is replaced.
  absl::StatusOr<std::shared_ptr<Upload>> FindOrCreateUpload(const std::string& key,
                                                             const Digest& digest, int64_t offset);
  // Drops a partial upload (its data and its map entry).
  void DiscardUpload(const std::shared_ptr<Upload>& upload);
  // Forgets a committed upload (its temp file now belongs to InstallAll).
  void ForgetUpload(const std::shared_ptr<Upload>& upload);

  // --- Batch puts and installing blob files (file_blob_store_put.cc) ---
  struct Staged {
    Digest digest;
    std::string temp_path;
    absl::Status status;
  };
  // Size, limit and hash of a blob offered with its data.
  absl::Status CheckOffered(const Digest& digest, absl::string_view data) const;
  // Writes `data` to a new temp file and starts its writeback; the open fd in *fd.
  absl::StatusOr<std::string> WriteTemp(absl::string_view data, int* fd);
  // Seals and syncs the staged files (one syncfs for several), setting their status.
  void SyncStaged(std::vector<Staged>& staged, const std::vector<int>& fds);
  // Moves synced, closed temp files into place and records them: the files are renamed, their
  // directories synced once each, and all entries written in one synced batch. Items whose
  // status is not OK are skipped; the others get their outcome in `status`. Every temp file
  // is gone afterwards, whatever the outcome.
  void InstallAll(std::vector<Staged>& items);
  // InstallAll's first step, under the items' stripes: renames an item into place unless its
  // blob is already there (stored, or among `moved_hashes` of this batch). True when it was
  // moved (its directory then needs a sync).
  bool MoveIntoPlaceLocked(Staged& item, const absl::flat_hash_set<std::string>& moved_hashes);
  // InstallAll's last step: one synced batch for every moved item that is still OK.
  void RecordInstalled(const std::vector<Staged*>& moved);

  // --- Maintenance and eviction (file_blob_store_maintenance.cc) ---
  absl::Status FlushTouches();
  void SweepUploads();
  absl::Status Evict();
  // Evicts what it may of one scanned batch of the LRU index; adds to *evicted.
  absl::Status EvictCandidates(const std::vector<std::string>& lru_keys, int64_t target,
                               int64_t cutoff, int64_t now, int64_t* evicted);
  void MaintenanceLoop();
  void WakeMaintenance();

  const FileBlobStoreOptions options_;
  Store* const store_;
  common::Clock* const clock_;
  std::string blobs_dir_;
  std::string tmp_dir_;
  std::vector<int> shard_fds_;  // open directory fds of root/blobs/00..ff, for fsync
  absl::Mutex stripes_[64];
  std::atomic<int64_t> bytes_{0};
  std::atomic<int64_t> blobs_{0};
  std::atomic<int64_t> evicted_{0};
  std::atomic<int64_t> corrupt_{0};
  std::atomic<int64_t> written_bytes_{0};
  std::atomic<int64_t> read_bytes_{0};
  std::atomic<int64_t> found_{0};
  std::atomic<int64_t> missing_{0};
  std::atomic<uint64_t> temp_seq_{0};
  std::atomic<int> eviction_holds_{0};  // live EvictionHolds

  absl::Mutex touch_mu_;
  absl::flat_hash_map<std::string, int64_t> touches_ ABSL_GUARDED_BY(touch_mu_);

  absl::Mutex uploads_mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<Upload>> uploads_ ABSL_GUARDED_BY(uploads_mu_);

  absl::Mutex maintenance_mu_;  // serializes RunMaintenance
  absl::Mutex wake_mu_;
  bool wake_ ABSL_GUARDED_BY(wake_mu_) = false;
  bool stop_ ABSL_GUARDED_BY(wake_mu_) = false;
  std::thread maintenance_;

  // The CAS's own pool (PinArtifactsAsync). Declared last: it is destroyed first, and runs the
  // work it still holds while everything above is alive.
  common::IoPool pool_;
};

}  // namespace farm::coordinator
