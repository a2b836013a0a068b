// FileBlobStore's artifact pins: keep a finished job's artifacts from eviction for the
// retention period.
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/cas/file_blob_store.h"
#include "coordinator/cas/file_blob_store_internal.h"

namespace farm::coordinator {

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
              cas_internal::EncodeMeta(meta->size, meta->created_ms, meta->accessed_ms, until_ms));
    FARM_RETURN_IF_ERROR(store_->Write(batch, /*sync=*/true));
  }
  if (!missing.empty()) {
    return absl::NotFoundError(absl::StrCat(
        missing.size(),
        " artifact blob(s) are not in the CAS: ", cas_internal::DescribeDigests(missing)));
  }
  return absl::OkStatus();
}

}  // namespace farm::coordinator
