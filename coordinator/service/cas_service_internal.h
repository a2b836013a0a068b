// What the REAPI service files (cas_service*.cc) share: digest and status conversions, the
// one way a unary call runs its store work on the pool, and the factories of the services that
// live in files of their own. Only for coordinator/service/cas_service*.cc.
//
// Thread-safety: the functions are thread-safe; OnPool's fn runs on a pool thread.
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "build/bazel/remote/execution/v2/remote_execution.grpc.pb.h"
#include "common/digest.h"
#include "common/grpc_status.h"
#include "common/io_pool.h"
#include "coordinator/cas/blob_store.h"

namespace farm::coordinator::reapi_internal {

namespace reapi = build::bazel::remote::execution::v2;

// A validated Digest; INVALID_ARGUMENT naming what is wrong.
absl::StatusOr<common::Digest> FromProto(const reapi::Digest& d);
reapi::Digest ToProto(const common::Digest& d);
// A per-blob status of a batch response.
void SetStatus(const absl::Status& s, google::rpc::Status* out);
// OK for SHA256, and for UNKNOWN (Bazel sends none; SHA-256 is then inferred from the 64-digit
// hashes); INVALID_ARGUMENT for any other digest function.
absl::Status CheckDigestFunction(reapi::DigestFunction::Value f);
// INVALID_ARGUMENT: "<what> <value> is above this server's limit of <limit>; <advice>".
absl::Status TooBig(absl::string_view what, int64_t value, int64_t limit, absl::string_view advice);

// Runs fn (returning absl::Status) on the pool and finishes the unary call with its result.
template <typename Fn>
grpc::ServerUnaryReactor* OnPool(grpc::CallbackServerContext* ctx, common::IoPool* pool, Fn fn) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  pool->Post(
      [reactor, fn = std::move(fn)]() mutable { reactor->Finish(common::ToGrpcStatus(fn())); });
  return reactor;
}

// ContentAddressableStorage: FindMissingBlobs, BatchUpdateBlobs, BatchReadBlobs, GetTree
// (cas_service_cas.cc). `blobs` and `pool` must outlive the service.
std::unique_ptr<grpc::Service> NewCasService(BlobStore* blobs, common::IoPool* pool);
// google.bytestream.ByteStream: Read, Write, QueryWriteStatus (cas_service_bytestream.cc).
std::unique_ptr<grpc::Service> NewByteStreamService(BlobStore* blobs, common::IoPool* pool);

}  // namespace farm::coordinator::reapi_internal
