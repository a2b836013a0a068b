// Streams one attempt's step output to the coordinator with byte offsets, resending after any
// failure until the coordinator has acknowledged (committed) it.
//
// Design: Append() queues chunks in one FIFO; one background thread opens an UploadLogs stream,
// writes the chunks at the front (at most max_stream_bytes per stream), finishes it, and drops
// the chunks the response confirms. On UNAVAILABLE / DEADLINE_EXCEEDED it backs off and resends
// from the first unconfirmed chunk; the coordinator skips bytes it already has, so resending
// is always safe.
//
// Buffering, so that an agent cut off from the coordinator keeps running its step: each queued
// chunk is held either in memory or in this sender's spill file, an append-only file in
// Options::spill_dir (the chunk then is a position and length in it). The FIFO, not where the
// bytes are, fixes the order, so the coordinator gets each step's bytes in order whatever mix
// of memory and file they came from. The sender reads spilled chunks back when it gets to them.
// Limits (Options):
//  - max_memory_bytes: a chunk goes to memory while the queued chunks in memory leave room for
//    it (or when nothing is queued at all, so that one oversized chunk still passes).
//  - max_spill_bytes: otherwise it is appended to the spill file while the file stays within
//    this size. The file only shrinks when everything in it has been acknowledged: it is then
//    deleted, and a new one is created when needed. So it is disk use, not queued bytes.
//  - Beyond both, Append() blocks, which pauses the step's reader and so the step itself
//    (back-pressure through the pipe).
// Spilling is off when spill_dir is empty or max_spill_bytes is 0. The first error creating or
// writing the spill file (disk full, ...) is logged and turns spilling off for the rest of
// this sender; the chunk that failed waits for room in memory like any other, so nothing is
// lost. A spilled chunk that cannot be read back (an I/O error) is dropped and logged, like a
// chunk the coordinator rejects. Memory: at most max_memory_bytes of queued output, plus the
// batch in flight (up to max_stream_bytes read back from the file). The spill file is also
// deleted by Abort(), Stop() and the destructor; only a process that dies leaves it behind
// (its name is `<job>-<attempt>-XXXXXX.spill`, and nothing but a LogSender writes spill_dir).
//
// Thread-safe. Typical use: Start(); Append()... from the step runner; Flush(step) after the
// step; Stop() at the end of the attempt, or Abort() to drop everything at once.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "agent/coordinator_client.h"
#include "farm/v1/farm.pb.h"

namespace farm::agent {

class LogSender {
 public:
  struct Options {
    // Queued output held in memory (payload bytes).
    int64_t max_memory_bytes = 8 << 20;
    // Where the spill file goes (created when first needed); empty: no spilling, Append()
    // blocks once max_memory_bytes are queued.
    std::string spill_dir;
    // Size bound of the spill file; 0: no spilling.
    int64_t max_spill_bytes = int64_t{1} << 30;
    // Output written per UploadLogs stream (at least one chunk).
    int64_t max_stream_bytes = 4 << 20;
    int64_t initial_backoff_ms = 100;
    int64_t max_backoff_ms = 5'000;
  };

  // Where the queued output is, for tests and diagnostics.
  struct Stats {
    int64_t memory_bytes = 0;       // queued in memory
    int64_t peak_memory_bytes = 0;  // the most memory_bytes has been
    int64_t spilled_bytes = 0;      // queued in the spill file
    int64_t spill_file_bytes = 0;   // size of the spill file; 0 when there is none
    bool spill_failed = false;      // a spill file error turned spilling off
  };

  // `client` must outlive this object. `reregister` is called (from the sender thread) when
  // the coordinator says the agent is not registered; it blocks until the agent registered
  // again and returns false when the agent gives up (then the sender aborts).
  LogSender(CoordinatorClient* client, farm::v1::LeaseRef lease, std::string log_prefix,
            std::function<bool()> reregister, Options options);
  LogSender(CoordinatorClient* client, farm::v1::LeaseRef lease, std::string log_prefix,
            std::function<bool()> reregister)
      : LogSender(client, std::move(lease), std::move(log_prefix), std::move(reregister),
                  Options()) {}
  ~LogSender();  // Abort() + Stop()
  LogSender(const LogSender&) = delete;
  LogSender& operator=(const LogSender&) = delete;

  void Start();

  // Queues `data`, which starts at byte `offset` of step `step_index`'s output. Chunks of one
  // step must be appended in offset order without gaps. Blocks while neither memory nor the
  // spill file has room (see above). Returns false (and drops the data) once the sender was
  // aborted or the lease went stale.
  bool Append(uint32_t step_index, int64_t offset, absl::string_view data);

  // Blocks until everything appended for `step_index` is committed by the coordinator.
  // FAILED_PRECONDITION: the coordinator refused the lease (stale); CANCELLED: Abort().
  absl::Status Flush(uint32_t step_index);

  // Drops all pending output, deletes the spill file and cancels the upload in flight.
  // Idempotent; any thread.
  void Abort();

  // Lets the sender thread send what is pending, then joins it and deletes the spill file.
  // Blocks while the coordinator is unreachable and output is pending: Flush() every step or
  // Abort() first.
  void Stop();

  Stats GetStats() const;

 private:
  using ChunkPtr = std::shared_ptr<const farm::v1::LogUploadChunk>;
  // One queued chunk: its bytes are in `chunk` (memory) or at `file_offset` in the spill file.
  struct Pending {
    uint32_t step_index = 0;
    int64_t offset = 0;
    int64_t size = 0;
    ChunkPtr chunk;
    int64_t file_offset = -1;
  };

  struct LoopState;  // the sender thread's backoff and what it has warned about
  void Loop();
  // Sends `chunks` (the front of the queue) in one stream and acts on the answer: drops what
  // was processed, backs off, registers again, or fails the sender. False when the sender
  // thread is done.
  bool Upload(const std::vector<ChunkPtr>& chunks, LoopState& state);
  // Turns the first `count` pending chunks (copied out by the caller) into upload chunks,
  // reading spilled ones back from `fd`. Returns how many it could read; stops at the first
  // read error, which goes to `error`.
  size_t ReadBatch(const std::vector<Pending>& batch, int fd, std::vector<ChunkPtr>* chunks,
                   absl::Status* error) const;
  // Appends `data` to the spill file (created on first use) and records where in `entry`.
  // false (spilling is then off, logged once) when the file cannot be created or written.
  bool SpillLocked(absl::string_view data, Pending* entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Deletes the spill file once nothing queued is in it and the sender thread is not reading.
  void MaybeRemoveSpillFileLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Removes the first `count` pending chunks (the ones just sent).
  void PopFront(size_t count) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ClearLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Done() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return aborted_ || !failure_.ok(); }

  CoordinatorClient* const client_;
  const farm::v1::LeaseRef lease_;
  const std::string log_prefix_;
  const std::function<bool()> reregister_;
  const Options options_;
  CallCanceller canceller_;  // cancels the upload in flight and the backoff sleep on Abort()

  mutable absl::Mutex mu_;
  std::deque<Pending> pending_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint32_t, int> pending_per_step_ ABSL_GUARDED_BY(mu_);
  int64_t memory_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t peak_memory_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t spilled_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // The spill file: open (fd >= 0) while a queued chunk is in it or the sender thread reads
  // from it; written only under mu_, at spill_size_ and beyond, so reads of queued chunks
  // outside mu_ never race with writes.
  int spill_fd_ ABSL_GUARDED_BY(mu_) = -1;
  std::string spill_path_ ABSL_GUARDED_BY(mu_);
  int64_t spill_size_ ABSL_GUARDED_BY(mu_) = 0;
  bool reading_spill_ ABSL_GUARDED_BY(mu_) = false;
  bool spill_failed_ ABSL_GUARDED_BY(mu_) = false;
  bool spill_logged_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool aborted_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status failure_ ABSL_GUARDED_BY(mu_);  // FAILED_PRECONDITION once the lease is stale
  bool started_ = false;
  std::thread thread_;
};

}  // namespace farm::agent
