// FileBlobStore's batch puts (BatchUpdateBlobs, Put) and InstallAll, the one way a finished,
// verified blob file becomes visible (uploads commit through it too). A batch shares its disk
// syncs: its files are synced with one syncfs, its directories once each, its entries in one
// synced store batch. InstallAll holds the stripes of all its blobs at once.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/posix_io.h"
#include "coordinator/cas/file_blob_store.h"
#include "coordinator/cas/file_blob_store_internal.h"

namespace farm::coordinator {

using cas_internal::EncodeMeta;
using cas_internal::kShards;
using cas_internal::LruKey;
using cas_internal::SealAndClose;
using cas_internal::ShardOf;
using cas_internal::StripeLocks;

absl::Status FileBlobStore::CheckOffered(const Digest& digest, absl::string_view data) const {
  if (static_cast<int64_t>(data.size()) != digest.size) {
    return absl::InvalidArgumentError(
        absl::StrCat("blob ", digest.ToString(), " came with ", data.size(), " bytes of data"));
  }
  if (digest.size > options_.max_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat("blob ", digest.ToString(),
                                                     " is larger than the whole CAS (",
                                                     options_.max_bytes, " bytes)"));
  }
  const Digest got = common::DigestOf(data);
  if (got.hash != digest.hash) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data sent as ", digest.ToString(), " hashes to ", got.hash, "; nothing was stored"));
  }
  return absl::OkStatus();
}

absl::Status FileBlobStore::Put(const Digest& digest, absl::string_view data) {
  return PutBatch({BlobData{digest, data}})[0];
}

std::vector<absl::Status> FileBlobStore::PutBatch(const std::vector<BlobData>& blobs) {
  std::vector<absl::Status> results(blobs.size());
  std::vector<Staged> staged;
  std::vector<size_t> staged_index;  // staged[k] came as blobs[staged_index[k]]
  std::vector<int> fds;
  absl::flat_hash_map<Digest, size_t> first;  // a digest offered twice is stored once
  std::vector<std::pair<size_t, size_t>> repeats;
  for (size_t i = 0; i < blobs.size(); ++i) {
    const Digest& d = blobs[i].digest;
    absl::Status& s = results[i];
    s = CheckOffered(d, blobs[i].data);
    if (!s.ok()) continue;
    if (auto it = first.find(d); it != first.end()) {
      repeats.emplace_back(i, it->second);
      continue;
    }
    first.emplace(d, i);
    absl::StatusOr<bool> present = Contains(d);
    if (!present.ok() || *present) {
      s = present.status();
      if (s.ok() && d.size > 0) Touch(d.hash);
      continue;
    }
    int fd = -1;
    absl::StatusOr<std::string> temp = WriteTemp(blobs[i].data, &fd);
    if (!temp.ok()) {
      s = temp.status();
      continue;
    }
    staged.push_back(Staged{d, std::move(*temp), absl::OkStatus()});
    staged_index.push_back(i);
    fds.push_back(fd);
  }
  SyncStaged(staged, fds);
  InstallAll(staged);
  for (size_t k = 0; k < staged.size(); ++k) results[staged_index[k]] = staged[k].status;
  for (const auto& [repeat, original] : repeats) results[repeat] = results[original];
  return results;
}

absl::StatusOr<std::string> FileBlobStore::WriteTemp(absl::string_view data, int* fd) {
  std::string temp = TempPath("put");
  *fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (*fd < 0) return common::ErrnoStatus(errno, absl::StrCat("creating ", temp));
  if (absl::Status s = common::WriteAllAt(*fd, data, 0, absl::StrCat("writing ", temp)); !s.ok()) {
    ::close(*fd);
    *fd = -1;
    ::unlink(temp.c_str());
    return s;
  }
  // Start the writeback of every blob of a batch first: the fsyncs then mostly find their data
  // on its way, and the file system commits the batch's metadata together.
  ::sync_file_range(*fd, 0, 0, SYNC_FILE_RANGE_WRITE);
  return temp;
}

void FileBlobStore::SyncStaged(std::vector<Staged>& staged, const std::vector<int>& fds) {
  // One file is synced by itself; several with one syncfs(2), which costs about as much as a
  // single fsync while one fsync per file would dominate a batch of small blobs (measured: 5x
  // faster for 3000 small blobs). The price: it also waits for other dirty data on the CAS's
  // file system, which is why the CAS wants a volume of its own.
  const bool sync_each = staged.size() <= 1;
  for (size_t k = 0; k < staged.size(); ++k) {
    staged[k].status = SealAndClose(fds[k], staged[k].temp_path, sync_each);
    if (!staged[k].status.ok()) ::unlink(staged[k].temp_path.c_str());
  }
  if (sync_each || ::syncfs(shard_fds_[0]) == 0) return;
  const absl::Status s =
      common::ErrnoStatus(errno, absl::StrCat("syncing the file system of ", options_.root));
  for (Staged& item : staged) {
    if (!item.status.ok()) continue;
    ::unlink(item.temp_path.c_str());
    item.status = s;
  }
}

void FileBlobStore::InstallAll(std::vector<Staged>& items) {
  std::vector<absl::string_view> hashes;
  for (const Staged& item : items) {
    if (item.status.ok()) hashes.push_back(item.digest.hash);
  }
  bool above_limit = false;
  {
    StripeLocks locks(StripesFor(hashes));
    std::vector<Staged*> moved;  // renamed into place, waiting for their directory and metadata
    absl::flat_hash_set<std::string> moved_hashes;
    std::vector<bool> dirty_shards(kShards, false);
    for (Staged& item : items) {
      if (!item.status.ok() || !MoveIntoPlaceLocked(item, moved_hashes)) continue;
      moved.push_back(&item);
      moved_hashes.insert(item.digest.hash);
      dirty_shards[ShardOf(item.digest.hash)] = true;
    }
    // Files without an entry are invisible (and start-up deletes them), so a failure from here
    // on only needs to remove the files.
    for (int shard = 0; shard < kShards; ++shard) {
      if (!dirty_shards[shard] || ::fsync(shard_fds_[shard]) == 0) continue;
      const absl::Status s = common::ErrnoStatus(errno, absl::StrCat("syncing ", ShardDir(shard)));
      for (Staged* item : moved) {
        if (item->status.ok() && ShardOf(item->digest.hash) == shard) item->status = s;
      }
    }
    RecordInstalled(moved);
    above_limit = bytes_.load() > options_.max_bytes;
  }
  if (above_limit) WakeMaintenance();
}

bool FileBlobStore::MoveIntoPlaceLocked(Staged& item,
                                        const absl::flat_hash_set<std::string>& moved_hashes) {
  const Digest& d = item.digest;
  absl::StatusOr<std::optional<Meta>> meta = GetMeta(d.hash);
  if (!meta.ok()) {
    item.status = meta.status();
    ::unlink(item.temp_path.c_str());
    return false;
  }
  if ((meta->has_value() && (*meta)->size == d.size) || moved_hashes.contains(d.hash)) {
    // A concurrent upload of the same blob won: keep its copy.
    ::unlink(item.temp_path.c_str());
    Touch(d.hash);
    return false;
  }
  if (meta->has_value()) {
    FARM_LOG(WARNING) << "CAS entry " << d.hash << " said " << (*meta)->size
                      << " bytes; replacing it with a verified upload of " << d.size;
    item.status = RemoveLocked(d.hash, **meta);
    if (!item.status.ok()) {
      ::unlink(item.temp_path.c_str());
      return false;
    }
  }
  const std::string path = BlobPath(d);
  if (::rename(item.temp_path.c_str(), path.c_str()) != 0) {
    item.status =
        common::ErrnoStatus(errno, absl::StrCat("renaming ", item.temp_path, " to ", path));
    ::unlink(item.temp_path.c_str());
    return false;
  }
  return true;
}

void FileBlobStore::RecordInstalled(const std::vector<Staged*>& moved) {
  const int64_t now = clock_->NowMs();
  WriteBatch batch;
  for (const Staged* item : moved) {
    if (!item->status.ok()) continue;
    batch.Put(Cf::kCasBlobs, item->digest.hash, EncodeMeta(item->digest.size, now, now, 0));
    batch.Put(Cf::kCasLru, LruKey(now, item->digest.hash), "");
  }
  const absl::Status written = batch.empty() ? absl::OkStatus() : store_->Write(batch, true);
  for (Staged* item : moved) {
    if (item->status.ok()) item->status = written;
    if (item->status.ok()) {
      bytes_ += item->digest.size;
      written_bytes_.fetch_add(item->digest.size, std::memory_order_relaxed);
      ++blobs_;
    } else {
      ::unlink(BlobPath(item->digest).c_str());
    }
  }
}

}  // namespace farm::coordinator
