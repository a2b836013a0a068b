// The production Store: RocksDB with one column family per record kind, synced WAL writes.
// Thread-safe. Concurrent Write calls are allowed, but the coordinator funnels its job writes
// through one thread (scheduler/engine.h) so that they group-commit.
//
// Full disks. RocksDB 7.8 does not come back reliably from running out of space inside a write:
// its own recovery (DB::Resume, or the SstFileManager that polls for free space) may keep using
// the write-ahead log that failed, and the next write then fails for good ("Writer has previous
// error") or, in builds with assertions such as Debian's librocksdb7.8, aborts the process. The
// store therefore does two things (both verified on tmpfs by tests/fault/disk_full_test.cc):
//   1. It stops short of a full disk: a write is refused with RESOURCE_EXHAUSTED while the file
//      system holding the database has less than `min_free_bytes` free (plus the write's size),
//      so RocksDB itself does not run out of space in the common case, and writes simply work
//      again once space is freed.
//   2. If a write fails anyway (another process filled the disk in between, or an I/O error),
//      every later write is refused with that error until the store has reopened the database
//      (close, open: the log is replayed and a fresh one started); a write tries that at most
//      once per `reopen_interval_ms`, and only when the free-space check passes. Reads keep
//      working on the old database until the reopen starts; during it they get UNAVAILABLE.
// RocksDB's own diagnostics go to the coordinator's log (warnings and errors only), never to a
// file in the data directory: a failed write to that file would otherwise abort such builds
// too.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "coordinator/store/store.h"

namespace rocksdb {
class Env;
class Logger;
}  // namespace rocksdb

namespace farm::coordinator {

struct RocksDbStoreOptions {
  std::string path;
  // Memory for the block cache shared by all families.
  size_t block_cache_bytes = 64 << 20;
  // Memory for memtables, all column families together.
  size_t write_buffer_bytes = 64 << 20;
  // Table files held open at once (one file descriptor each); the least recently read are
  // closed past it (one LRU over all of them). Being bounded also makes a start open at most 16
  // files per family (the others open when first read): the event history's hundreds of small files
  // then cost no memory until someone reads them.
  int max_open_files = 512;
  // The file system layer; null for the process default. Fault tests pass one that can lose
  // unsynced writes. Not owned; must outlive the store.
  rocksdb::Env* env = nullptr;
  // Writes are refused (RESOURCE_EXHAUSTED) while the file system holding `path` has less free
  // space than this plus the write's size. It covers what one write may make RocksDB allocate:
  // a log preallocation (1.1 x the 32 MiB write buffer), a group of up to 32 MiB and memtable
  // flushes. 0 turns the check off (RocksDB then meets the full disk itself; see above).
  int64_t min_free_bytes = int64_t{128} << 20;
  // After a failed write, the earliest a later write may try to reopen the database again.
  int64_t reopen_interval_ms = 1000;
};

class RocksDbStore : public Store {
 public:
  // Opens (creating if needed) the database at options.path. FAILED_PRECONDITION when another
  // process holds it, UNAVAILABLE/INTERNAL for other errors; the message names the path.
  static absl::StatusOr<std::unique_ptr<RocksDbStore>> Open(const RocksDbStoreOptions& options);
  ~RocksDbStore() override;

  // UNAVAILABLE (besides I/O errors) while the database is being reopened after a failed write.
  absl::StatusOr<std::optional<std::string>> Get(Cf cf, absl::string_view key) override;
  absl::Status Scan(Cf cf, absl::string_view start, absl::string_view limit, const ScanFn& fn,
                    bool reverse) override;
  // RESOURCE_EXHAUSTED when the disk is full (or below the reserve); UNAVAILABLE for other I/O
  // errors, and for writes after a failed one until the database has been reopened.
  absl::Status Write(const WriteBatch& batch, bool sync) override;
  // Flushes every family (allowing a write stall rather than failing), then compacts each
  // range to the last level, where deleted records are dropped.
  absl::Status Compact(const std::vector<Range>& ranges) override;
  // rocksdb::Checkpoint after a flush of every family (so that the copy needs little log
  // replay); the logs still live are copied. UNAVAILABLE while the store reopens.
  absl::Status Checkpoint(const std::string& dir) override;
  absl::StatusOr<StoreStats> Stats() override;

  // How many times the database was reopened after a failed write (for tests and metrics).
  int64_t reopens() const;

 private:
  struct Db;  // an open database and its column families; closes in its destructor
  class Use;  // pins the open database for one call

  explicit RocksDbStore(RocksDbStoreOptions options);
  static absl::StatusOr<std::unique_ptr<Db>> OpenDb(const RocksDbStoreOptions& options,
                                                    std::shared_ptr<rocksdb::Logger> logger);
  // The open database, pinned until the Use goes away; UNAVAILABLE while it is being reopened.
  absl::StatusOr<Use> Acquire();
  // OK when no write has failed since the last open; else reopens when due (and there is
  // space), or returns why writes are refused.
  absl::Status RecoverIfNeeded();
  absl::Status Reopen();
  // RESOURCE_EXHAUSTED when fewer than min_free_bytes + incoming bytes are free.
  absl::Status CheckFreeSpace(size_t incoming) const;

  const RocksDbStoreOptions options_;
  const std::shared_ptr<rocksdb::Logger> logger_;

  absl::Mutex reopen_mu_;  // held for a whole reopen; ordered before mu_
  mutable absl::Mutex mu_;
  std::unique_ptr<Db> db_ ABSL_GUARDED_BY(mu_);    // null during a reopen, or after a failed one
  int users_ ABSL_GUARDED_BY(mu_) = 0;             // live Use objects
  absl::Status write_error_ ABSL_GUARDED_BY(mu_);  // the failure a reopen must clear
  int64_t next_reopen_ms_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t reopens_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t failed_reopens_ ABSL_GUARDED_BY(mu_) = 0;  // in a row, for rate-limited logging
};

}  // namespace farm::coordinator
