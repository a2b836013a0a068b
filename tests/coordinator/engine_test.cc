#include "coordinator/scheduler/engine.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "coordinator/store/memory_store.h"
#include "tests/testing/status_matchers.h"

namespace farm::coordinator {
namespace {

TEST(EngineTest, ConcurrentCommandsGroupCommitAndReplyAfterTheWrite) {
  MemoryStore store;
  common::FakeClock clock;
  Engine engine(&store, &clock);
  engine.Start();
  constexpr int kThreads = 8;
  constexpr int kPerThread = 200;
  std::atomic<int> acked{0};
  std::atomic<int> acked_before_visible{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        absl::Notification done;
        const std::string key = std::to_string(t) + "/" + std::to_string(i);
        engine.Post([&, key](Txn& txn) {
          txn.Put(Cf::kJobs, key, "v");
          txn.OnCommit([&, key](const absl::Status& s) {
            EXPECT_OK(s);
            auto v = store.Get(Cf::kJobs, key);
            if (!v.ok() || !v->has_value()) acked_before_visible++;
            acked++;
            done.Notify();
          });
        });
        done.WaitForNotification();
      }
    });
  }
  for (auto& t : threads) t.join();
  engine.Stop();
  EXPECT_EQ(acked.load(), kThreads * kPerThread);
  EXPECT_EQ(acked_before_visible.load(), 0);
  // Group commit: with 8 writers in flight, groups hold several commands.
  EXPECT_LT(store.writes(), kThreads * kPerThread);
  EXPECT_EQ(engine.groups_written(), store.writes());
}

TEST(EngineTest, LaterCommandsOfAGroupSeeEarlierWrites) {
  MemoryStore store;
  common::FakeClock clock;
  Engine engine(&store, &clock);
  absl::Notification done;
  std::optional<std::string> seen;
  std::vector<std::string> scanned;
  // Posted before Start, so both run in one group.
  engine.Post([](Txn& txn) {
    txn.Put(Cf::kMeta, "k", "v1");
    txn.Put(Cf::kQueue, "b", "");
  });
  engine.Post([&](Txn& txn) {
    auto v = txn.Get(Cf::kMeta, "k");
    if (v.ok()) seen = **v;
    txn.Put(Cf::kQueue, "a", "");
    txn.Delete(Cf::kQueue, "b");
    txn.Put(Cf::kQueue, "c", "");
    EXPECT_OK(txn.Scan(Cf::kQueue, "", "", [&](absl::string_view k, absl::string_view) {
      scanned.emplace_back(k);
      return true;
    }));
    txn.OnCommit([&](const absl::Status&) { done.Notify(); });
  });
  engine.Start();
  done.WaitForNotification();
  engine.Stop();
  EXPECT_EQ(seen, "v1");
  EXPECT_EQ(scanned, (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(store.writes(), 1);
}

TEST(EngineTest, BeforeWriteRunsOnceAfterTheLastCommandAndItsWritesJoinTheGroup) {
  MemoryStore store;
  common::FakeClock clock;
  Engine engine(&store, &clock);
  std::vector<std::string> order;
  absl::Notification done;
  // Posted before Start, so all run in one group.
  engine.Post([&](Txn& txn) {
    order.push_back("first");
    txn.BeforeWrite([&](Txn& t) {
      order.push_back("before write");
      t.Put(Cf::kMeta, "summary", std::to_string(order.size()));
    });
  });
  engine.Post([&](Txn& txn) {
    order.push_back("second");
    txn.OnCommit([&](const absl::Status&) { done.Notify(); });
  });
  engine.Start();
  done.WaitForNotification();
  engine.Stop();
  EXPECT_EQ(order, (std::vector<std::string>{"first", "second", "before write"}));
  EXPECT_EQ(store.writes(), 1);
  ASSERT_OK_AND_ASSIGN(auto v, store.Get(Cf::kMeta, "summary"));
  EXPECT_EQ(v, "3");
}

TEST(EngineTest, AFailedWriteRunsTheHandlerThenFailsEveryCallbackOfTheGroup) {
  MemoryStore store;
  common::FakeClock clock;
  Engine engine(&store, &clock);
  std::atomic<int> handler_calls{0};
  engine.SetWriteFailureHandler([&](const absl::Status&) { handler_calls++; });
  store.FailWrites(absl::ResourceExhaustedError("disk full"));
  engine.Start();
  absl::Notification done;
  absl::Status result;
  engine.Post([&](Txn& txn) {
    txn.Put(Cf::kJobs, "x", "y");
    txn.OnCommit([&](const absl::Status& s) {
      result = s;
      done.Notify();
    });
  });
  done.WaitForNotification();
  engine.Stop();
  EXPECT_THAT(result, farm::testing::StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_EQ(handler_calls.load(), 1);
  ASSERT_OK_AND_ASSIGN(auto v, store.Get(Cf::kJobs, "x"));
  EXPECT_FALSE(v.has_value());
}

TEST(EngineTest, TimersFireWhenTheirTimeComes) {
  MemoryStore store;
  common::FakeClock clock;
  Engine engine(&store, &clock);
  engine.Start();
  std::atomic<bool> fired{false};
  absl::Notification armed;
  engine.Post([&](Txn&) {
    engine.AddTimer(clock.MonotonicMs() + 1000, [&](Txn&) { fired = true; });
    armed.Notify();
  });
  armed.WaitForNotification();
  absl::Notification ran;
  engine.Post([&](Txn&) { ran.Notify(); });
  ran.WaitForNotification();
  EXPECT_FALSE(fired.load());
  clock.AdvanceMs(1000);
  absl::Notification after;
  engine.Post([&](Txn&) {});
  engine.Post([&](Txn&) { after.Notify(); });
  after.WaitForNotification();
  engine.Stop();
  EXPECT_TRUE(fired.load());
}

TEST(EngineTest, PostAfterStopIsRefused) {
  MemoryStore store;
  common::FakeClock clock;
  Engine engine(&store, &clock);
  engine.Start();
  engine.Stop();
  EXPECT_FALSE(engine.Post([](Txn&) {}));
}

}  // namespace
}  // namespace farm::coordinator
