// The content-addressed blob store behind the REAPI services: blobs named by their SHA-256
// digest, written through uploads that the store hashes itself, read through readers that
// verify what they serve. This interface is the seam between the gRPC adapters
// (coordinator/service/cas_service.h) and the storage (file_blob_store.h); it has no gRPC or
// RocksDB types.
//
// Guarantees every implementation gives:
//   - The store never trusts a client's digest. Data that does not hash to the digest it was
//     offered under is INVALID_ARGUMENT and never becomes visible.
//   - A blob is visible (Contains, FindMissing, reads) only once it is completely and durably
//     stored. Concurrent uploads of the same blob end with one copy.
//   - The empty blob is always present, without being uploaded.
//   - A reader never completes a read of bytes that do not hash to the digest: a blob found
//     corrupt is removed and the read fails with DATA_LOSS before its last chunk.
//
// Thread-safety: every method may be called from any thread concurrently. A BlobReader or a
// BlobWriter is used by one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/digest.h"

namespace farm::coordinator {

using common::Digest;

// A blob offered with its bytes; `data` must outlive the call it is passed to.
struct BlobData {
  Digest digest;
  absl::string_view data;
};

// A sequential read of [offset, offset + limit) of one blob.
class BlobReader {
 public:
  virtual ~BlobReader() = default;

  // Replaces *out with the next at most `max_bytes` bytes of the range (reusing its memory:
  // pass the same buffer back to avoid reallocating). On error *out is empty. Returns true while
  // more data follows, false with the last chunk (which may be empty, e.g. for an empty range).
  // Before returning false the reader has checked the whole blob against its digest: DATA_LOSS
  // when it does not match (the blob has then been removed from the store); read errors with
  // errno's canonical code (common::ErrnoStatus: EIO is UNKNOWN).
  virtual absl::StatusOr<bool> Next(size_t max_bytes, std::string* out) = 0;

  // Bytes of the range not yet returned.
  virtual int64_t remaining() const = 0;
};

// One attempt at writing an upload (a ByteStream Write stream). Uploads are resumable: when a
// writer is destroyed without Commit, the bytes appended so far stay with the upload id, and a
// later OpenWrite of the same id may continue from committed(), until the upload is swept for
// being idle. Every error other than ABORTED discards the upload's partial data.
class BlobWriter {
 public:
  virtual ~BlobWriter() = default;

  // True when the blob is present in the store (it was already, or Commit succeeded). Then
  // nothing more needs to be written.
  virtual bool complete() const = 0;
  // Bytes of the upload received so far (the blob's size once complete()).
  virtual int64_t committed() const = 0;

  // Appends the next bytes. INVALID_ARGUMENT when they would exceed the digest's size,
  // RESOURCE_EXHAUSTED when the disk is full, ABORTED when a newer writer took the upload
  // over (or it was swept), errno's canonical code for other I/O errors.
  virtual absl::Status Append(absl::string_view data) = 0;

  // Makes the blob visible once all of it is here and it hashes to the digest: the data is
  // synced, renamed into place and its directory synced before this returns OK.
  // INVALID_ARGUMENT when bytes are missing or the hash differs, RESOURCE_EXHAUSTED on a full
  // disk, ABORTED and I/O errors as for Append. OK at once when complete() already.
  virtual absl::Status Commit() = 0;
};

// Where a resumable upload stands.
struct UploadStatus {
  int64_t committed = 0;  // bytes held (the blob's size when complete)
  bool complete = false;  // the blob is present
};

struct BlobStoreStats {
  int64_t blobs = 0;          // stored blobs (the empty blob not counted)
  int64_t bytes = 0;          // their total size
  int64_t uploads = 0;        // partial uploads held for resumption
  int64_t evicted_blobs = 0;  // since start
  int64_t corrupt_blobs = 0;  // found corrupt on read and removed, since start
  // Since start: bytes of new blobs stored, bytes read (whole blobs or ranges, for clients and
  // for the action cache), and the digests FindMissing found present or missing (a client's
  // "do you have it?", and the action cache checking a stored result's outputs).
  int64_t written_bytes = 0;
  int64_t read_bytes = 0;
  int64_t found = 0;
  int64_t missing = 0;
};

class BlobStore {
 public:
  virtual ~BlobStore() = default;

  // True when the blob is present (the empty blob always is). A digest whose hash is stored
  // with another size is absent. Errors: UNAVAILABLE/INTERNAL from the metadata store.
  virtual absl::StatusOr<bool> Contains(const Digest& digest) = 0;

  // The digests of `digests` that are absent, in request order. Present ones count as used
  // now (they move to the back of the eviction order).
  virtual absl::StatusOr<std::vector<Digest>> FindMissing(const std::vector<Digest>& digests) = 0;

  // Stores `data` as the blob `digest` (the batch path). INVALID_ARGUMENT when data does not
  // hash to digest (size included), RESOURCE_EXHAUSTED on a full disk. OK when already present.
  virtual absl::Status Put(const Digest& digest, absl::string_view data) = 0;

  // Put for several blobs, each succeeding or failing on its own (one status per blob, in
  // order); cheaper than one Put per blob, as the blobs share their disk syncs.
  virtual std::vector<absl::Status> PutBatch(const std::vector<BlobData>& blobs) = 0;

  // Reads [offset, offset + limit) of the blob; limit 0 means to the end. NOT_FOUND when
  // absent; OUT_OF_RANGE when offset is negative or beyond the size (offset == size is an
  // empty read); INVALID_ARGUMENT for a negative limit. Marks the blob used.
  virtual absl::StatusOr<std::unique_ptr<BlobReader>> OpenRead(const Digest& digest,
                                                               int64_t offset = 0,
                                                               int64_t limit = 0) = 0;

  // A whole blob in memory, verified. As OpenRead; callers keep `digest.size` small.
  virtual absl::StatusOr<std::string> Read(const Digest& digest) = 0;

  // Starts or resumes the upload `upload_id` (any client-chosen text; the same id with another
  // digest is another upload) of `digest`, receiving bytes from `offset`: 0 (re)starts it, the
  // committed size resumes it, anything else is INVALID_ARGUMENT naming the committed size.
  // A blob already present gives a writer that is complete(). RESOURCE_EXHAUSTED when too many
  // uploads are open.
  virtual absl::StatusOr<std::unique_ptr<BlobWriter>> OpenWrite(absl::string_view upload_id,
                                                                const Digest& digest,
                                                                int64_t offset) = 0;

  // Where the upload stands: complete when the blob is present, else the bytes held (0 for an
  // unknown or swept upload).
  virtual UploadStatus QueryWrite(absl::string_view upload_id, const Digest& digest) = 0;

  // Keeps the blobs from eviction until `until_ms` (Unix ms; a later pin of the same blob
  // extends it, an earlier one does not shorten it). Pins expire by themselves: to keep an
  // artifact longer, pin it again. The present blobs are pinned even when some are missing;
  // then the result is NOT_FOUND naming the missing digests. INVALID_ARGUMENT naming a
  // malformed digest (nothing is pinned then).
  virtual absl::Status PinArtifacts(const std::vector<Digest>& digests, int64_t until_ms) = 0;

  virtual BlobStoreStats Stats() = 0;

  // When a stored blob was written and last used (read, uploaded again, or found by
  // FindMissing; a use not yet flushed counts). nullopt when it is not stored.
  struct Use {
    int64_t size = 0;
    int64_t created_ms = 0;
    int64_t accessed_ms = 0;
  };
  virtual absl::StatusOr<std::optional<Use>> UseOf(absl::string_view hash) = 0;

  // The stored blobs by the time since their last use, at `now_ms`: entry i counts those last
  // used less than bounds_ms[i] ago (and not less than bounds_ms[i-1]); one more entry counts
  // the rest. `bounds_ms` ascending. Reads every blob's metadata (about 1 s per million).
  struct AgeCount {
    int64_t blobs = 0;
    int64_t bytes = 0;
  };
  virtual absl::StatusOr<std::vector<AgeCount>> CountByAge(const std::vector<int64_t>& bounds_ms,
                                                           int64_t now_ms) = 0;
};

}  // namespace farm::coordinator
