// A small fixed pool of threads for blocking file I/O (blob reads, writes, fsyncs) so that the
// gRPC callback threads never wait on the disk. Work items run in FIFO order across the pool;
// items posted by one caller may run on different threads, so a caller that needs ordering
// posts its next item only after the previous one ran (the CAS reactors do).
//
// Thread-safe. The destructor runs every item already posted (including items that those post),
// then joins the threads; posting from outside once the destructor has started is a bug.
#pragma once

#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace farm::common {

// Names the calling thread as the kernel shows it (the first 15 bytes of `name`).
void SetThreadName(const std::string& name);

class IoPool {
 public:
  // `name` names the threads (at most 15 bytes are kept: `top -H`, profiles).
  explicit IoPool(int threads, std::string name = "io-pool");
  ~IoPool();
  IoPool(const IoPool&) = delete;
  IoPool& operator=(const IoPool&) = delete;

  // Queues fn; never runs it on the calling thread (callers may hold locks).
  void Post(std::function<void()> fn);

 private:
  void Run();
  bool HasWorkOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || !queue_.empty();
  }

  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace farm::common
