#include "common/io_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "absl/synchronization/mutex.h"

namespace farm::common {
namespace {

TEST(IoPoolTest, RunsEverythingPostedBeforeItGoesAway) {
  std::atomic<int> ran{0};
  absl::Mutex mu;
  std::set<std::thread::id> threads;
  const std::thread::id self = std::this_thread::get_id();
  {
    IoPool pool(3);
    for (int i = 0; i < 100; ++i) {
      pool.Post([&, i] {
        {
          absl::MutexLock lock(&mu);
          threads.insert(std::this_thread::get_id());
        }
        ++ran;
        // Work that posts more work (as the CAS reactors do) still runs.
        if (i % 10 == 0) pool.Post([&] { ++ran; });
      });
    }
  }
  EXPECT_EQ(ran.load(), 110);
  EXPECT_EQ(threads.count(self), 0u);  // never on the posting thread
  EXPECT_LE(threads.size(), 3u);
}

}  // namespace
}  // namespace farm::common
