// FileBlobStore's reads: a reader streams a range of a blob file and hashes the whole blob on
// the way, so that a client never receives all of a range whose blob is not what it asked for;
// a blob found corrupt (or missing its file) is removed at once. Reads take no lock but the
// blob's stripe, and that only to remove a corrupt blob.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/posix_io.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"
#include "coordinator/cas/file_blob_store.h"
#include "coordinator/cas/file_blob_store_internal.h"

namespace farm::coordinator {

using cas_internal::CorruptMessage;
using cas_internal::kIoChunk;

class FileBlobStore::Reader final : public BlobReader {
 public:
  Reader(FileBlobStore* store, Digest digest, const std::string& path, int fd, uint64_t inode,
         int64_t offset, int64_t end)
      : store_(store),
        digest_(std::move(digest)),
        what_(absl::StrCat("reading ", path)),
        fd_(fd),
        inode_(inode),
        offset_(offset),
        end_(end) {}

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
    absl::StatusOr<bool> full =
        Check(common::ReadExactlyAt(fd_.get(), out->data(), want, pos_, what_));
    if (!full.ok() || !*full) {
      out->clear();
      if (!full.ok()) return full.status();
      return Corrupt("the file is shorter than the blob");
    }
    hasher_.Update(*out);
    pos_ += static_cast<int64_t>(want);
    store_->read_bytes_.fetch_add(static_cast<int64_t>(want), std::memory_order_relaxed);
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
      FARM_ASSIGN_OR_RETURN(bool full,
                            Check(common::ReadExactlyAt(fd_.get(), buf.data(), n, pos_, what_)));
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
    status_ = absl::DataLossError(CorruptMessage(digest_, why));
    return status_;
  }

  FileBlobStore* const store_;
  const Digest digest_;
  const std::string what_;  // "reading PATH", for errors
  const common::UniqueFd fd_;
  const uint64_t inode_;
  const int64_t offset_;
  const int64_t end_;
  int64_t pos_ = 0;  // bytes hashed so far (all reads are sequential from 0)
  bool done_ = false;
  absl::Status status_;
  common::Sha256Hasher hasher_;
};

namespace {

// The empty blob needs no file.
class EmptyReader final : public BlobReader {
 public:
  absl::StatusOr<bool> Next(size_t, std::string* out) override {
    out->clear();
    return false;
  }
  int64_t remaining() const override { return 0; }
};

}  // namespace

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
    return common::ErrnoStatus(err, absl::StrCat("opening ", path));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return common::ErrnoStatus(err, absl::StrCat("stat ", path));
  }
  if (st.st_size != digest.size) {
    ::close(fd);
    const std::string why = absl::StrCat("its file has ", st.st_size, " bytes");
    ReportCorrupt(digest, st.st_ino, why);
    return absl::DataLossError(CorruptMessage(digest, why));
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

}  // namespace farm::coordinator
