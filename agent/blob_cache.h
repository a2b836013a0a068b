// The agent's local cache of CAS blobs, keyed by digest, so that an input a job needs is fetched
// from the coordinator's CAS once per machine rather than once per job.
//
// Layout: one file per blob, `<dir>/<hash>` (dir is `<work_dir>/cache/blobs`), read-only, its
// mtime the time of its last use. Fetches go through common::CasClient::Download, which writes a
// hidden temporary file next to the destination, checks the SHA-256 while writing and renames
// only a verified blob into place: a blob file in the cache was complete and correct when it was
// written. It is checked again every time it is used (the copy out of the cache hashes what it
// reads), because the directory is reachable by steps and disks do fail: an entry that no longer
// matches its digest is removed and fetched again, once.
//
// Materialize() copies, never links, a blob into a workspace: a step that modifies an input it
// was given (or deletes it, or chmods it) must not change what the next job gets. The copy of a
// blob this very call fetched uses copy_file_range (a reflink on file systems that can, and no
// trip through user space elsewhere); the copy of a cache hit reads and hashes.
//
// Bound: the blobs in the cache total at most `max_bytes`. Beyond it the least recently used
// blobs are evicted (last use survives restarts through the mtime). A blob that is being fetched
// or copied out is pinned and never evicted, so the cache may exceed the bound by the blobs in
// use until they are released. A blob larger than the bound is not cached at all: it is fetched
// straight into the workspace. max_bytes 0 disables the cache (everything is fetched straight
// into the workspace, and Open() empties the directory).
//
// Concurrency: one agent process owns the directory; the slots of that agent share one
// BlobCache. Slots that need the same missing blob at once fetch it once: the first fetches,
// the others wait for it (and fetch it themselves if that fetch fails or is cancelled).
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/cas_client.h"
#include "common/digest.h"

namespace farm::agent {

class BlobCache {
 public:
  struct Options {
    std::string dir;        // created when the first blob is cached
    int64_t max_bytes = 0;  // >= 0; 0: no cache (the agent's is --cache_max_bytes)
  };
  struct Stats {
    int64_t hits = 0;           // blobs served from the cache (also after waiting for a fetch)
    int64_t misses = 0;         // fetches from the CAS, including refetches and retries
    int64_t bytes_fetched = 0;  // bytes of the successful fetches
    int64_t evictions = 0;      // blobs removed to stay within the bound
    int64_t corrupt = 0;        // cached blobs found not to match their digest (removed)
  };

  // Indexes what `options.dir` already holds (blobs from an earlier run: the last use is the
  // file's mtime), deletes what is not a blob (temporary files of an interrupted fetch) and
  // evicts down to the bound. `cas` is not owned and must outlive the cache. INTERNAL when the
  // directory exists but cannot be read.
  static absl::StatusOr<std::unique_ptr<BlobCache>> Open(Options options, common::CasClient* cas);

  BlobCache(const BlobCache&) = delete;
  BlobCache& operator=(const BlobCache&) = delete;

  // Creates `dest` (a new file: ALREADY_EXISTS if there is one; its directory must exist) with
  // the blob's content, mode 0666 or, `executable`, 0777, less the umask. Takes the blob from
  // the cache, or fetches it into the cache first. A blob that does not match its digest (in the
  // cache or as received) is discarded and fetched once more. Errors: NOT_FOUND when the CAS
  // lacks the blob; DATA_LOSS when it still does not match after the second fetch; CANCELLED
  // when `cancel` (may be null) fired; the file system's error (RESOURCE_EXHAUSTED for a full
  // disk) otherwise. On error `dest` does not exist.
  absl::Status Materialize(const common::Digest& digest, const std::string& dest, bool executable,
                           common::CancelSource* cancel);
  // The same for `name` in the directory `dir` (a descriptor; `label` names the file in
  // messages): the file is created with O_EXCL | O_NOFOLLOW (or renamed into place with
  // renameat), so a symbolic link planted in the directory is never followed.
  absl::Status MaterializeAt(const common::Digest& digest, int dir, const std::string& name,
                             absl::string_view label, bool executable,
                             common::CancelSource* cancel);

  Stats stats() const;
  int64_t bytes() const;  // of the blobs cached now
  int entries() const;
  bool Contains(const common::Digest& digest) const;
  // Where the blob is (or would be) cached.
  std::string PathOf(const common::Digest& digest) const;
  const Options& options() const { return options_; }

 private:
  struct Entry {
    uint64_t id = 0;  // tells this entry from a later one for the same hash
    int64_t size = 0;
    bool ready = false;  // false while it is being fetched
    int pins = 0;        // callers copying it out (or fetching it): not evictable
    uint64_t tick = 0;   // its key in lru_ (ready entries only)
  };
  // A pinned, ready entry (or a fetch of one that is not cached).
  struct Pin {
    uint64_t id = 0;
    bool fetched = false;  // this call fetched it (it was just verified)
  };

  BlobCache(Options options, common::CasClient* cas);
  absl::Status Scan();

  // Pins the blob's entry, fetching it when missing (or waiting for another caller's fetch).
  absl::StatusOr<Pin> Acquire(const common::Digest& digest, common::CancelSource* cancel);
  void Release(const common::Digest& digest, const Pin& pin);
  // Removes the entry `pin` refers to (it did not match its digest), if it is still there.
  void Discard(const common::Digest& digest, const Pin& pin);
  void Touch(const std::string& hash, Entry& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Evicts least recently used, unpinned blobs while the cache is over the bound.
  void EvictLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  common::CasClient* const cas_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);  // by hash
  std::map<uint64_t, std::string> lru_ ABSL_GUARDED_BY(mu_);  // tick → hash, oldest first
  uint64_t next_tick_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;  // of ready entries
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace farm::agent
