// A small client of the REAPI v2 content-addressable store (ContentAddressableStorage,
// ByteStream and Capabilities, instance name ""), shared by the agent (artifact upload) and
// farmctl (download, `cas put/get/stat`).
//
// - Uploads: files up to kSmallBlobBytes go in BatchUpdateBlobs requests holding several files,
//   each request below the server's max_batch_total_size_bytes (and at most
//   CasClientOptions::max_batch_bytes); larger files are streamed with ByteStream.Write in
//   chunk_bytes chunks under `uploads/{uuid}/blobs/{hash}/{size}`. After UNAVAILABLE a write
//   resumes where QueryWriteStatus says the server is.
// - Downloads: ByteStream.Read of `blobs/{hash}/{size}` into a temporary file next to the
//   destination, hashed (SHA-256) as it arrives, renamed over the destination only when the
//   bytes match the digest: DATA_LOSS otherwise, and nothing is left behind. After UNAVAILABLE a
//   read resumes at the offset reached.
// - Every call has a deadline (streams: a base plus the blob's size at a minimum rate); only
//   UNAVAILABLE is retried, with exponential backoff and jitter, up to `attempts` tries.
//
// Thread-safe: one client may be used from several threads (the capabilities are fetched once).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/digest.h"
#include "common/unique_fd.h"

namespace grpc {
class Channel;
class ClientContext;
}  // namespace grpc

namespace farm::common {

// Lets another thread abort a client's blocking calls and retry sleeps (the agent's
// CallCanceller implements it, so that abandoning an attempt ends its uploads at once).
// Implementations are thread-safe.
class CancelSource {
 public:
  virtual ~CancelSource() = default;
  // Registers a call in flight; false (nothing registered) when already cancelled. A cancel
  // TryCancel()s every registered context.
  virtual bool Attach(grpc::ClientContext* context) = 0;
  virtual void Detach(grpc::ClientContext* context) = 0;
  // Sleeps up to `ms`; true (early) when cancelled.
  virtual bool SleepFor(int64_t ms) = 0;
};

struct CasClientOptions {
  int64_t rpc_timeout_ms = 30'000;  // unary calls: FindMissingBlobs, BatchUpdateBlobs, ...
  // A stream's deadline: this plus its bytes at min_stream_bytes_per_second.
  int64_t stream_timeout_ms = 60'000;
  int64_t min_stream_bytes_per_second = 1 << 20;
  int attempts = 5;  // tries of one call (or one stream position) on UNAVAILABLE
  int64_t initial_backoff_ms = 100;
  int64_t max_backoff_ms = 5'000;
  // Upper bound of one BatchUpdateBlobs request (the server's max_batch_total_size_bytes lowers
  // it further).
  int64_t max_batch_bytes = 4 << 20;
  int64_t chunk_bytes = 1 << 20;  // ByteStream.Write chunk
  // Calls wait (within their deadline) for an unreachable server to come back instead of
  // failing with UNAVAILABLE at once: for the agent, whose coordinator may be restarting.
  bool wait_for_ready = false;
};

// Files up to this size are uploaded in batches; larger ones through ByteStream.
inline constexpr int64_t kSmallBlobBytes = 1 << 20;

class CasClient {
 public:
  explicit CasClient(std::shared_ptr<grpc::Channel> channel, CasClientOptions options = {});
  ~CasClient();
  CasClient(const CasClient&) = delete;
  CasClient& operator=(const CasClient&) = delete;

  // The digests among `digests` the store does not have (in request order, each once).
  // `cancel` may be null (here and below); CANCELLED when it fired.
  absl::StatusOr<std::vector<Digest>> FindMissing(const std::vector<Digest>& digests,
                                                  CancelSource* cancel = nullptr);
  // True when the store has the blob.
  absl::StatusOr<bool> Stat(const Digest& digest, CancelSource* cancel = nullptr);

  struct FileUpload {
    std::string path;   // the file to read
    std::string label;  // how errors name it (e.g. the artifact's path); `path` when empty
    Digest digest;      // of its content, computed by the caller
    // How to open it for reading, when set (instead of open(2) on `path`): the agent opens an
    // artifact beneath the workspace's descriptor, never through a path string.
    std::function<absl::StatusOr<UniqueFd>()> open = nullptr;
  };
  // Uploads each file's content under its digest, whether or not the store has it (call
  // FindMissing first). The empty blob is never sent (the store always has it).
  // FAILED_PRECONDITION when a file's size no longer matches its digest (it changed after it
  // was hashed); the server's INVALID_ARGUMENT when the content does not match; NOT_FOUND /
  // PERMISSION_DENIED when a file cannot be read; a call's error (after retries) otherwise.
  // Errors name the file.
  absl::Status UploadFiles(const std::vector<FileUpload>& files, CancelSource* cancel = nullptr);
  absl::Status UploadFile(const std::string& path, const Digest& digest,
                          CancelSource* cancel = nullptr);

  // Fetches the blob into `path` (created or replaced, mode 0666 or with `executable` 0777,
  // less the umask). NOT_FOUND when the store lacks the blob; DATA_LOSS when the bytes
  // received do not match the digest; the file system's error when `path` cannot be written.
  // On any error `path` is untouched and no temporary file is left.
  absl::Status Download(const Digest& digest, const std::string& path, bool executable = false,
                        CancelSource* cancel = nullptr);
  // The same into `base` (one name) in the directory `dir` (a descriptor): the temporary file
  // is created there with O_EXCL | O_NOFOLLOW and renamed over `base` with renameat, so a link
  // planted at either name is never followed (one at `base` is replaced). `path` names the file
  // in errors.
  absl::Status DownloadAt(const Digest& digest, int dir, const std::string& base,
                          absl::string_view path, bool executable = false,
                          CancelSource* cancel = nullptr);

  // The batch limit in use: min(options.max_batch_bytes, the server's
  // max_batch_total_size_bytes). Asks the server once (GetCapabilities); a server that does not
  // implement Capabilities gets options.max_batch_bytes.
  absl::StatusOr<int64_t> BatchLimit(CancelSource* cancel = nullptr);

 private:
  struct Stubs;  // keeps the generated stubs out of this header

  absl::Status UploadBatch(const std::vector<const FileUpload*>& files, CancelSource* cancel);
  absl::Status WriteStream(const FileUpload& file, CancelSource* cancel);

  const CasClientOptions options_;
  std::unique_ptr<Stubs> stubs_;
  absl::Mutex mu_;
  int64_t batch_limit_ ABSL_GUARDED_BY(mu_) = 0;  // 0: not asked yet
};

}  // namespace farm::common
