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

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "coordinator/store/keys.h"

namespace farm::coordinator {
namespace {

constexpr size_t kMetaBytes = 32;
constexpr size_t kIoChunk = 1 << 20;
constexpr int kShards = 256;
constexpr int64_t kWritebackBytes = 8 << 20;

absl::Status ErrnoStatus(int err, absl::string_view what) {
  std::string msg = absl::StrCat(what, ": ", std::strerror(err));
  switch (err) {
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(absl::StrCat(msg, " (the CAS disk is full)"));
    case ENOENT:
      return absl::NotFoundError(msg);
    default:
      return absl::InternalError(msg);
  }
}

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

int HexValue(char c) { return c <= '9' ? c - '0' : c - 'a' + 10; }

// The shard directory index of a (validated) hash: its first byte.
int ShardOf(absl::string_view hash) { return HexValue(hash[0]) * 16 + HexValue(hash[1]); }

// pwrite() all of data at offset.
absl::Status WriteAll(int fd, absl::string_view data, int64_t offset, const std::string& path) {
  const char* p = data.data();
  size_t left = data.size();
  while (left > 0) {
    const ssize_t n = ::pwrite(fd, p, left, offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, absl::StrCat("writing ", path));
    }
    p += n;
    left -= static_cast<size_t>(n);
    offset += n;
  }
  return absl::OkStatus();
}

// pread() exactly n bytes at offset into buf; false at a premature end of file.
absl::StatusOr<bool> ReadExactly(int fd, char* buf, size_t n, int64_t offset,
                                 const std::string& path) {
  while (n > 0) {
    const ssize_t r = ::pread(fd, buf, n, offset);
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, absl::StrCat("reading ", path));
    }
    if (r == 0) return false;
    buf += r;
    n -= static_cast<size_t>(r);
    offset += r;
  }
  return true;
}

// Blob files are read-only once complete; synced (unless the caller syncs the whole file
// system instead) before they are renamed into place.
absl::Status SealAndClose(int fd, const std::string& path, bool sync = true) {
  absl::Status s;
  if (::fchmod(fd, 0444) != 0) s = ErrnoStatus(errno, absl::StrCat("chmod ", path));
  if (s.ok() && sync && ::fsync(fd) != 0) s = ErrnoStatus(errno, absl::StrCat("syncing ", path));
  if (::close(fd) != 0 && s.ok()) s = ErrnoStatus(errno, absl::StrCat("closing ", path));
  return s;
}

std::string DescribeDigests(const std::vector<Digest>& digests) {
  constexpr size_t kShown = 5;
  std::vector<std::string> shown;
  for (size_t i = 0; i < digests.size() && i < kShown; ++i) shown.push_back(digests[i].ToString());
  std::string out = absl::StrJoin(shown, ", ");
  if (digests.size() > kShown) absl::StrAppend(&out, " and ", digests.size() - kShown, " more");
  return out;
}

}  // namespace

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
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Reader: streams a range and hashes the whole blob on the way, checking it before the range's
// last chunk is handed out.

class FileBlobStore::Reader final : public BlobReader {
 public:
  Reader(FileBlobStore* store, Digest digest, std::string path, int fd, uint64_t inode,
         int64_t offset, int64_t end)
      : store_(store),
        digest_(std::move(digest)),
        path_(std::move(path)),
        fd_(fd),
        inode_(inode),
        offset_(offset),
        end_(end) {}
  ~Reader() override {
    if (fd_ >= 0) ::close(fd_);
  }

  int64_t remaining() const override { return end_ - std::max(pos_, offset_); }

  absl::StatusOr<bool> Next(size_t max_bytes, std::string* out) override {
    if (!status_.ok() || done_) out->clear();
    if (!status_.ok()) return status_;
    if (done_) return false;
    if (pos_ < offset_) FARM_RETURN_IF_ERROR(HashThrough(offset_));
    const size_t want =
        static_cast<size_t>(std::min<int64_t>(std::max<size_t>(max_bytes, 1), end_ - pos_));
    // Resizing a reused buffer to its own size touches no memory; pread fills it.
    out->resize(want);
    absl::StatusOr<bool> full = Check(ReadExactly(fd_, out->data(), want, pos_, path_));
    if (!full.ok() || !*full) {
      out->clear();
      if (!full.ok()) return full.status();
      return Corrupt("the file is shorter than the blob");
    }
    hasher_.Update(*out);
    pos_ += static_cast<int64_t>(want);
    if (pos_ < end_) return true;
    // The range is complete: read what follows it, then compare before handing out the last
    // chunk, so that a client never receives all of a range that is not what it asked for.
    if (absl::Status s = HashThrough(digest_.size); !s.ok()) {
      out->clear();
      return s;
    }
    const Digest got = hasher_.Finish();
    if (got.hash != digest_.hash) {
      out->clear();
      return Corrupt(absl::StrCat("its bytes hash to ", got.hash));
    }
    done_ = true;
    return false;
  }

 private:
  // Hashes the file from pos_ up to `to` without returning it.
  absl::Status HashThrough(int64_t to) {
    std::string buf;
    while (pos_ < to) {
      const size_t n = static_cast<size_t>(std::min<int64_t>(kIoChunk, to - pos_));
      buf.resize(n);
      FARM_ASSIGN_OR_RETURN(bool full, Check(ReadExactly(fd_, buf.data(), n, pos_, path_)));
      if (!full) return Corrupt("the file is shorter than the blob");
      hasher_.Update(buf);
      pos_ += static_cast<int64_t>(n);
    }
    return absl::OkStatus();
  }

  template <typename T>
  absl::StatusOr<T> Check(absl::StatusOr<T> r) {
    if (!r.ok()) status_ = r.status();
    return r;
  }

  absl::Status Corrupt(const std::string& why) {
    store_->ReportCorrupt(digest_, inode_, why);
    status_ = absl::DataLossError(absl::StrCat("blob ", digest_.ToString(),
                                               " was corrupt on the server (", why,
                                               ") and has been removed; upload it again"));
    return status_;
  }

  FileBlobStore* const store_;
  const Digest digest_;
  const std::string path_;
  const int fd_;
  const uint64_t inode_;
  const int64_t offset_;
  const int64_t end_;
  int64_t pos_ = 0;  // bytes hashed so far (all reads are sequential from 0)
  bool done_ = false;
  absl::Status status_;
  common::Sha256Hasher hasher_;
};

// The empty blob needs no file.
class EmptyReader final : public BlobReader {
 public:
  absl::StatusOr<bool> Next(size_t, std::string* out) override {
    out->clear();
    return false;
  }
  int64_t remaining() const override { return 0; }
};

// ---------------------------------------------------------------------------------------------
// Uploads

struct FileBlobStore::Upload {
  Upload(std::string key, Digest digest, std::string temp_path)
      : key(std::move(key)), digest(std::move(digest)), temp_path(std::move(temp_path)) {}

  const std::string key;
  const Digest digest;
  const std::string temp_path;

  absl::Mutex mu;
  int fd ABSL_GUARDED_BY(mu) = -1;
  common::Sha256Hasher hasher ABSL_GUARDED_BY(mu);
  int64_t committed ABSL_GUARDED_BY(mu) = 0;
  int64_t writeback_from ABSL_GUARDED_BY(mu) = 0;  // bytes below this were sent to the disk
  int64_t last_active_ms ABSL_GUARDED_BY(mu) = 0;
  // Bumped by each OpenWrite: only the newest writer may write.
  uint64_t generation ABSL_GUARDED_BY(mu) = 0;
  // Discarded, swept or committed: no longer writable.
  bool dead ABSL_GUARDED_BY(mu) = false;
};

class FileBlobStore::Writer final : public BlobWriter {
 public:
  // A writer for a blob that is already present.
  Writer(FileBlobStore* store, const Digest& digest)
      : store_(store), digest_(digest), complete_(true), committed_(digest.size) {}
  Writer(FileBlobStore* store, std::shared_ptr<Upload> upload, uint64_t generation,
         int64_t committed)
      : store_(store),
        digest_(upload->digest),
        upload_(std::move(upload)),
        generation_(generation),
        committed_(committed) {}

  ~Writer() override {
    if (upload_ == nullptr || complete_) return;
    // Keep the partial data for a resumed Write, but do not hold a descriptor while idle.
    absl::MutexLock lock(&upload_->mu);
    if (upload_->dead || upload_->generation != generation_) return;
    if (upload_->fd >= 0) ::close(upload_->fd);
    upload_->fd = -1;
    upload_->last_active_ms = store_->clock_->NowMs();
  }

  bool complete() const override { return complete_; }
  int64_t committed() const override { return committed_; }

  absl::Status Append(absl::string_view data) override {
    if (complete_) {
      return absl::FailedPreconditionError(
          absl::StrCat("blob ", digest_.ToString(), " is already complete"));
    }
    absl::Status s;
    {
      absl::MutexLock lock(&upload_->mu);
      if (absl::Status live = LiveLocked(); !live.ok()) return live;
      const int64_t n = static_cast<int64_t>(data.size());
      if (upload_->committed + n > digest_.size) {
        s = absl::InvalidArgumentError(
            absl::StrCat("upload of ", digest_.ToString(), " received ", upload_->committed + n,
                         " bytes, more than the digest's size; nothing was stored"));
      } else {
        s = WriteAll(upload_->fd, data, upload_->committed, upload_->temp_path);
        if (s.ok()) {
          upload_->hasher.Update(data);
          upload_->committed += n;
          // Start writing back what has arrived, so that the fsync in Commit does not find the
          // whole blob still in memory (it overlaps the disk with the network).
          if (upload_->committed - upload_->writeback_from >= kWritebackBytes) {
            ::sync_file_range(upload_->fd, upload_->writeback_from,
                              upload_->committed - upload_->writeback_from, SYNC_FILE_RANGE_WRITE);
            upload_->writeback_from = upload_->committed;
          }
          upload_->last_active_ms = store_->clock_->NowMs();
          committed_ = upload_->committed;
          return s;
        }
      }
    }
    store_->DiscardUpload(upload_);
    return s;
  }

  absl::Status Commit() override {
    if (complete_) return absl::OkStatus();
    absl::Status s;
    {
      absl::MutexLock lock(&upload_->mu);
      if (absl::Status live = LiveLocked(); !live.ok()) return live;
      if (upload_->committed != digest_.size) {
        s = absl::InvalidArgumentError(absl::StrCat("upload of ", digest_.ToString(),
                                                    " finished after ", upload_->committed,
                                                    " bytes; nothing was stored"));
      } else {
        const Digest got = upload_->hasher.Finish();
        if (got.hash != digest_.hash) {
          s = absl::InvalidArgumentError(absl::StrCat("uploaded data hashes to ", got.hash,
                                                      ", not ", digest_.hash,
                                                      "; nothing was stored"));
        } else {
          s = SealAndClose(upload_->fd, upload_->temp_path);
          upload_->fd = -1;
          // From here the temp file belongs to InstallAll.
          if (s.ok()) upload_->dead = true;
        }
      }
    }
    if (!s.ok()) {
      store_->DiscardUpload(upload_);
      return s;
    }
    {
      absl::MutexLock lock(&store_->uploads_mu_);
      auto it = store_->uploads_.find(upload_->key);
      if (it != store_->uploads_.end() && it->second == upload_) store_->uploads_.erase(it);
    }
    std::vector<Staged> install{Staged{digest_, upload_->temp_path, absl::OkStatus()}};
    store_->InstallAll(install);
    FARM_RETURN_IF_ERROR(install[0].status);
    complete_ = true;
    committed_ = digest_.size;
    return absl::OkStatus();
  }

 private:
  absl::Status LiveLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(upload_->mu) {
    if (upload_->dead || upload_->generation != generation_) {
      return absl::AbortedError(
          absl::StrCat("the upload of ", digest_.ToString(),
                       " was taken over by a newer Write or expired; query its status and resume"));
    }
    return absl::OkStatus();
  }

  FileBlobStore* const store_;
  const Digest digest_;
  const std::shared_ptr<Upload> upload_;
  const uint64_t generation_ = 0;
  bool complete_ = false;
  int64_t committed_ = 0;
};

// ---------------------------------------------------------------------------------------------
// FileBlobStore

FileBlobStore::FileBlobStore(FileBlobStoreOptions options, Store* store, common::Clock* clock)
    : options_(std::move(options)), store_(store), clock_(clock) {
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
}

absl::Status FileBlobStore::Init() {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(tmp_dir_, ec);
  for (int i = 0; i < kShards && !ec; ++i) {
    const std::string shard = ShardDir(i);
    fs::create_directories(shard, ec);
    if (ec) break;
    const int fd = ::open(shard.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
      return ErrnoStatus(errno, absl::StrCat("opening ", shard));
    }
    shard_fds_.push_back(fd);
  }
  if (ec) {
    return absl::FailedPreconditionError(absl::StrCat("cannot create the CAS directories under ",
                                                      options_.root, ": ", ec.message()));
  }

  // Uploads do not survive a restart: their hashing state lived in memory.
  int removed_temp = 0;
  for (auto it = fs::directory_iterator(tmp_dir_, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    std::error_code rm;
    fs::remove_all(it->path(), rm);
    ++removed_temp;
  }
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot list ", tmp_dir_, ": ", ec.message()));
  }

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

  // Files without an entry: written, but the client never heard OK (or the entry was dropped).
  int64_t orphans = 0;
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
  FARM_LOG(INFO) << "CAS in " << options_.root << ": " << blobs_.load() << " blobs, "
                 << bytes_.load() << " bytes (limit " << options_.max_bytes << ")"
                 << (removed_temp + dropped + orphans > 0
                         ? absl::StrCat("; removed ", removed_temp, " unfinished uploads, ",
                                        dropped, " entries without a file, ", orphans,
                                        " files without an entry")
                         : "");
  return absl::OkStatus();
}

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
  return missing;
}

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
    std::string temp = TempPath("put");
    const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
      s = ErrnoStatus(errno, absl::StrCat("creating ", temp));
      continue;
    }
    s = WriteAll(fd, blobs[i].data, 0, temp);
    if (!s.ok()) {
      ::close(fd);
      ::unlink(temp.c_str());
      continue;
    }
    // Start the writeback of every blob first: the fsyncs below then mostly find their data on
    // its way, and the file system commits the batch's metadata together.
    ::sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    staged.push_back(Staged{d, std::move(temp), absl::OkStatus()});
    staged_index.push_back(i);
    fds.push_back(fd);
  }
  // One file is synced by itself; several with one syncfs(2), which costs about as much as a
  // single fsync while one fsync per file would dominate a batch of small blobs (measured: 5x
  // faster for 3000 small blobs). The price: it also waits for other dirty data on the CAS's
  // file system, which is why the CAS wants a volume of its own.
  const bool sync_each = staged.size() <= 1;
  for (size_t k = 0; k < staged.size(); ++k) {
    staged[k].status = SealAndClose(fds[k], staged[k].temp_path, sync_each);
    if (!staged[k].status.ok()) ::unlink(staged[k].temp_path.c_str());
  }
  if (!sync_each && ::syncfs(shard_fds_[0]) != 0) {
    const absl::Status s =
        ErrnoStatus(errno, absl::StrCat("syncing the file system of ", options_.root));
    for (Staged& item : staged) {
      if (item.status.ok()) ::unlink(item.temp_path.c_str());
      if (item.status.ok()) item.status = s;
    }
  }
  InstallAll(staged);
  for (size_t k = 0; k < staged.size(); ++k) results[staged_index[k]] = staged[k].status;
  for (const auto& [repeat, original] : repeats) results[repeat] = results[original];
  return results;
}

void FileBlobStore::InstallAll(std::vector<Staged>& items) {
  // Take the stripes of every item in one global order (by address), so that concurrent
  // batches cannot deadlock; everything else holds at most one stripe at a time.
  std::vector<absl::Mutex*> locks;
  for (const Staged& item : items) {
    if (item.status.ok()) locks.push_back(&StripeFor(item.digest.hash));
  }
  std::sort(locks.begin(), locks.end());
  locks.erase(std::unique(locks.begin(), locks.end()), locks.end());
  for (absl::Mutex* m : locks) m->Lock();

  std::vector<Staged*> moved;  // renamed into place, waiting for their directory and metadata
  absl::flat_hash_set<std::string> moved_hashes;
  std::vector<bool> dirty_shards(kShards, false);
  for (Staged& item : items) {
    if (!item.status.ok()) continue;
    const Digest& d = item.digest;
    absl::StatusOr<std::optional<Meta>> meta = GetMeta(d.hash);
    if (!meta.ok()) {
      item.status = meta.status();
      ::unlink(item.temp_path.c_str());
      continue;
    }
    if ((meta->has_value() && (*meta)->size == d.size) || moved_hashes.contains(d.hash)) {
      // A concurrent upload of the same blob won: keep its copy.
      ::unlink(item.temp_path.c_str());
      Touch(d.hash);
      continue;
    }
    if (meta->has_value()) {
      FARM_LOG(WARNING) << "CAS entry " << d.hash << " said " << (*meta)->size
                        << " bytes; replacing it with a verified upload of " << d.size;
      item.status = RemoveLocked(d.hash, **meta);
      if (!item.status.ok()) {
        ::unlink(item.temp_path.c_str());
        continue;
      }
    }
    const std::string path = BlobPath(d);
    if (::rename(item.temp_path.c_str(), path.c_str()) != 0) {
      item.status = ErrnoStatus(errno, absl::StrCat("renaming ", item.temp_path, " to ", path));
      ::unlink(item.temp_path.c_str());
      continue;
    }
    moved.push_back(&item);
    moved_hashes.insert(d.hash);
    dirty_shards[ShardOf(d.hash)] = true;
  }
  // Files without an entry are invisible (and start-up deletes them), so a failure from here
  // on only needs to remove the files.
  for (int shard = 0; shard < kShards; ++shard) {
    if (!dirty_shards[shard] || ::fsync(shard_fds_[shard]) == 0) continue;
    const absl::Status s = ErrnoStatus(errno, absl::StrCat("syncing ", ShardDir(shard)));
    for (Staged* item : moved) {
      if (item->status.ok() && ShardOf(item->digest.hash) == shard) item->status = s;
    }
  }
  const int64_t now = clock_->NowMs();
  WriteBatch batch;
  for (Staged* item : moved) {
    if (!item->status.ok()) continue;
    batch.Put(Cf::kCasBlobs, item->digest.hash, EncodeMeta(item->digest.size, now, now, 0));
    batch.Put(Cf::kCasLru, LruKey(now, item->digest.hash), "");
  }
  const absl::Status written = batch.empty() ? absl::OkStatus() : store_->Write(batch, true);
  for (Staged* item : moved) {
    if (item->status.ok()) item->status = written;
    if (item->status.ok()) {
      bytes_ += item->digest.size;
      ++blobs_;
    } else {
      ::unlink(BlobPath(item->digest).c_str());
    }
  }
  const bool above_limit = bytes_.load() > options_.max_bytes;
  for (auto it = locks.rbegin(); it != locks.rend(); ++it) (*it)->Unlock();
  if (above_limit) WakeMaintenance();
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

void FileBlobStore::ReportCorrupt(const Digest& digest, uint64_t inode, const std::string& why) {
  absl::MutexLock lock(&StripeFor(digest.hash));
  absl::StatusOr<std::optional<Meta>> meta = GetMeta(digest.hash);
  if (!meta.ok() || !meta->has_value() || (*meta)->size != digest.size) return;
  struct stat st;
  if (::stat(BlobPath(digest).c_str(), &st) == 0 && st.st_ino != inode) {
    return;  // a fresh, verified copy replaced the bad file meanwhile
  }
  if (absl::Status s = RemoveLocked(digest.hash, **meta); !s.ok()) {
    FARM_LOG(ERROR) << "CAS blob " << digest << " is corrupt (" << why
                    << ") but could not be removed: " << s;
    return;
  }
  ++corrupt_;
  FARM_LOG(ERROR) << "CAS blob " << digest << " is corrupt (" << why
                  << "); removed it, clients will see it as missing";
}

absl::StatusOr<std::unique_ptr<BlobReader>> FileBlobStore::OpenRead(const Digest& digest,
                                                                    int64_t offset, int64_t limit) {
  if (limit < 0) {
    return absl::InvalidArgumentError(absl::StrCat("read limit ", limit, " is negative"));
  }
  if (offset < 0) {
    return absl::OutOfRangeError(absl::StrCat("read offset ", offset, " is negative"));
  }
  if (digest == common::EmptyDigest()) {
    if (offset > 0) {
      return absl::OutOfRangeError(
          absl::StrCat("read offset ", offset, " is beyond the end of the empty blob"));
    }
    return std::make_unique<EmptyReader>();
  }
  FARM_ASSIGN_OR_RETURN(std::optional<Meta> meta, GetMeta(digest.hash));
  if (!meta.has_value() || meta->size != digest.size) {
    return absl::NotFoundError(absl::StrCat("blob ", digest.ToString(), " is not in the CAS"));
  }
  if (offset > digest.size) {
    return absl::OutOfRangeError(
        absl::StrCat("read offset ", offset, " is beyond the end of ", digest.ToString()));
  }
  const std::string path = BlobPath(digest);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) {
      ReportCorrupt(digest, 0, "its file is missing");
      return absl::NotFoundError(
          absl::StrCat("blob ", digest.ToString(), " was lost on the server; upload it again"));
    }
    return ErrnoStatus(err, absl::StrCat("opening ", path));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return ErrnoStatus(err, absl::StrCat("stat ", path));
  }
  if (st.st_size != digest.size) {
    ::close(fd);
    const std::string why = absl::StrCat("its file has ", st.st_size, " bytes");
    ReportCorrupt(digest, st.st_ino, why);
    return absl::DataLossError(absl::StrCat("blob ", digest.ToString(),
                                            " was corrupt on the server (", why,
                                            ") and has been removed; upload it again"));
  }
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  Touch(digest.hash);
  const int64_t end = limit == 0 ? digest.size : std::min(digest.size, offset + limit);
  return std::make_unique<Reader>(this, digest, path, fd, st.st_ino, offset, end);
}

absl::StatusOr<std::string> FileBlobStore::Read(const Digest& digest) {
  FARM_ASSIGN_OR_RETURN(std::unique_ptr<BlobReader> reader, OpenRead(digest, 0, 0));
  std::string out;
  out.reserve(static_cast<size_t>(digest.size));
  std::string chunk;
  while (true) {
    FARM_ASSIGN_OR_RETURN(bool more, reader->Next(kIoChunk, &chunk));
    out += chunk;
    if (!more) break;
  }
  return out;
}

absl::StatusOr<std::unique_ptr<BlobWriter>> FileBlobStore::OpenWrite(absl::string_view upload_id,
                                                                     const Digest& digest,
                                                                     int64_t offset) {
  if (offset < 0 || offset > digest.size) {
    return absl::InvalidArgumentError(
        absl::StrCat("write offset ", offset, " is outside ", digest.ToString()));
  }
  if (digest.size > options_.max_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat("blob ", digest.ToString(),
                                                     " is larger than the whole CAS (",
                                                     options_.max_bytes, " bytes)"));
  }
  FARM_ASSIGN_OR_RETURN(bool present, Contains(digest));
  if (present) {
    if (digest.size > 0) Touch(digest.hash);
    return std::make_unique<Writer>(this, digest);
  }
  const std::string key = absl::StrCat(upload_id, "\n", digest.ToString());
  absl::MutexLock lock(&uploads_mu_);
  auto it = uploads_.find(key);
  std::shared_ptr<Upload> upload;
  if (it != uploads_.end()) {
    upload = it->second;
    bool dead;
    {
      absl::MutexLock upload_lock(&upload->mu);
      dead = upload->dead;
    }
    if (dead) {  // being discarded right now: start afresh
      uploads_.erase(it);
      upload = nullptr;
    }
  }
  if (upload == nullptr) {
    if (offset != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("write offset ", offset, " for an upload of ", digest.ToString(),
                       " that the server does not hold; start again at offset 0"));
    }
    if (static_cast<int>(uploads_.size()) >= options_.max_uploads) {
      return absl::ResourceExhaustedError(absl::StrCat("too many unfinished uploads (limit ",
                                                       options_.max_uploads, "); retry later"));
    }
    upload = std::make_shared<Upload>(key, digest, TempPath("upload"));
    const int fd = ::open(upload->temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return ErrnoStatus(errno, absl::StrCat("creating ", upload->temp_path));
    absl::MutexLock upload_lock(&upload->mu);
    upload->fd = fd;
    uploads_[key] = upload;
  }
  absl::MutexLock upload_lock(&upload->mu);
  if (offset != upload->committed) {
    if (offset != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("write offset ", offset, " does not match the ", upload->committed,
                       " bytes the server holds of this upload; resume at ", upload->committed));
    }
    upload->hasher.Reset();
    upload->committed = 0;
    upload->writeback_from = 0;
  }
  if (upload->fd < 0) {
    upload->fd = ::open(upload->temp_path.c_str(), O_WRONLY | O_CLOEXEC);
    if (upload->fd < 0) return ErrnoStatus(errno, absl::StrCat("reopening ", upload->temp_path));
  }
  if (offset == 0 && ::ftruncate(upload->fd, 0) != 0) {
    return ErrnoStatus(errno, absl::StrCat("truncating ", upload->temp_path));
  }
  ++upload->generation;
  upload->last_active_ms = clock_->NowMs();
  return std::make_unique<Writer>(this, upload, upload->generation, upload->committed);
}

void FileBlobStore::DiscardUpload(const std::shared_ptr<Upload>& upload) {
  {
    absl::MutexLock lock(&upload->mu);
    if (upload->fd >= 0) ::close(upload->fd);
    upload->fd = -1;
    if (!upload->dead) ::unlink(upload->temp_path.c_str());
    upload->dead = true;
  }
  absl::MutexLock lock(&uploads_mu_);
  auto it = uploads_.find(upload->key);
  if (it != uploads_.end() && it->second == upload) uploads_.erase(it);
}

UploadStatus FileBlobStore::QueryWrite(absl::string_view upload_id, const Digest& digest) {
  absl::StatusOr<bool> present = Contains(digest);
  if (present.ok() && *present) return UploadStatus{digest.size, true};
  const std::string key = absl::StrCat(upload_id, "\n", digest.ToString());
  absl::MutexLock lock(&uploads_mu_);
  auto it = uploads_.find(key);
  if (it == uploads_.end()) return UploadStatus{};
  absl::MutexLock upload_lock(&it->second->mu);
  if (it->second->dead) return UploadStatus{};
  return UploadStatus{it->second->committed, false};
}

absl::Status FileBlobStore::PinArtifacts(const std::vector<Digest>& digests, int64_t until_ms) {
  std::vector<Digest> missing;
  for (const Digest& d : digests) {
    if (d == common::EmptyDigest()) continue;
    absl::MutexLock lock(&StripeFor(d.hash));
    FARM_ASSIGN_OR_RETURN(std::optional<Meta> meta, GetMeta(d.hash));
    if (!meta.has_value() || meta->size != d.size) {
      missing.push_back(d);
      continue;
    }
    if (meta->pinned_until_ms >= until_ms) continue;
    WriteBatch batch;
    batch.Put(Cf::kCasBlobs, d.hash,
              EncodeMeta(meta->size, meta->created_ms, meta->accessed_ms, until_ms));
    FARM_RETURN_IF_ERROR(store_->Write(batch, /*sync=*/true));
  }
  if (!missing.empty()) {
    return absl::NotFoundError(absl::StrCat(
        missing.size(), " artifact blob(s) are not in the CAS: ", DescribeDigests(missing)));
  }
  return absl::OkStatus();
}

BlobStoreStats FileBlobStore::Stats() {
  BlobStoreStats s;
  s.blobs = blobs_.load();
  s.bytes = bytes_.load();
  s.evicted_blobs = evicted_.load();
  s.corrupt_blobs = corrupt_.load();
  absl::MutexLock lock(&uploads_mu_);
  s.uploads = static_cast<int64_t>(uploads_.size());
  return s;
}

// ---------------------------------------------------------------------------------------------
// Maintenance

absl::Status FileBlobStore::RunMaintenance() {
  absl::MutexLock lock(&maintenance_mu_);
  absl::Status flushed = FlushTouches();
  SweepUploads();
  // Evict even when the flush failed: eviction still honours the unflushed uses (see Evict).
  absl::Status evicted = Evict();
  return flushed.ok() ? evicted : flushed;
}

absl::Status FileBlobStore::FlushTouches() {
  absl::flat_hash_map<std::string, int64_t> pending;
  {
    absl::MutexLock lock(&touch_mu_);
    pending.swap(touches_);
  }
  for (const auto& [hash, when] : pending) {
    absl::MutexLock lock(&StripeFor(hash));
    FARM_ASSIGN_OR_RETURN(std::optional<Meta> meta, GetMeta(hash));
    if (!meta.has_value() || when <= meta->accessed_ms) continue;
    WriteBatch batch;
    batch.Delete(Cf::kCasLru, LruKey(meta->accessed_ms, hash));
    batch.Put(Cf::kCasBlobs, hash,
              EncodeMeta(meta->size, meta->created_ms, when, meta->pinned_until_ms));
    batch.Put(Cf::kCasLru, LruKey(when, hash), "");
    FARM_RETURN_IF_ERROR(store_->Write(batch, /*sync=*/false));
  }
  return absl::OkStatus();
}

void FileBlobStore::SweepUploads() {
  const int64_t cutoff = clock_->NowMs() - options_.upload_idle_ttl_ms;
  std::vector<std::shared_ptr<Upload>> expired;
  {
    absl::MutexLock lock(&uploads_mu_);
    for (const auto& [key, upload] : uploads_) {
      absl::MutexLock upload_lock(&upload->mu);
      if (upload->last_active_ms < cutoff) expired.push_back(upload);
    }
  }
  for (const auto& upload : expired) DiscardUpload(upload);
  if (!expired.empty()) {
    FARM_LOG(INFO) << "CAS: swept " << expired.size() << " upload(s) idle for more than "
                   << options_.upload_idle_ttl_ms / 1000 << "s";
  }
}

absl::Status FileBlobStore::Evict() {
  if (bytes_.load() <= options_.max_bytes) return absl::OkStatus();
  const int64_t target = options_.max_bytes / 100 * options_.low_watermark_percent;
  const int64_t now = clock_->NowMs();
  const int64_t cutoff = now - options_.min_age_ms;
  const int64_t before = bytes_.load();
  int64_t evicted = 0;
  std::string start;
  bool exhausted = false;
  while (bytes_.load() > target && !exhausted) {
    struct Candidate {
      std::string key;
      int64_t accessed_ms;
      std::string hash;
    };
    std::vector<Candidate> batch;
    constexpr size_t kBatch = 256;
    FARM_RETURN_IF_ERROR(
        store_->Scan(Cf::kCasLru, start, "", [&](absl::string_view key, absl::string_view) {
          if (key.size() != 8 + common::kSha256HexLength) return true;  // not ours; skip
          const int64_t accessed = static_cast<int64_t>(keys::ReadU64(key, 0));
          if (accessed > cutoff) {  // this and everything after it is too young
            exhausted = true;
            return false;
          }
          batch.push_back(Candidate{std::string(key), accessed, std::string(key.substr(8))});
          return batch.size() < kBatch;
        }));
    if (batch.empty()) break;
    if (batch.size() < kBatch) exhausted = true;
    start = batch.back().key + std::string(1, '\0');
    for (const Candidate& c : batch) {
      if (bytes_.load() <= target) break;
      absl::MutexLock lock(&StripeFor(c.hash));
      FARM_ASSIGN_OR_RETURN(std::optional<Meta> meta, GetMeta(c.hash));
      if (!meta.has_value() || meta->accessed_ms != c.accessed_ms) {
        // A stale index entry (its blob is gone or was used later).
        WriteBatch stale;
        stale.Delete(Cf::kCasLru, c.key);
        FARM_RETURN_IF_ERROR(store_->Write(stale, /*sync=*/false));
        continue;
      }
      if (meta->pinned_until_ms > now) continue;
      {
        absl::MutexLock touch_lock(&touch_mu_);
        auto it = touches_.find(c.hash);
        if (it != touches_.end() && it->second > cutoff) continue;  // used, not yet flushed
      }
      FARM_RETURN_IF_ERROR(RemoveLocked(c.hash, *meta));
      ++evicted_;
      ++evicted;
    }
  }
  FARM_LOG(INFO) << "CAS eviction: removed " << evicted << " blob(s), " << before << " -> "
                 << bytes_.load() << " bytes (limit " << options_.max_bytes << ")";
  if (bytes_.load() > options_.max_bytes) {
    FARM_LOG(WARNING) << "CAS is still above --cas_max_bytes: the remaining blobs are pinned or "
                         "were used within --cas_min_age";
  }
  return absl::OkStatus();
}

void FileBlobStore::WakeMaintenance() {
  absl::MutexLock lock(&wake_mu_);
  wake_ = true;
}

void FileBlobStore::StartMaintenance() {
  if (maintenance_.joinable()) return;
  {
    absl::MutexLock lock(&wake_mu_);
    stop_ = false;
  }
  maintenance_ = std::thread([this] { MaintenanceLoop(); });
}

void FileBlobStore::StopMaintenance() {
  if (!maintenance_.joinable()) return;
  {
    absl::MutexLock lock(&wake_mu_);
    stop_ = true;
  }
  maintenance_.join();
}

void FileBlobStore::MaintenanceLoop() {
  while (true) {
    {
      absl::MutexLock lock(&wake_mu_);
      auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(wake_mu_) { return wake_ || stop_; };
      wake_mu_.AwaitWithTimeout(absl::Condition(&woken),
                                absl::Milliseconds(options_.maintenance_interval_ms));
      if (stop_) return;
      wake_ = false;
    }
    if (absl::Status s = RunMaintenance(); !s.ok()) {
      FARM_LOG(WARNING) << "CAS maintenance: " << s;
    }
  }
}

}  // namespace farm::coordinator
