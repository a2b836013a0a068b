// The REAPI action cache: ActionResults keyed by (instance name, action digest), stored synced
// in the coordinator's Store (column family action_cache). Results are only served while
// everything they point at is still in the CAS, so a client never gets a hit whose outputs it
// cannot download (Bazel's --remote_download_minimal depends on that).
//
// Instance names: the CAS is shared by all instances (content addressing makes that safe),
// while action results are kept per instance, so that instances can stand for different
// platforms or trust domains.
//
// Retention (action_cache_retention.cc): each stored result has an age index in
// Cf::kRetention ("A" | key → stored_ms(8), and "a" | stored_ms(8) | key → "" in age order);
// Expire removes results stored longer ago than a cutoff, oldest first. Results stored before
// the index existed are given one (as stored now) by Expire, a bounded number per call.
//
// Thread-safe; blocking (Store and BlobStore calls). No gRPC types.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "build/bazel/remote/execution/v2/remote_execution.pb.h"
#include "common/clock.h"
#include "common/digest.h"
#include "coordinator/cas/blob_store.h"
#include "coordinator/store/store.h"

namespace farm::coordinator {

// Largest encoded ActionResult the cache stores.
inline constexpr size_t kMaxActionResultBytes = 4 << 20;

class ActionCache {
 public:
  // `store` and `blobs` must outlive the cache.
  ActionCache(Store* store, BlobStore* blobs, common::Clock* clock = common::RealClock())
      : store_(store), blobs_(blobs), clock_(clock) {}

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

  // Removes (with dry_run: counts) at most `max` results stored before cutoff_ms, oldest first,
  // after indexing at most `max` results that have no age yet. Store errors as they come.
  struct Expired {
    int64_t removed = 0;
    bool more = false;  // stopped at `max`
  };
  absl::StatusOr<Expired> Expire(int64_t cutoff_ms, bool dry_run, size_t max = 10'000);

 private:
  // Indexes results without an age (stored before the index existed), from the backfill
  // cursor on; at most `max`.
  absl::Status Backfill(size_t max);

  Store* const store_;
  BlobStore* const blobs_;
  common::Clock* const clock_;
};

}  // namespace farm::coordinator
