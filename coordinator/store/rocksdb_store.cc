#include "coordinator/store/rocksdb_store.h"

#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

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

rocksdb::Slice ToSlice(absl::string_view s) { return rocksdb::Slice(s.data(), s.size()); }
absl::string_view ToView(const rocksdb::Slice& s) { return absl::string_view(s.data(), s.size()); }

}  // namespace

absl::StatusOr<std::unique_ptr<RocksDbStore>> RocksDbStore::Open(
    const RocksDbStoreOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(options.path, ec);
  // (The directory itself is created through the default file system in every case.)
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create data directory ", options.path, ": ", ec.message()));
  }

  rocksdb::Options db_options;
  if (options.env != nullptr) db_options.env = options.env;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.max_background_jobs = 2;
  db_options.keep_log_file_num = 5;
  db_options.max_total_wal_size = 256 << 20;
  // Reject a corrupted tail of the WAL loudly except for the last, possibly torn, record.
  db_options.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;

  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));

  rocksdb::ColumnFamilyOptions cf_options;
  cf_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  cf_options.compression = rocksdb::kLZ4Compression;
  cf_options.write_buffer_size = 32 << 20;

  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  descriptors.emplace_back(rocksdb::kDefaultColumnFamilyName, cf_options);
  for (int i = 0; i < kNumCfs; ++i) {
    descriptors.emplace_back(CfName(static_cast<Cf>(i)), cf_options);
  }

  std::unique_ptr<RocksDbStore> store(new RocksDbStore());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, options.path, descriptors, &handles, &db);
  if (!s.ok()) return FromRocks(s, absl::StrCat("cannot open the store in ", options.path));
  store->db_.reset(db);
  // handles[0] is the default family, which the farm does not use; keep it to close it.
  store->handles_.assign(handles.begin() + 1, handles.end());
  store->handles_.push_back(handles[0]);
  return store;
}

RocksDbStore::~RocksDbStore() {
  if (db_ == nullptr) return;
  for (auto* h : handles_) {
    rocksdb::Status s = db_->DestroyColumnFamilyHandle(h);
    if (!s.ok()) FARM_LOG(WARNING) << "closing column family: " << s.ToString();
  }
  rocksdb::Status s = db_->Close();
  if (!s.ok()) FARM_LOG(WARNING) << "closing the store: " << s.ToString();
}

absl::StatusOr<std::optional<std::string>> RocksDbStore::Get(Cf cf, absl::string_view key) {
  std::string value;
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), handles_[static_cast<int>(cf)], ToSlice(key), &value);
  if (s.IsNotFound()) return std::nullopt;
  if (!s.ok()) return FromRocks(s, absl::StrCat("reading ", CfName(cf)));
  return value;
}

absl::Status RocksDbStore::Scan(Cf cf, absl::string_view start, absl::string_view limit,
                                const ScanFn& fn, bool reverse) {
  rocksdb::ReadOptions ro;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, handles_[static_cast<int>(cf)]));
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
  rocksdb::WriteBatch wb;
  for (const auto& op : batch.ops()) {
    auto* h = handles_[static_cast<int>(op.cf)];
    rocksdb::Status s = op.is_delete ? wb.Delete(h, ToSlice(op.key))
                                     : wb.Put(h, ToSlice(op.key), ToSlice(op.value));
    if (!s.ok()) return FromRocks(s, "building a write batch");
  }
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  return FromRocks(db_->Write(wo, &wb), "writing to the store");
}

}  // namespace farm::coordinator
