// Streams one attempt's step output to the coordinator with byte offsets, resending after any
// failure until the coordinator has acknowledged (committed) it.
//
// Design: Append() queues chunks in memory; one background thread opens an UploadLogs stream,
// writes what is pending (at most max_stream_bytes per stream), finishes it, and drops the
// chunks the response confirms. On UNAVAILABLE / DEADLINE_EXCEEDED it backs off and resends
// from the first unconfirmed chunk; the coordinator skips bytes it already has, so resending
// is always safe. Memory is bounded: when max_buffered_bytes are pending, Append() blocks,
// which pauses the step's reader and so the step itself (back-pressure through the pipe).
// Spilling to disk instead of blocking is future work.
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
    int64_t max_buffered_bytes = 64 << 20;
    int64_t max_stream_bytes = 4 << 20;
    int64_t initial_backoff_ms = 100;
    int64_t max_backoff_ms = 5'000;
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
  // step must be appended in offset order without gaps. Blocks while the buffer is full.
  // Returns false (and drops the data) once the sender was aborted or the lease went stale.
  bool Append(uint32_t step_index, int64_t offset, absl::string_view data);

  // Blocks until everything appended for `step_index` is committed by the coordinator.
  // FAILED_PRECONDITION: the coordinator refused the lease (stale); CANCELLED: Abort().
  absl::Status Flush(uint32_t step_index);

  // Drops all pending output and cancels the upload in flight. Idempotent; any thread.
  void Abort();

  // Lets the sender thread send what is pending, then joins it. Blocks while the coordinator
  // is unreachable and output is pending: Flush() every step or Abort() first.
  void Stop();

 private:
  using ChunkPtr = std::shared_ptr<const farm::v1::LogUploadChunk>;

  void Loop();
  // Removes the first `count` pending chunks (the ones just sent).
  void PopFront(size_t count) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Done() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return aborted_ || !failure_.ok(); }

  CoordinatorClient* const client_;
  const farm::v1::LeaseRef lease_;
  const std::string log_prefix_;
  const std::function<bool()> reregister_;
  const Options options_;
  CallCanceller canceller_;  // cancels the upload in flight and the backoff sleep on Abort()

  absl::Mutex mu_;
  std::deque<ChunkPtr> pending_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint32_t, int> pending_per_step_ ABSL_GUARDED_BY(mu_);
  int64_t buffered_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool aborted_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status failure_ ABSL_GUARDED_BY(mu_);  // FAILED_PRECONDITION once the lease is stale
  bool started_ = false;
  std::thread thread_;
};

}  // namespace farm::agent
