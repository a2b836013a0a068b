// FileBlobStore's shared core: options, start-up reconciliation, the metadata of a blob and its
// stripe lock, uses (touches), Contains and FindMissing. The other parts live in
// file_blob_store_*.cc (see file_blob_store.h).
#include "coordinator/cas/file_blob_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/logging.h"
#include "common/posix_io.h"
#include "common/status_macros.h"
#include "coordinator/cas/file_blob_store_internal.h"
#include "coordinator/store/keys.h"

namespace farm::coordinator {
namespace cas_internal {

std::string EncodeMeta(int64_t size, int64_t created, int64_t accessed, int64_t pinned) {
  std::string out;
  out.reserve(kMetaBytes);
  keys::AppendU64(out, static_cast<uint64_t>(size));
  keys::AppendU64(out, static_cast<uint64_t>(created));
  keys::AppendU64(out, static_cast<uint64_t>(accessed));
  keys::AppendU64(out, static_cast<uint64_t>(pinned));
  return out;
}

std::string LruKey(int64_t accessed_ms, absl::string_view hash) {
  std::string key;
  key.reserve(8 + hash.size());
  keys::AppendU64(key, static_cast<uint64_t>(std::max<int64_t>(accessed_ms, 0)));
  key.append(hash.data(), hash.size());
  return key;
}

namespace {
int HexValue(char c) { return c <= '9' ? c - '0' : c - 'a' + 10; }
}  // namespace

int ShardOf(absl::string_view hash) { return HexValue(hash[0]) * 16 + HexValue(hash[1]); }

absl::Status SealAndClose(int fd, const std::string& path, bool sync) {
  absl::Status s;
  if (::fchmod(fd, 0444) != 0) s = common::ErrnoStatus(errno, absl::StrCat("chmod ", path));
  if (s.ok() && sync && ::fsync(fd) != 0) {
    s = common::ErrnoStatus(errno, absl::StrCat("syncing ", path));
  }
  if (::close(fd) != 0 && s.ok()) s = common::ErrnoStatus(errno, absl::StrCat("closing ", path));
  return s;
}

std::string DescribeDigests(const std::vector<common::Digest>& digests) {
  constexpr size_t kShown = 5;
  std::vector<std::string> shown;
  for (size_t i = 0; i < digests.size() && i < kShown; ++i) shown.push_back(digests[i].ToString());
  std::string out = absl::StrJoin(shown, ", ");
  if (digests.size() > kShown) absl::StrAppend(&out, " and ", digests.size() - kShown, " more");
  return out;
}

std::string CorruptMessage(const common::Digest& digest, absl::string_view why) {
  return absl::StrCat("blob ", digest.ToString(), " was corrupt on the server (", why,
                      ") and has been removed; upload it again");
}

StripeLocks::StripeLocks(std::vector<absl::Mutex*> ordered) : locks_(std::move(ordered)) {
  for (absl::Mutex* m : locks_) m->Lock();
}

StripeLocks::~StripeLocks() {
  for (auto it = locks_.rbegin(); it != locks_.rend(); ++it) (*it)->Unlock();
}

}  // namespace cas_internal

using cas_internal::kMetaBytes;
using cas_internal::kShards;
using cas_internal::LruKey;
using cas_internal::ShardOf;

// ---------------------------------------------------------------------------------------------
// Options

absl::Status FileBlobStoreOptions::Validate() const {
  if (root.empty()) return absl::InvalidArgumentError("the CAS root directory is empty");
  if (max_bytes < (int64_t{1} << 20)) {
    return absl::InvalidArgumentError("--cas_max_bytes must be at least 1 MiB");
  }
  if (low_watermark_percent < 1 || low_watermark_percent > 99) {
    return absl::InvalidArgumentError("the CAS low watermark must be between 1 and 99 percent");
  }
  if (min_age_ms < 0) return absl::InvalidArgumentError("--cas_min_age must not be negative");
  if (upload_idle_ttl_ms <= 0) {
    return absl::InvalidArgumentError("the CAS upload idle TTL must be positive");
  }
  if (max_uploads <= 0) return absl::InvalidArgumentError("the CAS upload limit must be positive");
  if (maintenance_interval_ms <= 0) {
    return absl::InvalidArgumentError("the CAS maintenance interval must be positive");
  }
  if (io_threads <= 0) {
    return absl::InvalidArgumentError("the CAS I/O thread count must be positive");
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Lifecycle and start-up

FileBlobStore::FileBlobStore(FileBlobStoreOptions options, Store* store, common::Clock* clock)
    : options_(std::move(options)),
      store_(store),
      clock_(clock),
      pool_(options_.io_threads, "cas-pins") {
  blobs_dir_ = options_.root + "/blobs";
  tmp_dir_ = options_.root + "/tmp";
}

absl::StatusOr<std::unique_ptr<FileBlobStore>> FileBlobStore::Open(FileBlobStoreOptions options,
                                                                   Store* store,
                                                                   common::Clock* clock) {
  FARM_RETURN_IF_ERROR(options.Validate());
  std::unique_ptr<FileBlobStore> blobs(new FileBlobStore(std::move(options), store, clock));
  FARM_RETURN_IF_ERROR(blobs->Init());
  return blobs;
}

FileBlobStore::~FileBlobStore() {
  StopMaintenance();
  for (int fd : shard_fds_) ::close(fd);
  // pool_, destroyed first of the members, then runs the pins still queued.
}

absl::Status FileBlobStore::Init() {
  FARM_RETURN_IF_ERROR(CreateDirectories());
  FARM_ASSIGN_OR_RETURN(const int64_t removed_temp, EmptyTmp());
  FARM_ASSIGN_OR_RETURN(const int64_t dropped, DropEntriesWithoutFiles());
  FARM_ASSIGN_OR_RETURN(const int64_t orphans, RemoveFilesWithoutEntries());
  FARM_LOG(INFO) << "CAS in " << options_.root << ": " << blobs_.load() << " blobs, "
                 << bytes_.load() << " bytes (limit " << options_.max_bytes << ")"
                 << (removed_temp + dropped + orphans > 0
                         ? absl::StrCat("; removed ", removed_temp, " unfinished uploads, ",
                                        dropped, " entries without a file, ", orphans,
                                        " files without an entry")
                         : "");
  return absl::OkStatus();
}

absl::Status FileBlobStore::CreateDirectories() {
  std::error_code ec;
  std::filesystem::create_directories(tmp_dir_, ec);
  for (int i = 0; i < kShards && !ec; ++i) {
    const std::string shard = ShardDir(i);
    std::filesystem::create_directories(shard, ec);
    if (ec) break;
    const int fd = ::open(shard.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return common::ErrnoStatus(errno, absl::StrCat("opening ", shard));
    shard_fds_.push_back(fd);
  }
  if (ec) {
    return absl::FailedPreconditionError(absl::StrCat("cannot create the CAS directories under ",
                                                      options_.root, ": ", ec.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> FileBlobStore::EmptyTmp() {
  namespace fs = std::filesystem;
  // Uploads do not survive a restart: their hashing state lived in memory.
  int64_t removed = 0;
  std::error_code ec;
  for (auto it = fs::directory_iterator(tmp_dir_, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    std::error_code rm;
    fs::remove_all(it->path(), rm);
    ++removed;
  }
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot list ", tmp_dir_, ": ", ec.message()));
  }
  return removed;
}

absl::StatusOr<int64_t> FileBlobStore::DropEntriesWithoutFiles() {
  // Entries whose file is missing or has the wrong size (a crash after an unsynced eviction,
  // or damage) are dropped.
  WriteBatch drop;
  int64_t dropped = 0;
  FARM_RETURN_IF_ERROR(
      store_->Scan(Cf::kCasBlobs, "", "", [&](absl::string_view key, absl::string_view value) {
        const std::string hash(key);
        struct stat st;
        const bool ok = value.size() == kMetaBytes && common::ValidateHash(hash).ok() &&
                        ::stat(BlobPath(Digest{hash, 0}).c_str(), &st) == 0 &&
                        st.st_size == static_cast<off_t>(keys::ReadU64(value, 0));
        if (ok) {
          bytes_ += static_cast<int64_t>(keys::ReadU64(value, 0));
          ++blobs_;
        } else {
          drop.Delete(Cf::kCasBlobs, hash);
          if (value.size() == kMetaBytes) {
            drop.Delete(Cf::kCasLru, LruKey(static_cast<int64_t>(keys::ReadU64(value, 16)), hash));
          }
          ++dropped;
        }
        return true;
      }));
  if (!drop.empty()) FARM_RETURN_IF_ERROR(store_->Write(drop, /*sync=*/true));
  return dropped;
}

absl::StatusOr<int64_t> FileBlobStore::RemoveFilesWithoutEntries() {
  namespace fs = std::filesystem;
  // Files without an entry: written, but the client never heard OK (or the entry was dropped).
  int64_t orphans = 0;
  std::error_code ec;
  for (int i = 0; i < kShards; ++i) {
    const std::string shard = ShardDir(i);
    for (auto it = fs::directory_iterator(shard, ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
      const std::string name = it->path().filename().string();
      bool keep = false;
      if (common::ValidateHash(name).ok()) {
        FARM_ASSIGN_OR_RETURN(auto meta, store_->Get(Cf::kCasBlobs, name));
        keep = meta.has_value();
      }
      if (!keep) {
        std::error_code rm;
        fs::remove_all(it->path(), rm);
        ++orphans;
      }
    }
    if (ec) {
      return absl::FailedPreconditionError(absl::StrCat("cannot list ", shard, ": ", ec.message()));
    }
  }
  return orphans;
}

// ---------------------------------------------------------------------------------------------
// Layout, metadata and locks

std::string FileBlobStore::ShardDir(int shard) const {
  const unsigned char byte = static_cast<unsigned char>(shard);
  return absl::StrCat(blobs_dir_, "/", common::HexEncode(&byte, 1));
}

std::string FileBlobStore::BlobPath(const Digest& digest) const {
  return absl::StrCat(blobs_dir_, "/", absl::string_view(digest.hash).substr(0, 2), "/",
                      digest.hash);
}

absl::Mutex& FileBlobStore::StripeFor(absl::string_view hash) {
  return stripes_[ShardOf(hash) % (sizeof(stripes_) / sizeof(stripes_[0]))];
}

std::vector<absl::Mutex*> FileBlobStore::StripesFor(const std::vector<absl::string_view>& hashes) {
  // One global order (by address), so that concurrent holders of several cannot deadlock.
  std::vector<absl::Mutex*> locks;
  locks.reserve(hashes.size());
  for (absl::string_view hash : hashes) locks.push_back(&StripeFor(hash));
  std::sort(locks.begin(), locks.end());
  locks.erase(std::unique(locks.begin(), locks.end()), locks.end());
  return locks;
}

std::string FileBlobStore::TempPath(absl::string_view kind) {
  return absl::StrCat(tmp_dir_, "/", kind, "-", clock_->NowMs(), "-", temp_seq_++);
}

absl::StatusOr<std::optional<FileBlobStore::Meta>> FileBlobStore::GetMeta(absl::string_view hash) {
  FARM_ASSIGN_OR_RETURN(std::optional<std::string> raw, store_->Get(Cf::kCasBlobs, hash));
  if (!raw.has_value()) return std::optional<Meta>();
  if (raw->size() != kMetaBytes) {
    return absl::InternalError(
        absl::StrCat("CAS metadata of ", hash, " is ", raw->size(), " bytes, not ", kMetaBytes));
  }
  Meta m;
  m.size = static_cast<int64_t>(keys::ReadU64(*raw, 0));
  m.created_ms = static_cast<int64_t>(keys::ReadU64(*raw, 8));
  m.accessed_ms = static_cast<int64_t>(keys::ReadU64(*raw, 16));
  m.pinned_until_ms = static_cast<int64_t>(keys::ReadU64(*raw, 24));
  return std::optional<Meta>(m);
}

void FileBlobStore::Touch(absl::string_view hash) {
  constexpr size_t kFlushAt = 100'000;
  bool wake = false;
  {
    absl::MutexLock lock(&touch_mu_);
    touches_[hash] = clock_->NowMs();
    wake = touches_.size() >= kFlushAt;
  }
  if (wake) WakeMaintenance();
}

absl::Status FileBlobStore::RemoveLocked(absl::string_view hash, const Meta& meta) {
  WriteBatch batch;
  batch.Delete(Cf::kCasBlobs, std::string(hash));
  batch.Delete(Cf::kCasLru, LruKey(meta.accessed_ms, hash));
  // Unsynced: if a crash forgets the delete, start-up finds the entry without its file.
  FARM_RETURN_IF_ERROR(store_->Write(batch, /*sync=*/false));
  const std::string path = BlobPath(Digest{std::string(hash), meta.size});
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    FARM_LOG(WARNING) << "cannot remove " << path << ": " << std::strerror(errno);
  }
  bytes_ -= meta.size;
  --blobs_;
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Presence and statistics

absl::StatusOr<bool> FileBlobStore::Contains(const Digest& digest) {
  if (digest == common::EmptyDigest()) return true;
  FARM_ASSIGN_OR_RETURN(std::optional<Meta> meta, GetMeta(digest.hash));
  return meta.has_value() && meta->size == digest.size;
}

absl::StatusOr<std::vector<Digest>> FileBlobStore::FindMissing(const std::vector<Digest>& digests) {
  std::vector<Digest> missing;
  for (const Digest& d : digests) {
    FARM_ASSIGN_OR_RETURN(bool present, Contains(d));
    if (!present) {
      missing.push_back(d);
    } else if (d.size > 0) {
      Touch(d.hash);
    }
  }
  missing_.fetch_add(static_cast<int64_t>(missing.size()), std::memory_order_relaxed);
  found_.fetch_add(static_cast<int64_t>(digests.size() - missing.size()),
                   std::memory_order_relaxed);
  return missing;
}

absl::StatusOr<std::optional<BlobStore::Use>> FileBlobStore::UseOf(absl::string_view hash) {
  FARM_ASSIGN_OR_RETURN(std::optional<Meta> meta, GetMeta(hash));
  if (!meta.has_value()) return std::optional<Use>();
  Use use{meta->size, meta->created_ms, meta->accessed_ms};
  absl::MutexLock lock(&touch_mu_);
  if (auto it = touches_.find(hash); it != touches_.end()) {
    use.accessed_ms = std::max(use.accessed_ms, it->second);
  }
  return std::optional<Use>(use);
}

absl::StatusOr<std::vector<BlobStore::AgeCount>> FileBlobStore::CountByAge(
    const std::vector<int64_t>& bounds_ms, int64_t now_ms) {
  std::vector<AgeCount> out(bounds_ms.size() + 1);
  absl::Status bad;
  FARM_RETURN_IF_ERROR(
      store_->Scan(Cf::kCasBlobs, "", "", [&](absl::string_view hash, absl::string_view raw) {
        if (raw.size() != kMetaBytes) {
          bad = absl::InternalError(absl::StrCat("CAS metadata of ", hash, " is ", raw.size(),
                                                 " bytes, not ", kMetaBytes));
          return false;
        }
        const int64_t age = now_ms - static_cast<int64_t>(keys::ReadU64(raw, 16));
        const size_t i = static_cast<size_t>(
            std::upper_bound(bounds_ms.begin(), bounds_ms.end(), age) - bounds_ms.begin());
        ++out[i].blobs;
        out[i].bytes += static_cast<int64_t>(keys::ReadU64(raw, 0));
        return true;
      }));
  FARM_RETURN_IF_ERROR(bad);
  return out;
}

BlobStoreStats FileBlobStore::Stats() {
  BlobStoreStats s;
  s.blobs = blobs_.load();
  s.bytes = bytes_.load();
  s.evicted_blobs = evicted_.load();
  s.corrupt_blobs = corrupt_.load();
  s.written_bytes = written_bytes_.load(std::memory_order_relaxed);
  s.read_bytes = read_bytes_.load(std::memory_order_relaxed);
  s.found = found_.load(std::memory_order_relaxed);
  s.missing = missing_.load(std::memory_order_relaxed);
  absl::MutexLock lock(&uploads_mu_);
  s.uploads = static_cast<int64_t>(uploads_.size());
  return s;
}

}  // namespace farm::coordinator
