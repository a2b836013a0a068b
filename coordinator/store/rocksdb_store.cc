#include "coordinator/store/rocksdb_store.h"

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_batch.h>
#include <sys/statvfs.h>

#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <filesystem>
#include <map>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace farm::coordinator {
namespace {

absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  std::string msg = absl::StrCat(what, ": ", s.ToString());
  if (s.IsNoSpace() || s.subcode() == rocksdb::Status::kNoSpace) {
    return absl::ResourceExhaustedError(msg);
  }
  if (s.IsCorruption()) return absl::DataLossError(msg);
  if (s.IsInvalidArgument() || s.IsNotSupported()) return absl::InternalError(msg);
  if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) {
    return absl::FailedPreconditionError(msg);
  }
  return absl::UnavailableError(msg);
}

// Writes after which RocksDB holds a background error: only a reopen clears it safely.
bool NeedsReopen(const rocksdb::Status& s) { return s.IsIOError() || s.IsCorruption(); }

int64_t MonotonicMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// RocksDB's diagnostics, warnings and errors only, into the coordinator's log.
class ForwardingLogger : public rocksdb::Logger {
 public:
  ForwardingLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {}

  using rocksdb::Logger::Logv;
  // Every RocksDB message arrives through the leveled overload below.
  void Logv(const char* /*format*/, va_list /*ap*/) override {}
  void LogHeader(const char* /*format*/, va_list /*ap*/) override {}
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    if (level < GetInfoLogLevel() || level == rocksdb::InfoLogLevel::HEADER_LEVEL) return;
    char buffer[2048];
    vsnprintf(buffer, sizeof(buffer), format, ap);
    absl::string_view text(buffer);
    while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
    if (level == rocksdb::InfoLogLevel::WARN_LEVEL) {
      FARM_LOG(WARNING) << "rocksdb: " << text;
    } else {
      FARM_LOG(ERROR) << "rocksdb: " << text;
    }
  }
};

rocksdb::Slice ToSlice(absl::string_view s) { return rocksdb::Slice(s.data(), s.size()); }
absl::string_view ToView(const rocksdb::Slice& s) { return absl::string_view(s.data(), s.size()); }

}  // namespace

struct RocksDbStore::Db {
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;  // indexed by Cf; the default family last

  rocksdb::ColumnFamilyHandle* handle(Cf cf) const { return handles[static_cast<int>(cf)]; }

  ~Db() {
    if (db == nullptr) return;
    for (auto* h : handles) {
      rocksdb::Status s = db->DestroyColumnFamilyHandle(h);
      if (!s.ok()) FARM_LOG(WARNING) << "closing column family: " << s.ToString();
    }
    // After a failed write this reports the log that could not be synced; nothing more to do.
    rocksdb::Status s = db->Close();
    if (!s.ok()) FARM_LOG(WARNING) << "closing the store: " << s.ToString();
  }
};

class RocksDbStore::Use {
 public:
  Use(RocksDbStore* store, Db* db) : store_(store), db_(db) {}
  Use(Use&& other) noexcept
      : store_(std::exchange(other.store_, nullptr)), db_(std::exchange(other.db_, nullptr)) {}
  Use& operator=(Use&&) = delete;
  ~Use() {
    if (store_ == nullptr) return;
    absl::MutexLock lock(&store_->mu_);
    --store_->users_;
  }
  Db* operator->() const { return db_; }

 private:
  RocksDbStore* store_;
  Db* db_;
};

RocksDbStore::RocksDbStore(RocksDbStoreOptions options)
    : options_(std::move(options)), logger_(std::make_shared<ForwardingLogger>()) {}

absl::StatusOr<std::unique_ptr<RocksDbStore>> RocksDbStore::Open(
    const RocksDbStoreOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(options.path, ec);
  // (The directory itself is created through the default file system in every case.)
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create data directory ", options.path, ": ", ec.message()));
  }
  std::unique_ptr<RocksDbStore> store(new RocksDbStore(options));
  FARM_ASSIGN_OR_RETURN(std::unique_ptr<Db> db, OpenDb(options, store->logger_));
  absl::MutexLock lock(&store->mu_);
  store->db_ = std::move(db);
  return store;
}

absl::StatusOr<std::unique_ptr<RocksDbStore::Db>> RocksDbStore::OpenDb(
    const RocksDbStoreOptions& options, std::shared_ptr<rocksdb::Logger> logger) {
  rocksdb::Options db_options;
  if (options.env != nullptr) db_options.env = options.env;
  db_options.info_log = std::move(logger);
  db_options.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.max_background_jobs = 2;
  // Open loads each family's table files with this many threads, spawning all but one afresh
  // for every family (16 by default: about 270 short-lived threads for the seventeen families,
  // some 20 ms of every start). The opening thread alone loads them.
  db_options.max_file_opening_threads = 1;
  db_options.max_open_files = options.max_open_files;
  // One shard: the table cache's capacity is split evenly among its shards (64 by default, so
  // some 8 files each), and a shard that draws more files than that closes and reopens them
  // on the hot path (measured: dispatch past a 1,000,000-job backlog 2.9 -> 3.7 ms). Its
  // lock is held for a hash lookup.
  db_options.table_cache_numshardbits = 0;
  db_options.keep_log_file_num = 5;
  // Bounds the log a restart after a crash replays (about 2 s per 64 MiB here).
  db_options.max_total_wal_size = 64 << 20;
  // Memory for memtables, all families together (each may grow to write_buffer_size, and there
  // are a dozen): past it the largest is flushed. With the block cache this bounds RocksDB's
  // memory, so that a deep backlog does not grow the coordinator.
  db_options.db_write_buffer_size = options.write_buffer_bytes;
  // Reject a corrupted tail of the WAL loudly except for the last, possibly torn, record.
  db_options.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;

  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));

  rocksdb::ColumnFamilyOptions cf_options;
  cf_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  // The event history is scanned, or read by keys that exist: bloom filters would never answer
  // a miss, yet every open loads them and they stay in memory (some 10 bits per event).
  rocksdb::BlockBasedTableOptions unfiltered = table;
  unfiltered.filter_policy.reset();
  std::shared_ptr<rocksdb::TableFactory> unfiltered_factory(
      rocksdb::NewBlockBasedTableFactory(unfiltered));
  cf_options.compression = rocksdb::kLZ4Compression;
  cf_options.write_buffer_size = 32 << 20;

  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  descriptors.emplace_back(rocksdb::kDefaultColumnFamilyName, cf_options);
  for (int i = 0; i < kNumCfs; ++i) {
    rocksdb::ColumnFamilyOptions family = cf_options;
    if (static_cast<Cf>(i) == Cf::kRequests) {
      // Every submit with a request id looks its id up, and almost always misses: a memtable
      // bloom filter answers a miss without walking the skiplist.
      family.memtable_whole_key_filtering = true;
      family.memtable_prefix_bloom_size_ratio = 0.02;
    }
    if (static_cast<Cf>(i) == Cf::kEvents || static_cast<Cf>(i) == Cf::kJobEvents) {
      // Written with every change and read rarely: small memtables flush early to files, so
      // that the history does not hold the coordinator's memory (RSS after 100,000 submits,
      // measured: 75 MiB with the default size, 53 MiB with this, 49 MiB with no history).
      family.write_buffer_size = 512 << 10;
      family.table_factory = unfiltered_factory;
    }
    descriptors.emplace_back(CfName(static_cast<Cf>(i)), family);
  }

  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, options.path, descriptors, &handles, &raw);
  if (!s.ok()) return FromRocks(s, absl::StrCat("cannot open the store in ", options.path));
  auto db = std::make_unique<Db>();
  db->db.reset(raw);
  // handles[0] is the default family, which the farm does not use; keep it to close it.
  db->handles.assign(handles.begin() + 1, handles.end());
  db->handles.push_back(handles[0]);
  return db;
}

RocksDbStore::~RocksDbStore() {
  std::unique_ptr<Db> db;
  bool healthy;
  {
    absl::MutexLock lock(&mu_);
    db = std::move(db_);
    healthy = write_error_.ok();
  }
  if (db != nullptr && healthy) {
    // Flushed memtables need no log replay at the next start: a clean restart serves at once
    // however much was written since the last flush (measured: 4.5 s to replay after 1M
    // submits, without this).
    rocksdb::FlushOptions flush;
    flush.allow_write_stall = true;
    rocksdb::Status s = db->db->Flush(flush, db->handles);
    if (!s.ok()) FARM_LOG(WARNING) << "flushing the store before closing it: " << s.ToString();
  }
}

int64_t RocksDbStore::reopens() const {
  absl::MutexLock lock(&mu_);
  return reopens_;
}

absl::StatusOr<RocksDbStore::Use> RocksDbStore::Acquire() {
  absl::MutexLock lock(&mu_);
  if (db_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("the store in ", options_.path, " is being reopened after a failed write",
                     write_error_.ok() ? "" : absl::StrCat(" (", write_error_.message(), ")")));
  }
  ++users_;
  return Use(this, db_.get());
}

absl::Status RocksDbStore::CheckFreeSpace(size_t incoming) const {
  if (options_.min_free_bytes <= 0) return absl::OkStatus();
  struct statvfs fs;
  if (statvfs(options_.path.c_str(), &fs) != 0) return absl::OkStatus();  // RocksDB will tell
  const int64_t free_bytes = static_cast<int64_t>(fs.f_bavail) * static_cast<int64_t>(fs.f_frsize);
  const int64_t needed = options_.min_free_bytes + static_cast<int64_t>(incoming);
  if (free_bytes >= needed) return absl::OkStatus();
  return absl::ResourceExhaustedError(
      absl::StrCat("the coordinator's disk is full: ", options_.path, " has ", free_bytes >> 20,
                   " MiB free, below the ", options_.min_free_bytes >> 20,
                   " MiB the store keeps in reserve; writes resume once space is freed"));
}

absl::Status RocksDbStore::RecoverIfNeeded() {
  {
    absl::MutexLock lock(&mu_);
    if (write_error_.ok() && db_ != nullptr) return absl::OkStatus();
    const int64_t now = MonotonicMs();
    if (now < next_reopen_ms_) return write_error_;
    next_reopen_ms_ = now + options_.reopen_interval_ms;
  }
  // Without space the database could not be opened again; the old one at least serves reads.
  if (absl::Status s = CheckFreeSpace(0); !s.ok()) return s;
  return Reopen();
}

absl::Status RocksDbStore::Reopen() {
  absl::MutexLock reopen_lock(&reopen_mu_);
  std::unique_ptr<Db> old;
  {
    absl::MutexLock lock(&mu_);
    if (write_error_.ok() && db_ != nullptr) return absl::OkStatus();  // another writer did it
    old = std::move(db_);  // from here on, new callers get UNAVAILABLE
    auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return users_ == 0; };
    if (!mu_.AwaitWithTimeout(absl::Condition(&idle), absl::Seconds(10))) {
      db_ = std::move(old);
      return absl::UnavailableError(
          absl::StrCat("the store in ", options_.path,
                       " cannot reopen after a failed write: readers hold it; retrying later"));
    }
  }
  // RocksDB refuses to open a database this process still holds: close it first.
  old.reset();
  absl::StatusOr<std::unique_ptr<Db>> fresh = OpenDb(options_, logger_);
  absl::MutexLock lock(&mu_);
  if (!fresh.ok()) {
    if (failed_reopens_++ % 10 == 0) {
      FARM_LOG(ERROR) << "cannot reopen the store (attempt " << failed_reopens_
                      << "; retried every " << options_.reopen_interval_ms
                      << " ms while writes come): " << fresh.status();
    }
    write_error_ = fresh.status();
    return fresh.status();
  }
  failed_reopens_ = 0;
  db_ = *std::move(fresh);
  write_error_ = absl::OkStatus();
  ++reopens_;
  FARM_LOG(INFO) << "the store in " << options_.path << " is open again; writes resume";
  return absl::OkStatus();
}

absl::StatusOr<std::optional<std::string>> RocksDbStore::Get(Cf cf, absl::string_view key) {
  FARM_ASSIGN_OR_RETURN(Use db, Acquire());
  std::string value;
  rocksdb::Status s = db->db->Get(rocksdb::ReadOptions(), db->handle(cf), ToSlice(key), &value);
  if (s.IsNotFound()) return std::nullopt;
  if (!s.ok()) return FromRocks(s, absl::StrCat("reading ", CfName(cf)));
  return value;
}

absl::Status RocksDbStore::Scan(Cf cf, absl::string_view start, absl::string_view limit,
                                const ScanFn& fn, bool reverse) {
  FARM_ASSIGN_OR_RETURN(Use db, Acquire());
  rocksdb::ReadOptions ro;
  if (cf == Cf::kEvents) {
    // History is read in long runs (a factory report reads a day of it) and rarely again: it
    // would push what the engine reads out of the block cache. Read ahead instead.
    ro.fill_cache = false;
    ro.readahead_size = 2 << 20;
  }
  std::unique_ptr<rocksdb::Iterator> it(db->db->NewIterator(ro, db->handle(cf)));
  if (!reverse) {
    for (it->Seek(ToSlice(start)); it->Valid(); it->Next()) {
      absl::string_view key = ToView(it->key());
      if (!limit.empty() && key >= limit) break;
      if (!fn(key, ToView(it->value()))) break;
    }
  } else {
    if (limit.empty()) {
      it->SeekToLast();
    } else {
      it->SeekForPrev(ToSlice(limit));
      if (it->Valid() && ToView(it->key()) == limit) it->Prev();
    }
    for (; it->Valid(); it->Prev()) {
      absl::string_view key = ToView(it->key());
      if (key < start) break;
      if (!fn(key, ToView(it->value()))) break;
    }
  }
  return FromRocks(it->status(), absl::StrCat("scanning ", CfName(cf)));
}

absl::Status RocksDbStore::Write(const WriteBatch& batch, bool sync) {
  FARM_RETURN_IF_ERROR(RecoverIfNeeded());
  FARM_RETURN_IF_ERROR(CheckFreeSpace(batch.byte_size()));
  FARM_ASSIGN_OR_RETURN(Use db, Acquire());
  rocksdb::WriteBatch wb;
  for (const auto& op : batch.ops()) {
    auto* h = db->handle(op.cf);
    rocksdb::Status s = op.is_range    ? wb.DeleteRange(h, ToSlice(op.key), ToSlice(op.value))
                        : op.is_delete ? wb.Delete(h, ToSlice(op.key))
                                       : wb.Put(h, ToSlice(op.key), ToSlice(op.value));
    if (!s.ok()) return FromRocks(s, "building a write batch");
  }
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  rocksdb::Status s = db->db->Write(wo, &wb);
  if (s.ok()) return absl::OkStatus();
  absl::Status status = FromRocks(s, "writing to the store");
  if (NeedsReopen(s)) {
    absl::MutexLock lock(&mu_);
    if (write_error_.ok()) {
      FARM_LOG(ERROR) << status << "; writes are refused until the store has reopened (tried "
                      << "every " << options_.reopen_interval_ms << " ms once space is free)";
      write_error_ = status;
      next_reopen_ms_ = MonotonicMs() + options_.reopen_interval_ms;
    }
  }
  return status;
}

absl::Status RocksDbStore::Compact(const std::vector<Range>& ranges) {
  FARM_ASSIGN_OR_RETURN(Use db, Acquire());
  rocksdb::FlushOptions flush;
  flush.allow_write_stall = true;
  FARM_RETURN_IF_ERROR(FromRocks(db->db->Flush(flush, db->handles), "flushing the store"));
  rocksdb::CompactRangeOptions compact;
  // The deletes sit in the newest files; only a compaction into the last level drops them and
  // what they cover.
  compact.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForceOptimized;
  for (const Range& r : ranges) {
    const rocksdb::Slice start = ToSlice(r.start);
    const rocksdb::Slice limit = ToSlice(r.limit);
    rocksdb::Status s =
        db->db->CompactRange(compact, db->handle(r.cf), &start, r.limit.empty() ? nullptr : &limit);
    FARM_RETURN_IF_ERROR(FromRocks(s, absl::StrCat("compacting ", CfName(r.cf))));
  }
  return absl::OkStatus();
}

absl::Status RocksDbStore::Checkpoint(const std::string& dir) {
  FARM_ASSIGN_OR_RETURN(Use db, Acquire());
  rocksdb::Checkpoint* raw = nullptr;
  FARM_RETURN_IF_ERROR(FromRocks(rocksdb::Checkpoint::Create(db->db.get(), &raw),
                                 absl::StrCat("cannot make a checkpoint in ", dir)));
  std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
  // log_size_for_flush 0: every family is flushed first, so the copy holds table files and
  // at most the log written since.
  return FromRocks(checkpoint->CreateCheckpoint(dir, /*log_size_for_flush=*/0),
                   absl::StrCat("cannot make a checkpoint in ", dir));
}

namespace {

// A count in a RocksDB map property (0 when absent or not a number).
int64_t CountOf(const std::map<std::string, std::string>& map, const std::string& key) {
  auto it = map.find(key);
  int64_t n = 0;
  if (it == map.end() || !absl::SimpleAtoi(it->second, &n)) return 0;
  return n;
}

}  // namespace

absl::StatusOr<StoreStats> RocksDbStore::Stats() {
  FARM_ASSIGN_OR_RETURN(Use db, Acquire());
  auto property = [&db](rocksdb::ColumnFamilyHandle* family, const std::string& name) {
    uint64_t value = 0;
    if (!db->db->GetIntProperty(family, name, &value)) return int64_t{0};
    return static_cast<int64_t>(value);
  };
  StoreStats stats;
  for (int i = 0; i < kNumCfs; ++i) {
    rocksdb::ColumnFamilyHandle* family = db->handle(static_cast<Cf>(i));
    StoreStats::Family f;
    f.name = CfName(static_cast<Cf>(i));
    f.estimated_keys = property(family, rocksdb::DB::Properties::kEstimateNumKeys);
    f.live_bytes = property(family, rocksdb::DB::Properties::kEstimateLiveDataSize);
    f.sst_bytes = property(family, rocksdb::DB::Properties::kTotalSstFilesSize);
    f.memtable_bytes = property(family, rocksdb::DB::Properties::kCurSizeAllMemTables);
    stats.sst_bytes += f.sst_bytes;
    stats.pending_compaction_bytes +=
        property(family, rocksdb::DB::Properties::kEstimatePendingCompactionBytes);
    std::map<std::string, std::string> cf_stats;
    if (db->db->GetMapProperty(family, rocksdb::DB::Properties::kCFStats, &cf_stats)) {
      stats.stalls_stopped += CountOf(cf_stats, "io_stalls.total_stop");
      stats.stalls_slowed += CountOf(cf_stats, "io_stalls.total_slowdown");
    }
    stats.families.push_back(std::move(f));
  }
  uint64_t stopped = 0;
  uint64_t delayed_rate = 0;
  stats.write_stalled =
      (db->db->GetIntProperty(rocksdb::DB::Properties::kIsWriteStopped, &stopped) && stopped) ||
      (db->db->GetIntProperty(rocksdb::DB::Properties::kActualDelayedWriteRate, &delayed_rate) &&
       delayed_rate > 0);
  rocksdb::VectorLogPtr logs;
  if (db->db->GetSortedWalFiles(logs).ok()) {
    for (const auto& log : logs) stats.wal_bytes += static_cast<int64_t>(log->SizeFileBytes());
  }
  return stats;
}

}  // namespace farm::coordinator
