// A RocksDB FileSystem that models power loss: it remembers, per file, how much was written
// and how much of that was made durable (Sync/Fsync). Freeze() is the moment the power goes:
// every later write or sync fails. DropUnsyncedData() then truncates every file to its durable
// length, which is what the disk holds after the machine comes back.
//
// Not modelled: directory entries of files whose directory was never synced (RocksDB syncs
// its directory after creating files it depends on), and torn sectors inside a synced range.
// Thread-safe.
#pragma once

#include <rocksdb/file_system.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace farm::fault {

class CrashFs : public rocksdb::FileSystemWrapper {
 public:
  explicit CrashFs(std::shared_ptr<rocksdb::FileSystem> base);

  const char* Name() const override { return "CrashFs"; }

  rocksdb::IOStatus NewWritableFile(const std::string& fname, const rocksdb::FileOptions& opts,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReopenWritableFile(const std::string& fname, const rocksdb::FileOptions& opts,
                                       std::unique_ptr<rocksdb::FSWritableFile>* result,
                                       rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReuseWritableFile(const std::string& fname, const std::string& old_fname,
                                      const rocksdb::FileOptions& opts,
                                      std::unique_ptr<rocksdb::FSWritableFile>* result,
                                      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus DeleteFile(const std::string& fname, const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus RenameFile(const std::string& src, const std::string& target,
                               const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override;

  // The power goes out: from now on every write and sync fails.
  void Freeze() { frozen_ = true; }
  bool frozen() const { return frozen_; }
  // After the processes using the files are gone: truncates every file to what was synced.
  // Returns the number of bytes dropped.
  uint64_t DropUnsyncedData();

  // Called by the files.
  void Written(const std::string& fname, uint64_t bytes);
  void Truncated(const std::string& fname, uint64_t size);
  void Synced(const std::string& fname);

 private:
  struct FileState {
    uint64_t written = 0;
    uint64_t synced = 0;
  };
  rocksdb::IOStatus Wrap(const std::string& fname, rocksdb::IOStatus s, uint64_t initial_size,
                         std::unique_ptr<rocksdb::FSWritableFile>* result);

  std::atomic<bool> frozen_{false};
  std::mutex mu_;
  std::map<std::string, FileState> files_;  // guarded by mu_
};

}  // namespace farm::fault
