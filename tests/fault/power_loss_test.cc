// Power loss, 200 times: the coordinator's store runs on a file system that loses every
// write not yet synced at a random moment. After each crash the store is reopened and
// checked: no acknowledged submission may be missing, and no lease epoch may be granted twice.
// The same run with syncing turned off must report losses: it proves the check can fail.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "coordinator/scheduler/scheduler.h"
#include "coordinator/store/rocksdb_store.h"
#include "tests/fault/crash_fs.h"
#include "tests/testing/status_matchers.h"

namespace farm::fault {
namespace {

using coordinator::EngineOptions;
using coordinator::FollowerHub;
using coordinator::RocksDbStore;
using coordinator::RocksDbStoreOptions;
using coordinator::Scheduler;
using coordinator::SchedulerOptions;

struct Summary {
  int cycles = 0;
  int64_t acked_submits = 0;
  int64_t lost = 0;
  int64_t leases = 0;
  int64_t epochs_reused = 0;
  uint64_t dropped_bytes = 0;
};

// Waits for an asynchronous scheduler answer (bounded).
template <typename T, typename F>
std::optional<absl::StatusOr<T>> Call(F&& start) {
  auto done = std::make_shared<absl::Notification>();
  auto result = std::make_shared<absl::StatusOr<T>>(absl::UnknownError("no answer"));
  start([done, result](absl::StatusOr<T> r) {
    *result = std::move(r);
    done->Notify();
  });
  if (!done->WaitForNotificationWithTimeout(absl::Seconds(30))) return std::nullopt;
  return *result;
}

Summary RunCycles(const std::string& dir, int cycles, bool sync, uint32_t seed) {
  Summary sum;
  std::mt19937 rng(seed);
  std::set<std::string> acked;  // job ids whose submit was acknowledged
  std::set<uint64_t> epochs;    // epochs of acknowledged leases
  std::mutex mu;
  for (int cycle = 0; cycle < cycles; ++cycle) {
    auto fs = std::make_shared<CrashFs>(rocksdb::FileSystem::Default());
    std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(fs);
    RocksDbStoreOptions store_options;
    store_options.path = dir;
    store_options.env = env.get();
    auto store = RocksDbStore::Open(store_options);
    if (!store.ok()) {
      ADD_FAILURE() << "cycle " << cycle << ": cannot reopen after the crash: " << store.status();
      return sum;
    }
    FollowerHub hub;
    SchedulerOptions options;
    EngineOptions engine;
    engine.sync = sync;
    auto scheduler =
        std::make_unique<Scheduler>(store->get(), common::RealClock(), &hub, options, engine);
    absl::Status init = scheduler->Init();
    if (!init.ok()) {
      ADD_FAILURE() << "cycle " << cycle << ": recovery failed: " << init;
      return sum;
    }
    // Everything acknowledged before any earlier crash must be here.
    for (auto it = acked.begin(); it != acked.end();) {
      if (scheduler->GetJob(*it).ok()) {
        ++it;
      } else {
        ++sum.lost;
        it = acked.erase(it);
      }
    }
    scheduler->Start();
    farm::v1::RegisterRequest reg;
    reg.set_name("agent");
    reg.set_slots(1000);
    reg.set_session_id("session-" + std::to_string(cycle));
    auto registered =
        Call<farm::v1::RegisterResponse>([&](auto cb) { scheduler->Register(reg, cb); });
    if (!registered.has_value() || !registered->ok()) {
      ADD_FAILURE() << "cycle " << cycle << ": register failed";
      return sum;
    }

    std::atomic<bool> crashed{false};
    std::vector<std::thread> clients;
    for (int t = 0; t < 4; ++t) {
      clients.emplace_back([&, t] {
        for (int i = 0; !crashed; ++i) {
          farm::v1::JobSpec spec;
          spec.set_name("j");
          spec.add_steps()->set_run("true");
          const std::string request_id =
              "c" + std::to_string(cycle) + "-t" + std::to_string(t) + "-" + std::to_string(i);
          auto r = Call<farm::v1::SubmitJobResponse>(
              [&](auto cb) { scheduler->Submit(spec, request_id, cb); });
          if (!r.has_value() || !r->ok()) continue;
          std::lock_guard<std::mutex> lock(mu);
          if (acked.insert((*r)->job_id()).second) ++sum.acked_submits;
        }
      });
    }
    clients.emplace_back([&] {
      farm::v1::LeaseRequest req;
      req.set_agent("agent");
      req.set_session_id(reg.session_id());
      while (!crashed) {
        auto r = Call<farm::v1::LeaseResponse>(
            [&](auto cb) { scheduler->Lease(req, 0, scheduler->NewCallId(), cb); });
        if (!r.has_value() || !r->ok() || !(*r)->has_job()) continue;
        std::lock_guard<std::mutex> lock(mu);
        ++sum.leases;
        if (!epochs.insert((*r)->lease().epoch()).second) ++sum.epochs_reused;
      }
    });
    // The crash point: a random moment while clients are submitting and leasing.
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 20'000));
    fs->Freeze();
    crashed = true;
    for (auto& t : clients) t.join();
    scheduler->Stop();
    scheduler.reset();
    store->reset();
    sum.dropped_bytes += fs->DropUnsyncedData();
    ++sum.cycles;
  }
  // A last look after the final crash.
  {
    auto store = RocksDbStore::Open({dir});
    if (!store.ok()) {
      ADD_FAILURE() << "cannot reopen after the last crash: " << store.status();
      return sum;
    }
    FollowerHub hub;
    Scheduler scheduler(store->get(), common::RealClock(), &hub, SchedulerOptions());
    if (!scheduler.Init().ok()) {
      ADD_FAILURE() << "recovery failed after the last crash";
      return sum;
    }
    for (const auto& id : acked) sum.lost += !scheduler.GetJob(id).ok();
  }
  return sum;
}

void Print(const char* name, const Summary& s) {
  std::printf(
      "%s: cycles=%d acked=%lld lost=%lld leases=%lld epochs_reused=%lld "
      "unsynced_bytes_dropped=%llu\n",
      name, s.cycles, static_cast<long long>(s.acked_submits), static_cast<long long>(s.lost),
      static_cast<long long>(s.leases), static_cast<long long>(s.epochs_reused),
      static_cast<unsigned long long>(s.dropped_bytes));
}

class PowerLossTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/farm-power-loss-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(PowerLossTest, NothingAcknowledgedIsLostAndNoEpochIsReused) {
  const Summary s = RunCycles(dir_ + "/db", 200, /*sync=*/true, /*seed=*/20261129);
  Print("power_loss(sync)", s);
  EXPECT_EQ(s.cycles, 200);
  EXPECT_GT(s.acked_submits, 0);
  EXPECT_GT(s.leases, 0);
  // The crashes really cut writes off: otherwise this test would prove nothing.
  EXPECT_GT(s.dropped_bytes, 0u);
  EXPECT_EQ(s.lost, 0);
  EXPECT_EQ(s.epochs_reused, 0);
}

TEST_F(PowerLossTest, WithoutSyncTheCheckerSeesTheLoss) {
  const Summary s = RunCycles(dir_ + "/db", 20, /*sync=*/false, /*seed=*/7);
  Print("power_loss(no sync)", s);
  EXPECT_GT(s.acked_submits, 0);
  EXPECT_GT(s.lost + s.epochs_reused, 0)
      << "with fsync turned off, power loss must lose acknowledged work; if it does not, the "
         "crash model is not cutting anything off";
}

}  // namespace
}  // namespace farm::fault
