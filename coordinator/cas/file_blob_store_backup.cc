// FileBlobStore's part in backups (file_blob_store.h): eviction holds, and the export of every
// blob's file into a backup directory.
#include <sys/stat.h>

#include <cerrno>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/posix_io.h"
#include "common/status_macros.h"
#include "coordinator/cas/file_blob_store.h"
#include "coordinator/cas/file_blob_store_internal.h"
#include "coordinator/store/keys.h"

namespace farm::coordinator {

FileBlobStore::EvictionHold FileBlobStore::HoldEvictions() {
  // Evict runs under maintenance_mu_: once we have it, no eviction is half done.
  absl::MutexLock lock(&maintenance_mu_);
  eviction_holds_.fetch_add(1);
  return EvictionHold(&eviction_holds_);
}

absl::StatusOr<FileBlobStore::ExportedBlobs> FileBlobStore::ExportBlobs(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0755) != 0) {
    return common::ErrnoStatus(errno, absl::StrCat("cannot create ", dir));
  }
  for (int i = 0; i < cas_internal::kShards; ++i) {
    const unsigned char byte = static_cast<unsigned char>(i);
    const std::string shard = absl::StrCat(dir, "/", common::HexEncode(&byte, 1));
    if (::mkdir(shard.c_str(), 0755) != 0) {
      return common::ErrnoStatus(errno, absl::StrCat("cannot create ", shard));
    }
  }
  ExportedBlobs out;
  absl::Status failed;
  int64_t vanished = 0;
  FARM_RETURN_IF_ERROR(
      store_->Scan(Cf::kCasBlobs, "", "", [&](absl::string_view hash, absl::string_view value) {
        if (!common::ValidateHash(hash).ok() || value.size() != cas_internal::kMetaBytes) {
          return true;  // not a blob entry (start-up drops such entries)
        }
        const Digest digest{std::string(hash), static_cast<int64_t>(keys::ReadU64(value, 0))};
        const std::string target = absl::StrCat(dir, "/", hash.substr(0, 2), "/", hash);
        bool linked = false;
        absl::Status s = common::LinkOrCopyFile(BlobPath(digest), target, &linked);
        if (absl::IsNotFound(s)) {
          ++vanished;  // removed as corrupt since the scan began
          return true;
        }
        if (!s.ok()) {
          failed = s;
          return false;
        }
        ++(linked ? out.linked : out.copied);
        out.bytes += digest.size;
        out.blobs.push_back(digest);
        return true;
      }));
  FARM_RETURN_IF_ERROR(failed);
  for (int i = 0; i < cas_internal::kShards; ++i) {
    const unsigned char byte = static_cast<unsigned char>(i);
    FARM_RETURN_IF_ERROR(
        common::SyncDirectory(absl::StrCat(dir, "/", common::HexEncode(&byte, 1))));
  }
  FARM_RETURN_IF_ERROR(common::SyncDirectory(dir));
  if (vanished > 0) {
    FARM_LOG(WARNING) << "CAS export: " << vanished
                      << " blob(s) were removed as corrupt while the export ran; left out";
  }
  return out;
}

}  // namespace farm::coordinator
