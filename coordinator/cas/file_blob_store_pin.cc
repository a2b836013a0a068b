// FileBlobStore's artifact pins: keep a finished job's artifacts from eviction for the
// retention period. One pin call is one synced store batch under the stripes of all its blobs;
// PinArtifactsAsync runs it on the CAS's own IoPool, so that the scheduler's engine thread
// neither waits for the disk nor takes a CAS lock.
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/cas/file_blob_store.h"
#include "coordinator/cas/file_blob_store_internal.h"

namespace farm::coordinator {
namespace {

// Pins come from agents' reports: a digest must be well-formed before its hash picks a stripe.
absl::Status CheckPinnable(const Digest& d) {
  absl::Status s = common::ValidateHash(d.hash);
  if (s.ok() && d.size < 0) s = absl::InvalidArgumentError("its size is negative");
  if (s.ok()) return s;
  return absl::InvalidArgumentError(
      absl::StrCat("cannot pin artifact blob \"", d.hash, "/", d.size, "\": ", s.message()));
}

}  // namespace

absl::Status FileBlobStore::PinArtifacts(const std::vector<Digest>& digests, int64_t until_ms) {
  std::vector<absl::string_view> hashes;
  hashes.reserve(digests.size());
  for (const Digest& d : digests) {
    if (d == common::EmptyDigest()) continue;  // always present, never evicted
    FARM_RETURN_IF_ERROR(CheckPinnable(d));
    hashes.push_back(d.hash);
  }
  std::vector<Digest> missing;
  {
    cas_internal::StripeLocks locks(StripesFor(hashes));
    WriteBatch batch;
    absl::flat_hash_set<absl::string_view> pinned;  // a digest listed twice is written once
    for (const Digest& d : digests) {
      if (d == common::EmptyDigest()) continue;
      FARM_ASSIGN_OR_RETURN(std::optional<Meta> meta, GetMeta(d.hash));
      if (!meta.has_value() || meta->size != d.size) {
        missing.push_back(d);
        continue;
      }
      if (meta->pinned_until_ms >= until_ms || !pinned.insert(d.hash).second) continue;
      batch.Put(
          Cf::kCasBlobs, d.hash,
          cas_internal::EncodeMeta(meta->size, meta->created_ms, meta->accessed_ms, until_ms));
    }
    // Under the stripes: a concurrent access-time flush rewrites the same entries.
    if (!batch.empty()) FARM_RETURN_IF_ERROR(store_->Write(batch, /*sync=*/true));
  }
  if (!missing.empty()) {
    return absl::NotFoundError(absl::StrCat(
        missing.size(),
        " artifact blob(s) are not in the CAS: ", cas_internal::DescribeDigests(missing)));
  }
  return absl::OkStatus();
}

void FileBlobStore::PinArtifactsAsync(std::vector<Digest> digests, int64_t until_ms,
                                      std::function<void(absl::Status)> done) {
  pool_.Post([this, digests = std::move(digests), until_ms, done = std::move(done)] {
    done(PinArtifacts(digests, until_ms));
  });
}

}  // namespace farm::coordinator
