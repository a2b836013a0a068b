// What the parts of FileBlobStore (file_blob_store*.cc) share beyond its class: the metadata
// encoding, the on-disk layout helpers, a multi-stripe lock, and the state of a resumable
// upload. Only for coordinator/cas/file_blob_store*.cc. Thread-safety as stated per item.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/digest.h"
#include "coordinator/cas/file_blob_store.h"

namespace farm::coordinator::cas_internal {

inline constexpr size_t kMetaBytes = 32;     // a cas_blobs value (layout in file_blob_store.h)
inline constexpr size_t kIoChunk = 1 << 20;  // reads that hash a blob go this far at a time
inline constexpr int kShards = 256;          // blob directories, one per first hash byte
// An upload starts the writeback of what it received each time this much has arrived.
inline constexpr int64_t kWritebackBytes = 8 << 20;

// A cas_blobs value.
std::string EncodeMeta(int64_t size, int64_t created, int64_t accessed, int64_t pinned);
// A cas_lru key.
std::string LruKey(int64_t accessed_ms, absl::string_view hash);
// The shard directory index of a (validated) hash: its first byte.
int ShardOf(absl::string_view hash);
// Blob files are read-only once complete: chmods, syncs (unless the caller syncs the whole file
// system instead) and closes fd, whatever fails. The error names `path`.
absl::Status SealAndClose(int fd, const std::string& path, bool sync = true);
// The first few digests, and how many more, for an error message.
std::string DescribeDigests(const std::vector<common::Digest>& digests);
// The message of DATA_LOSS for a blob found corrupt (and removed) for reason `why`.
std::string CorruptMessage(const common::Digest& digest, absl::string_view why);

// Holds several stripe locks (as FileBlobStore::StripesFor orders them) for its lifetime.
class StripeLocks {
 public:
  explicit StripeLocks(std::vector<absl::Mutex*> ordered);
  ~StripeLocks();
  StripeLocks(const StripeLocks&) = delete;
  StripeLocks& operator=(const StripeLocks&) = delete;

 private:
  const std::vector<absl::Mutex*> locks_;
};

}  // namespace farm::coordinator::cas_internal

namespace farm::coordinator {

// A resumable upload: its temp file and hashing state. Shared by the upload table
// (FileBlobStore::uploads_) and the writers of the upload; everything but the constant fields
// is guarded by mu. Lock order: uploads_mu_ before mu.
struct FileBlobStore::Upload {
  Upload(std::string key, Digest digest, std::string temp_path)
      : key(std::move(key)), digest(std::move(digest)), temp_path(std::move(temp_path)) {}

  const std::string key;  // upload id "\n" digest
  const Digest digest;
  const std::string temp_path;

  absl::Mutex mu;
  int fd ABSL_GUARDED_BY(mu) = -1;  // open while a writer is attached
  common::Sha256Hasher hasher ABSL_GUARDED_BY(mu);
  int64_t committed ABSL_GUARDED_BY(mu) = 0;
  int64_t writeback_from ABSL_GUARDED_BY(mu) = 0;  // bytes below this were sent to the disk
  int64_t last_active_ms ABSL_GUARDED_BY(mu) = 0;
  // Bumped by each OpenWrite: only the newest writer may write.
  uint64_t generation ABSL_GUARDED_BY(mu) = 0;
  // Discarded, swept or committed: no longer writable.
  bool dead ABSL_GUARDED_BY(mu) = false;
};

}  // namespace farm::coordinator
