// The production Store: RocksDB with one column family per record kind, synced WAL writes.
// Thread-safe (RocksDB is). Concurrent Write calls are allowed, but the coordinator funnels
// all writes through one thread (scheduler/engine.h) so that they group-commit.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "coordinator/store/store.h"

namespace rocksdb {
class DB;
class Env;
class ColumnFamilyHandle;
}  // namespace rocksdb

namespace farm::coordinator {

struct RocksDbStoreOptions {
  std::string path;
  // Memory for the block cache shared by all families.
  size_t block_cache_bytes = 64 << 20;
  // The file system layer; null for the process default. Fault tests pass one that can lose
  // unsynced writes. Not owned; must outlive the store.
  rocksdb::Env* env = nullptr;
};

class RocksDbStore : public Store {
 public:
  // Opens (creating if needed) the database at options.path. FAILED_PRECONDITION when another
  // process holds it, UNAVAILABLE/INTERNAL for other errors; the message names the path.
  static absl::StatusOr<std::unique_ptr<RocksDbStore>> Open(const RocksDbStoreOptions& options);
  ~RocksDbStore() override;

  absl::StatusOr<std::optional<std::string>> Get(Cf cf, absl::string_view key) override;
  absl::Status Scan(Cf cf, absl::string_view start, absl::string_view limit, const ScanFn& fn,
                    bool reverse) override;
  absl::Status Write(const WriteBatch& batch, bool sync) override;

 private:
  RocksDbStore() = default;

  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;  // indexed by Cf
};

}  // namespace farm::coordinator
