// The REAPI action cache: ActionResults keyed by (instance name, action digest), stored synced
// in the coordinator's Store (column family action_cache). Results are only served while
// everything they point at is still in the CAS, so a client never gets a hit whose outputs it
// cannot download (Bazel's --remote_download_minimal depends on that).
//
// Instance names: the CAS is shared by all instances (content addressing makes that safe),
// while action results are kept per instance, so that instances can stand for different
// platforms or trust domains.
//
// Thread-safe; blocking (Store and BlobStore calls). No gRPC types.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "build/bazel/remote/execution/v2/remote_execution.pb.h"
#include "common/digest.h"
#include "coordinator/cas/blob_store.h"
#include "coordinator/store/store.h"

namespace farm::coordinator {

// Largest encoded ActionResult the cache stores.
inline constexpr size_t kMaxActionResultBytes = 4 << 20;

class ActionCache {
 public:
  // `store` and `blobs` must outlive the cache.
  ActionCache(Store* store, BlobStore* blobs) : store_(store), blobs_(blobs) {}

  // The result stored for the action. NOT_FOUND when there is none, or when a blob it refers
  // to (output files, stdout/stderr, output directory trees and every file inside them) is
  // missing from the CAS: such an entry is deleted. Referenced blobs count as used now.
  absl::StatusOr<build::bazel::remote::execution::v2::ActionResult> Get(
      absl::string_view instance, const common::Digest& action);

  // Stores (replaces) the result and returns it. INVALID_ARGUMENT for a malformed digest in
  // it or a result above kMaxActionResultBytes; FAILED_PRECONDITION when a blob it refers to
  // directly is not in the CAS (upload outputs first); store errors as they come.
  absl::StatusOr<build::bazel::remote::execution::v2::ActionResult> Update(
      absl::string_view instance, const common::Digest& action,
      const build::bazel::remote::execution::v2::ActionResult& result);

  // The blobs a result names directly (not the files inside its trees), validated.
  // INVALID_ARGUMENT naming the field of the first malformed digest.
  static absl::StatusOr<std::vector<common::Digest>> DirectReferences(
      const build::bazel::remote::execution::v2::ActionResult& result);

 private:
  Store* const store_;
  BlobStore* const blobs_;
};

}  // namespace farm::coordinator
