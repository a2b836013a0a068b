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
//   pinned_until_ms(8) cas_lru:   accessed_ms(8) | hash(64) → ""   (eviction order: least recently
//   used first)
// All integers big-endian. A blob is visible exactly when its cas_blobs entry exists; the
// entry is written (synced) after the file is synced, renamed and its directory synced, so a
// crash leaves at worst a file without an entry, which start-up removes.
//
// Access times are hints: uses are collected in memory and written (unsynced) by
// RunMaintenance, so a crash may forget recent uses. Eviction starts when the stored bytes
// exceed max_bytes and removes least recently used blobs until they are at most
// low_watermark_percent of it, skipping blobs used within min_age_ms and pinned blobs.
//
// Concurrency: metadata changes of one blob happen under one of 64 stripe locks chosen by its
// hash, so an eviction, a corruption report and a concurrent upload of the same blob never
// interleave. File reads and writes happen outside the locks (open files survive an unlink).
// All methods are thread-safe and blocking: call them off latency-sensitive threads (the
// REAPI services run them on an IoPool).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
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
  // Stops maintenance. Readers and writers must be gone.
  ~FileBlobStore() override;

  // Runs RunMaintenance every options.maintenance_interval_ms on a thread of its own, and at
  // once whenever an upload takes the store above max_bytes. Idempotent.
  void StartMaintenance();
  void StopMaintenance();
  // Writes collected access times, sweeps idle uploads, expires nothing else (pins expire by
  // comparison), and evicts when above max_bytes. Tests call it directly.
  absl::Status RunMaintenance();

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
  absl::Status PinArtifacts(const std::vector<Digest>& digests, int64_t until_ms) override;
  BlobStoreStats Stats() override;

 private:
  class Reader;
  class Writer;
  struct Upload;
  struct Staged {
    Digest digest;
    std::string temp_path;
    absl::Status status;
  };
  struct Meta {
    int64_t size = 0;
    int64_t created_ms = 0;
    int64_t accessed_ms = 0;
    int64_t pinned_until_ms = 0;
  };

  FileBlobStore(FileBlobStoreOptions options, Store* store, common::Clock* clock);
  absl::Status Init();

  std::string ShardDir(int shard) const;
  absl::Mutex& StripeFor(absl::string_view hash);
  absl::StatusOr<std::optional<Meta>> GetMeta(absl::string_view hash);
  // Marks the blob used now (recorded by the next RunMaintenance).
  void Touch(absl::string_view hash);
  // A new temp file path under root/tmp.
  std::string TempPath(absl::string_view kind);
  // Size, limit and hash of a blob offered with its data.
  absl::Status CheckOffered(const Digest& digest, absl::string_view data) const;
  // Moves synced, closed temp files into place and records them: the files are renamed, their
  // directories synced once each, and all entries written in one synced batch. Items whose
  // status is not OK are skipped; the others get their outcome in `status`. Every temp file
  // is gone afterwards, whatever the outcome.
  void InstallAll(std::vector<Staged>& items);
  // A reader found the blob's bytes wrong: remove it (unless `inode` no longer names the file,
  // i.e. a fresh copy replaced it meanwhile) and log.
  void ReportCorrupt(const Digest& digest, uint64_t inode, const std::string& why);
  // Removes the blob's file and metadata. Caller holds its stripe lock.
  absl::Status RemoveLocked(absl::string_view hash, const Meta& meta);
  // Drops a partial upload (its data and its map entry).
  void DiscardUpload(const std::shared_ptr<Upload>& upload);
  absl::Status FlushTouches();
  void SweepUploads();
  absl::Status Evict();
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
  std::atomic<uint64_t> temp_seq_{0};

  absl::Mutex touch_mu_;
  absl::flat_hash_map<std::string, int64_t> touches_ ABSL_GUARDED_BY(touch_mu_);

  absl::Mutex uploads_mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<Upload>> uploads_ ABSL_GUARDED_BY(uploads_mu_);

  absl::Mutex maintenance_mu_;  // serializes RunMaintenance
  absl::Mutex wake_mu_;
  bool wake_ ABSL_GUARDED_BY(wake_mu_) = false;
  bool stop_ ABSL_GUARDED_BY(wake_mu_) = false;
  std::thread maintenance_;
};

}  // namespace farm::coordinator
