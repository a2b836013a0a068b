// The coordinator's durable key-value store: column families of ordered keys, atomic batches.
// Domain code sees only this interface (never RocksDB types), so it runs against the in-memory
// fake in unit tests. Implementations are thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace farm::coordinator {

// One column family per record kind (see keys.h for the key layouts).
enum class Cf : int {
  kMeta = 0,      // counters, label sets
  kJobs = 1,      // job seq → farm.v1.Job
  kQueue = 2,     // label set | priority | position → job seq (queued jobs only)
  kActive = 3,    // job seq → "" for jobs that hold a lease (RUNNING)
  kLogs = 4,      // job seq | attempt | step | offset → output bytes
  kRequests = 5,  // submit request id → job seq | submit time
  // The content-addressed store (layouts in coordinator/cas/file_blob_store.h, action_cache.h).
  kCasBlobs = 6,     // sha256 hex → size | created | last access | pinned until
  kCasLru = 7,       // last access | sha256 hex → "" (eviction order, oldest first)
  kActionCache = 8,  // instance | action digest → build.bazel.remote.execution.v2.ActionResult
  kPipelines = 9,    // pipeline seq → farm.v1.Pipeline (its jobs' ids, names and needs)
  // Concurrency groups: "a" | group | 0 | job seq → "" for jobs holding one of the group's
  // places (queued or running); "w" | group | 0 | job seq → "" for jobs waiting for one.
  kGroups = 10,
  // The event history (keys.h): time | event seq → farm.v1.Event, and its per-job index.
  kEvents = 11,
  kJobEvents = 12,
  kAgents = 13,        // agent name → farm.internal.AgentRecord (the agent registry)
  kProgress = 14,      // job seq → farm.v1.Attempt: the running attempt's step results
  kPipelineJobs = 15,  // pipeline seq | job seq → farm.v1.PipelineJob: a job's summary
  kWaiting = 16,       // job seq → "" for WAITING jobs (re-resolved at recovery)
  kTokens = 17,        // SHA-256 of a bearer token → farm.internal.TokenRecord
  kSecrets = 18,       // secret name → farm.internal.SecretRecord (the value encrypted)
  // Retention (scheduler/retention.h): finished jobs in the order they may be removed, and the
  // action cache's age index (cas/action_cache.h). Created on open in older data dirs.
  kRetention = 19,
};
inline constexpr int kNumCfs = 20;
const char* CfName(Cf cf);

// An atomic group of writes. Later operations on the same key win.
class WriteBatch {
 public:
  struct Op {
    Cf cf;
    bool is_delete;
    std::string key;
    std::string value;      // for a range delete: the range's limit
    bool is_range = false;  // deletes every key in [key, value)
  };

  void Put(Cf cf, std::string key, std::string value);
  void Delete(Cf cf, std::string key);
  // Deletes every key in [start, limit) of the family (one tombstone, whatever the range holds).
  void DeleteRange(Cf cf, std::string start, std::string limit);
  void Append(const WriteBatch& other);
  void Clear();

  bool empty() const { return ops_.empty(); }
  size_t byte_size() const { return bytes_; }
  const std::vector<Op>& ops() const { return ops_; }

 private:
  std::vector<Op> ops_;
  size_t bytes_ = 0;
};

// What RocksDbStore::Stats reports (admin status). Sizes in bytes; keys are RocksDB's
// estimates (exact while a family's data is in memory, approximate once compactions are due).
struct StoreStats {
  struct Family {
    std::string name;
    int64_t estimated_keys = 0;
    int64_t live_bytes = 0;      // estimated size of the live data
    int64_t sst_bytes = 0;       // its table files on disk
    int64_t memtable_bytes = 0;  // in memory, not yet flushed
  };
  std::vector<Family> families;  // every column family, in Cf order
  int64_t sst_bytes = 0;         // all families' table files
  int64_t wal_bytes = 0;         // the write-ahead logs still live
  int64_t pending_compaction_bytes = 0;
  bool write_stalled = false;  // RocksDB delays or stops writes now
  // Since the store opened: the times RocksDB began to stop writes, or to slow them down (too
  // many level-0 files or memtables, too many bytes to compact), all families together.
  int64_t stalls_stopped = 0;
  int64_t stalls_slowed = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  // nullopt when the key is absent. UNAVAILABLE/INTERNAL on I/O errors.
  virtual absl::StatusOr<std::optional<std::string>> Get(Cf cf, absl::string_view key) = 0;

  // Calls fn(key, value) for keys in [start, limit) in key order (descending when reverse),
  // until fn returns false. An empty limit means "to the end of the family".
  using ScanFn = std::function<bool(absl::string_view key, absl::string_view value)>;
  virtual absl::Status Scan(Cf cf, absl::string_view start, absl::string_view limit,
                            const ScanFn& fn, bool reverse = false) = 0;

  // Applies the batch atomically. With sync, it is on stable storage when this returns OK.
  // RESOURCE_EXHAUSTED when the disk is full; UNAVAILABLE for other write errors after which
  // the store may recover by itself.
  virtual absl::Status Write(const WriteBatch& batch, bool sync) = 0;

  // Gives the space of deleted data back to the file system: writes every family's memtable
  // out (so that the write-ahead logs holding the deletes can go) and compacts `ranges`, so that
  // the deleted records leave the table files. Blocking and possibly long (seconds for
  // gigabytes): never on the engine thread. Writes go on meanwhile. The in-memory store has
  // nothing to give back.
  struct Range {
    Cf cf;
    std::string start;
    std::string limit;  // empty: to the end of the family
  };
  virtual absl::Status Compact(const std::vector<Range>& /*ranges*/) { return absl::OkStatus(); }

  // --- Backup and status (issue 13). UNIMPLEMENTED unless an implementation has them (the
  // memory store has neither).
  //
  // A consistent copy of the whole store, every family as of one moment during the call, made
  // in `dir` (which must not exist; its parent must): a store opened on it sees exactly the
  // writes acknowledged before that moment. Table files are hard links where the file system
  // allows (they are never modified), copies otherwise; writes go on meanwhile. Errors name
  // `dir`; a failed call may leave part of `dir` behind for the caller to remove.
  virtual absl::Status Checkpoint(const std::string& dir);
  // Sizes and key estimates, cheap (no scan): RocksDB's own counters.
  virtual absl::StatusOr<StoreStats> Stats();
};

}  // namespace farm::coordinator
