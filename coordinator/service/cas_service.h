// The REAPI v2 cache services on the gRPC callback API: Capabilities, ContentAddressableStorage,
// ActionCache and google.bytestream.ByteStream, thin adapters over BlobStore and ActionCache.
// Any REAPI client (Bazel with --remote_cache=grpc://HOST:PORT, the farm agent, farmctl) uses
// them.
//
// Threading: the store is blocking (file I/O, fsync, RocksDB), so every call's store work runs
// on an IoPool owned here, never on a gRPC callback thread; the reactors only move messages.
// A pool rather than bounded inline pieces because a commit's fsync can take long on a busy
// disk and would stall every other call served by that callback thread. Streams pipeline: a
// ByteStream Write reads the next message while the pool writes the previous one, and a Read
// reads the next chunk from disk while the previous one is being sent; so a stream holds at
// most three messages in memory.
//
// Interface the farm's own clients rely on (the wire contract, beyond the REAPI text):
//   - Digests are SHA-256 only; requests may leave digest_function unset (inferred from the
//     64-digit hash) or set it to SHA256; anything else is INVALID_ARGUMENT.
//   - ByteStream Read:  [INSTANCE/]blobs/HASH/SIZE, served in chunks of kReadChunkBytes.
//     Write: [INSTANCE/]uploads/UUID/blobs/HASH/SIZE[/...]; a Write of a blob already present
//     ends at once with committed_size = SIZE. A Write may resume at the committed_size that
//     QueryWriteStatus reports (0 for unknown or swept uploads); unfinished uploads are kept
//     30 minutes and do not survive a coordinator restart. A client half-close without
//     finish_write leaves the upload resumable.
//   - Instance names: the CAS is shared by every instance; action results are per instance.
//   - Batch calls: at most kMaxBatchBlobs digests and kMaxBatchTotalBytes of blob data
//     (advertised as max_batch_total_size_bytes); above that, INVALID_ARGUMENT naming the
//     limit: use ByteStream. FindMissingBlobs: at most kMaxBatchBlobs digests; above that,
//     INVALID_ARGUMENT naming the limit: split the list.
//   - Errors: INVALID_ARGUMENT for malformed names/digests/offsets and hash mismatches,
//     NOT_FOUND for missing blobs, OUT_OF_RANGE for read offsets beyond the blob,
//     RESOURCE_EXHAUSTED when the disk is full, DATA_LOSS when a stored blob was found corrupt
//     (it is removed: upload it again), UNIMPLEMENTED for compressed-blobs.
//
// Files: cas_service.cc (this class, Capabilities, ActionCache, shared helpers),
// cas_service_cas.cc (ContentAddressableStorage, GetTree), cas_service_bytestream.cc
// (ByteStream); cas_service_internal.h is what they share.
//
// Thread-safe; owned by the Coordinator, which must shut the gRPC server down (so that every
// call has finished) before destroying this object.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "build/bazel/remote/execution/v2/remote_execution.grpc.pb.h"
#include "common/io_pool.h"
#include "coordinator/cas/action_cache.h"
#include "coordinator/cas/blob_store.h"
#include "google/bytestream/bytestream.grpc.pb.h"

namespace grpc {
class ServerBuilder;
class Service;
}  // namespace grpc

namespace farm::coordinator {

// Largest total of blob sizes in one BatchUpdateBlobs / BatchReadBlobs call. Leaves room under
// the 16 MiB gRPC message limit (common/channel.h) for the per-blob framing of
// kMaxBatchBlobs entries.
inline constexpr int64_t kMaxBatchTotalBytes = 12 << 20;
// Most digests in one batch call (BatchUpdate/BatchRead) or FindMissingBlobs call.
inline constexpr int kMaxBatchBlobs = 10'000;
// Size of the chunks a ByteStream Read sends.
inline constexpr size_t kReadChunkBytes = 1 << 20;
// Most directories in one GetTree response.
inline constexpr int kMaxTreePageSize = 1'000;

class ReapiServices {
 public:
  // `blobs` and `action_cache` must outlive this object.
  ReapiServices(BlobStore* blobs, ActionCache* action_cache, int io_threads = 8);
  ~ReapiServices();

  // Registers the four services on `builder`.
  void Register(grpc::ServerBuilder& builder);
  // Their full names ("google.bytestream.ByteStream", ...).
  static std::vector<std::string> Names();

 private:
  common::IoPool pool_;
  // Capabilities, ContentAddressableStorage, ActionCache, ByteStream.
  std::vector<std::unique_ptr<grpc::Service>> services_;
};

}  // namespace farm::coordinator
