// FileBlobStore's streamed uploads (ByteStream Write): the upload table (uploads_, keyed by
// upload id and digest), the writers that append to an upload's temp file while hashing it,
// and the commit that hands the finished file to InstallAll (file_blob_store_put.cc). Partial
// uploads are kept for resumption until SweepUploads (file_blob_store_maintenance.cc) finds
// them idle. Locks: uploads_mu_, then an upload's own mu; never a stripe while holding either.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/posix_io.h"
#include "common/status_macros.h"
#include "coordinator/cas/file_blob_store.h"
#include "coordinator/cas/file_blob_store_internal.h"

namespace farm::coordinator {

using cas_internal::kWritebackBytes;
using cas_internal::SealAndClose;

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
      s = AppendLocked(data);
      if (s.ok()) return s;
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
      s = SealLocked();
    }
    if (!s.ok()) {
      store_->DiscardUpload(upload_);
      return s;
    }
    store_->ForgetUpload(upload_);
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

  absl::Status AppendLocked(absl::string_view data) ABSL_EXCLUSIVE_LOCKS_REQUIRED(upload_->mu) {
    const int64_t n = static_cast<int64_t>(data.size());
    if (upload_->committed + n > digest_.size) {
      return absl::InvalidArgumentError(
          absl::StrCat("upload of ", digest_.ToString(), " received ", upload_->committed + n,
                       " bytes, more than the digest's size; nothing was stored"));
    }
    FARM_RETURN_IF_ERROR(common::WriteAllAt(upload_->fd, data, upload_->committed,
                                            absl::StrCat("writing ", upload_->temp_path)));
    upload_->hasher.Update(data);
    upload_->committed += n;
    // Start writing back what has arrived, so that the fsync in Commit does not find the whole
    // blob still in memory (it overlaps the disk with the network).
    if (upload_->committed - upload_->writeback_from >= kWritebackBytes) {
      ::sync_file_range(upload_->fd, upload_->writeback_from,
                        upload_->committed - upload_->writeback_from, SYNC_FILE_RANGE_WRITE);
      upload_->writeback_from = upload_->committed;
    }
    upload_->last_active_ms = store_->clock_->NowMs();
    committed_ = upload_->committed;
    return absl::OkStatus();
  }

  // Checks the upload is whole and right, then seals its file; from then on the temp file
  // belongs to InstallAll.
  absl::Status SealLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(upload_->mu) {
    if (upload_->committed != digest_.size) {
      return absl::InvalidArgumentError(absl::StrCat("upload of ", digest_.ToString(),
                                                     " finished after ", upload_->committed,
                                                     " bytes; nothing was stored"));
    }
    const Digest got = upload_->hasher.Finish();
    if (got.hash != digest_.hash) {
      return absl::InvalidArgumentError(absl::StrCat("uploaded data hashes to ", got.hash, ", not ",
                                                     digest_.hash, "; nothing was stored"));
    }
    absl::Status s = SealAndClose(upload_->fd, upload_->temp_path);
    upload_->fd = -1;
    if (s.ok()) upload_->dead = true;
    return s;
  }

  FileBlobStore* const store_;
  const Digest digest_;
  const std::shared_ptr<Upload> upload_;
  const uint64_t generation_ = 0;
  bool complete_ = false;
  int64_t committed_ = 0;
};

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
  FARM_ASSIGN_OR_RETURN(std::shared_ptr<Upload> upload, FindOrCreateUpload(key, digest, offset));
  absl::MutexLock upload_lock(&upload->mu);
  if (upload->dead) {  // swept or discarded since it was found
    return absl::AbortedError(absl::StrCat("the upload of ", digest.ToString(),
                                           " expired while it was resumed; start again"));
  }
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
    if (upload->fd < 0) {
      return common::ErrnoStatus(errno, absl::StrCat("reopening ", upload->temp_path));
    }
  }
  if (offset == 0 && ::ftruncate(upload->fd, 0) != 0) {
    return common::ErrnoStatus(errno, absl::StrCat("truncating ", upload->temp_path));
  }
  ++upload->generation;
  upload->last_active_ms = clock_->NowMs();
  return std::make_unique<Writer>(this, upload, upload->generation, upload->committed);
}

absl::StatusOr<std::shared_ptr<FileBlobStore::Upload>> FileBlobStore::FindOrCreateUpload(
    const std::string& key, const Digest& digest, int64_t offset) {
  absl::MutexLock lock(&uploads_mu_);
  if (auto it = uploads_.find(key); it != uploads_.end()) {
    std::shared_ptr<Upload> upload = it->second;
    absl::MutexLock upload_lock(&upload->mu);
    if (!upload->dead) return upload;
    uploads_.erase(it);  // being discarded right now: start afresh
  }
  if (offset != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("write offset ", offset, " for an upload of ", digest.ToString(),
                     " that the server does not hold; start again at offset 0"));
  }
  if (static_cast<int>(uploads_.size()) >= options_.max_uploads) {
    return absl::ResourceExhaustedError(absl::StrCat("too many unfinished uploads (limit ",
                                                     options_.max_uploads, "); retry later"));
  }
  auto upload = std::make_shared<Upload>(key, digest, TempPath("upload"));
  const int fd = ::open(upload->temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return common::ErrnoStatus(errno, absl::StrCat("creating ", upload->temp_path));
  {
    absl::MutexLock upload_lock(&upload->mu);
    upload->fd = fd;
  }
  uploads_[key] = upload;
  return upload;
}

void FileBlobStore::DiscardUpload(const std::shared_ptr<Upload>& upload) {
  {
    absl::MutexLock lock(&upload->mu);
    if (upload->fd >= 0) ::close(upload->fd);
    upload->fd = -1;
    if (!upload->dead) ::unlink(upload->temp_path.c_str());
    upload->dead = true;
  }
  ForgetUpload(upload);
}

void FileBlobStore::ForgetUpload(const std::shared_ptr<Upload>& upload) {
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

}  // namespace farm::coordinator
