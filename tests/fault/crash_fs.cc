#include "tests/fault/crash_fs.h"

#include <unistd.h>

namespace farm::fault {
namespace {

using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;
using rocksdb::Slice;

IOStatus PowerIsOut() { return IOStatus::IOError("power loss (CrashFs is frozen)"); }

class CrashFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  CrashFile(std::unique_ptr<rocksdb::FSWritableFile> target, CrashFs* fs, std::string fname)
      : FSWritableFileOwnerWrapper(std::move(target)), fs_(fs), fname_(std::move(fname)) {}

  IOStatus Append(const Slice& data, const IOOptions& o, IODebugContext* d) override {
    if (fs_->frozen()) return PowerIsOut();
    IOStatus s = target()->Append(data, o, d);
    if (s.ok()) fs_->Written(fname_, data.size());
    return s;
  }
  IOStatus Append(const Slice& data, const IOOptions& o, const rocksdb::DataVerificationInfo& v,
                  IODebugContext* d) override {
    if (fs_->frozen()) return PowerIsOut();
    IOStatus s = target()->Append(data, o, v, d);
    if (s.ok()) fs_->Written(fname_, data.size());
    return s;
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& o,
                            IODebugContext* d) override {
    if (fs_->frozen()) return PowerIsOut();
    IOStatus s = target()->PositionedAppend(data, offset, o, d);
    if (s.ok()) fs_->Truncated(fname_, offset + data.size());
    return s;
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& o,
                            const rocksdb::DataVerificationInfo& v, IODebugContext* d) override {
    if (fs_->frozen()) return PowerIsOut();
    IOStatus s = target()->PositionedAppend(data, offset, o, v, d);
    if (s.ok()) fs_->Truncated(fname_, offset + data.size());
    return s;
  }
  IOStatus Truncate(uint64_t size, const IOOptions& o, IODebugContext* d) override {
    if (fs_->frozen()) return PowerIsOut();
    IOStatus s = target()->Truncate(size, o, d);
    if (s.ok()) fs_->Truncated(fname_, size);
    return s;
  }
  IOStatus Flush(const IOOptions& o, IODebugContext* d) override {
    if (fs_->frozen()) return PowerIsOut();
    return target()->Flush(o, d);
  }
  IOStatus Sync(const IOOptions& o, IODebugContext* d) override {
    if (fs_->frozen()) return PowerIsOut();
    IOStatus s = target()->Sync(o, d);
    // A sync still running when the power went guarantees nothing.
    if (fs_->frozen()) return PowerIsOut();
    if (s.ok()) fs_->Synced(fname_);
    return s;
  }
  IOStatus Fsync(const IOOptions& o, IODebugContext* d) override {
    if (fs_->frozen()) return PowerIsOut();
    IOStatus s = target()->Fsync(o, d);
    // A sync still running when the power went guarantees nothing.
    if (fs_->frozen()) return PowerIsOut();
    if (s.ok()) fs_->Synced(fname_);
    return s;
  }
  // sync_file_range gives no durability guarantee: it does not count as a sync.
  IOStatus RangeSync(uint64_t offset, uint64_t nbytes, const IOOptions& o,
                     IODebugContext* d) override {
    if (fs_->frozen()) return PowerIsOut();
    return target()->RangeSync(offset, nbytes, o, d);
  }
  IOStatus Close(const IOOptions& o, IODebugContext* d) override {
    if (fs_->frozen()) return PowerIsOut();
    return target()->Close(o, d);
  }

 private:
  CrashFs* const fs_;
  const std::string fname_;
};

}  // namespace

CrashFs::CrashFs(std::shared_ptr<rocksdb::FileSystem> base) : FileSystemWrapper(std::move(base)) {}

IOStatus CrashFs::Wrap(const std::string& fname, IOStatus s, uint64_t initial_size,
                       std::unique_ptr<rocksdb::FSWritableFile>* result) {
  if (!s.ok()) return s;
  {
    std::lock_guard<std::mutex> lock(mu_);
    FileState& st = files_[fname];
    st.written = initial_size;
    st.synced = std::min(st.synced, initial_size);
  }
  result->reset(new CrashFile(std::move(*result), this, fname));
  return s;
}

IOStatus CrashFs::NewWritableFile(const std::string& fname, const rocksdb::FileOptions& opts,
                                  std::unique_ptr<rocksdb::FSWritableFile>* result,
                                  IODebugContext* dbg) {
  if (frozen_) return PowerIsOut();
  {
    // A new file replaces whatever had that name: nothing of it is durable yet.
    std::lock_guard<std::mutex> lock(mu_);
    files_[fname] = FileState{};
  }
  return Wrap(fname, target()->NewWritableFile(fname, opts, result, dbg), 0, result);
}

IOStatus CrashFs::ReopenWritableFile(const std::string& fname, const rocksdb::FileOptions& opts,
                                     std::unique_ptr<rocksdb::FSWritableFile>* result,
                                     IODebugContext* dbg) {
  if (frozen_) return PowerIsOut();
  uint64_t size = 0;
  if (!target()->GetFileSize(fname, IOOptions(), &size, dbg).ok()) size = 0;
  {
    // Data already in the file before we saw it is durable (it survived the last crash).
    std::lock_guard<std::mutex> lock(mu_);
    if (files_.find(fname) == files_.end()) files_[fname] = FileState{size, size};
  }
  return Wrap(fname, target()->ReopenWritableFile(fname, opts, result, dbg), size, result);
}

IOStatus CrashFs::ReuseWritableFile(const std::string& fname, const std::string& old_fname,
                                    const rocksdb::FileOptions& opts,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    IODebugContext* dbg) {
  if (frozen_) return PowerIsOut();
  {
    std::lock_guard<std::mutex> lock(mu_);
    files_.erase(old_fname);
    files_[fname] = FileState{};
  }
  return Wrap(fname, target()->ReuseWritableFile(fname, old_fname, opts, result, dbg), 0, result);
}

IOStatus CrashFs::DeleteFile(const std::string& fname, const IOOptions& options,
                             IODebugContext* dbg) {
  if (frozen_) return PowerIsOut();
  IOStatus s = target()->DeleteFile(fname, options, dbg);
  if (s.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    files_.erase(fname);
  }
  return s;
}

IOStatus CrashFs::RenameFile(const std::string& src, const std::string& target_name,
                             const IOOptions& options, IODebugContext* dbg) {
  if (frozen_) return PowerIsOut();
  IOStatus s = target()->RenameFile(src, target_name, options, dbg);
  if (s.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = files_.find(src);
    if (it != files_.end()) {
      files_[target_name] = it->second;
      files_.erase(it);
    } else {
      files_.erase(target_name);
    }
  }
  return s;
}

void CrashFs::Written(const std::string& fname, uint64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  files_[fname].written += bytes;
}

void CrashFs::Truncated(const std::string& fname, uint64_t size) {
  std::lock_guard<std::mutex> lock(mu_);
  FileState& st = files_[fname];
  st.written = size;
  st.synced = std::min(st.synced, size);
}

void CrashFs::Synced(const std::string& fname) {
  std::lock_guard<std::mutex> lock(mu_);
  FileState& st = files_[fname];
  st.synced = st.written;
}

uint64_t CrashFs::DropUnsyncedData() {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t dropped = 0;
  for (const auto& [fname, st] : files_) {
    if (st.written > st.synced) {
      dropped += st.written - st.synced;
      if (::truncate(fname.c_str(), static_cast<off_t>(st.synced)) != 0) continue;
    }
  }
  files_.clear();
  return dropped;
}

}  // namespace farm::fault
