// Full disks. The coordinator's data directory lives on a small tmpfs (mounted by the test in a
// private mount namespace, so that nothing outlives it; it needs root, and skips saying so
// otherwise) that is then filled up:
//
// - In-process, with the store's free-space reserve turned off, RocksDB itself runs out of
//   space in the middle of a write: the store must answer RESOURCE_EXHAUSTED, keep serving
//   reads, and once space is freed, reopen the database by itself; nothing acknowledged lost.
//   The same through the scheduler (its memory is rebuilt from the store after each failed
//   group), so the coordinator's real domain code meets the real ENOSPC.
// - With the reserve (the default), writes are refused before RocksDB runs out of space, and
//   work again the moment space is back.
// - On the real binaries: jobs with large env values fill the disk until Submit is refused with
//   RESOURCE_EXHAUSTED (farmctl prints one line); the coordinator keeps running and serving
//   reads; once the space is freed it serves again by itself; every acknowledged job runs and
//   survives a kill -9 afterwards (checked by checker.h).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "coordinator/logs/follower_hub.h"
#include "coordinator/scheduler/scheduler.h"
#include "coordinator/store/rocksdb_store.h"
#include "tests/fault/checker.h"
#include "tests/testing/mini_farm.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace farm::fault {
namespace {

using coordinator::Cf;
using coordinator::RocksDbStore;
using coordinator::RocksDbStoreOptions;
using farm::testing::MiniFarm;
using farm::testing::StatusIs;
using farm::testing::TempDir;
using farm::testing::WaitFor;
using ::testing::HasSubstr;

constexpr int64_t kMiB = int64_t{1} << 20;

// Moves the calling thread (the test's main thread, which also starts the farm's processes) into
// a private mount namespace, once: the tmpfs mounts below are then invisible to the rest of the
// machine and vanish with this process and its children even if the test is killed.
absl::Status EnterPrivateMountNamespace() {
  static const absl::Status* const entered = [] {
    if (unshare(CLONE_NEWNS) != 0) {
      const int err = errno;
      const std::string message = absl::StrCat("unshare(CLONE_NEWNS): ", strerror(err));
      return new absl::Status(err == EPERM ? absl::PermissionDeniedError(message)
                                           : absl::InternalError(message));
    }
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
      return new absl::Status(
          absl::InternalError(absl::StrCat("making / private: ", strerror(errno))));
    }
    return new absl::Status();
  }();
  return *entered;
}

// A tmpfs mounted for one test; unmounted when it goes away (lazily if still busy).
class Tmpfs {
 public:
  // PERMISSION_DENIED when this process may not mount (not root, or no CAP_SYS_ADMIN).
  static absl::StatusOr<std::unique_ptr<Tmpfs>> Mount(const std::string& path, int64_t bytes) {
    FARM_RETURN_IF_ERROR(EnterPrivateMountNamespace());
    std::error_code ec;
    std::filesystem::create_directories(path, ec);
    if (ec) return absl::InternalError(absl::StrCat("mkdir ", path, ": ", ec.message()));
    const std::string options = absl::StrCat("size=", bytes, ",mode=0755");
    if (mount("farm-fault-tmpfs", path.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) !=
        0) {
      const int err = errno;
      const std::string message =
          absl::StrCat("mount -t tmpfs -o ", options, " ", path, ": ", strerror(err));
      if (err == EPERM || err == EACCES) return absl::PermissionDeniedError(message);
      return absl::InternalError(message);
    }
    return std::unique_ptr<Tmpfs>(new Tmpfs(path));
  }
  ~Tmpfs() { (void)Unmount(); }

  absl::Status Unmount() {
    if (!mounted_) return absl::OkStatus();
    if (umount2(path_.c_str(), 0) != 0) {
      const int err = errno;
      // Still in use (a process that a failed test left running): detach it anyway.
      if (umount2(path_.c_str(), MNT_DETACH) != 0) {
        return absl::InternalError(absl::StrCat("umount ", path_, ": ", strerror(errno)));
      }
      mounted_ = false;
      return absl::FailedPreconditionError(
          absl::StrCat("umount ", path_, ": ", strerror(err), " (detached lazily)"));
    }
    mounted_ = false;
    return absl::OkStatus();
  }

 private:
  explicit Tmpfs(std::string path) : path_(std::move(path)) {}
  std::string path_;
  bool mounted_ = true;
};

int64_t FreeBytes(const std::string& path) {
  struct statvfs fs;
  if (statvfs(path.c_str(), &fs) != 0) return -1;
  return static_cast<int64_t>(fs.f_bavail) * static_cast<int64_t>(fs.f_frsize);
}

// Writes a file of up to `bytes` (stopping quietly when the disk is full); the bytes written.
int64_t WriteFiller(const std::string& path, int64_t bytes) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return 0;
  const std::string chunk(kMiB, 'f');
  int64_t written = 0;
  while (written < bytes) {
    const size_t n = static_cast<size_t>(std::min<int64_t>(bytes - written, kMiB));
    const ssize_t w = write(fd, chunk.data(), n);
    if (w <= 0) break;
    written += w;
  }
  close(fd);
  return written;
}

// Letters that LZ4 cannot shrink much, so that what is written is what the disk holds.
std::string Noise(std::mt19937& rng, size_t bytes) {
  std::uniform_int_distribution<int> letter('a', 'z');
  std::string s(bytes, ' ');
  for (char& c : s) c = static_cast<char>(letter(rng));
  return s;
}

class DiskFullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(TempDir dir, TempDir::Create("farm-disk-full"));
    dir_ = std::make_unique<TempDir>(std::move(dir));
  }
  void TearDown() override {
    // The coordinator holds files on the tmpfs: stop it before unmounting, and unmount before
    // the farm's directory (which holds the mount point) is removed.
    if (farm_ != nullptr && farm_->coordinator() != nullptr && farm_->coordinator()->IsRunning()) {
      EXPECT_OK(farm_->KillCoordinator());
    }
    if (mount_ != nullptr) EXPECT_OK(mount_->Unmount());
    mount_.reset();
    farm_.reset();
  }

  // Mounts a tmpfs of `bytes` at `path`, or skips the test (returns false) when not permitted.
  bool MountTmpfs(const std::string& path, int64_t bytes) {
    absl::StatusOr<std::unique_ptr<Tmpfs>> mounted = Tmpfs::Mount(path, bytes);
    if (absl::IsPermissionDenied(mounted.status())) {
      skip_reason_ = absl::StrCat("the disk-full test needs to mount a tmpfs (run as root): ",
                                  mounted.status().message());
      return false;
    }
    EXPECT_OK(mounted.status());
    if (!mounted.ok()) return false;
    mount_ = *std::move(mounted);
    return true;
  }

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<MiniFarm> farm_;  // for the tests on the real binaries
  std::unique_ptr<Tmpfs> mount_;
  std::string skip_reason_;
};

#define MOUNT_OR_SKIP(path, bytes)                             \
  do {                                                         \
    if (!MountTmpfs(path, bytes)) {                            \
      if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_; \
      return;                                                  \
    }                                                          \
  } while (false)

coordinator::WriteBatch Batch(const std::string& key, std::string value) {
  coordinator::WriteBatch batch;
  batch.Put(Cf::kMeta, key, std::move(value));
  return batch;
}

TEST_F(DiskFullTest, StoreMeetsEnospcThenReopensByItselfOnceSpaceIsBack) {
  const std::string mnt = dir_->Join("mnt");
  // Room for a reopen to replay and flush a full memtable once the filler is gone.
  MOUNT_OR_SKIP(mnt, 160 * kMiB);
  RocksDbStoreOptions options;
  options.path = mnt + "/db";
  options.min_free_bytes = 0;  // let RocksDB itself run out of space
  options.reopen_interval_ms = 200;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<RocksDbStore> store, RocksDbStore::Open(options));
  ASSERT_OK(store->Write(Batch("first", "x"), /*sync=*/true));
  // Leave about 24 MiB: less than one memtable, so the disk fills in the middle of the run.
  const std::string filler = mnt + "/filler";
  WriteFiller(filler, FreeBytes(mnt) - 24 * kMiB);

  std::mt19937 rng(4);
  std::vector<std::string> acked = {"first"};
  absl::Status failure;
  for (int i = 0; i < 2000 && failure.ok(); ++i) {
    const std::string key = absl::StrCat("k", i);
    failure = store->Write(Batch(key, Noise(rng, 256 << 10)), /*sync=*/true);
    if (failure.ok()) acked.push_back(key);
  }
  std::cout << "acknowledged " << acked.size() << " writes, then: " << failure << std::endl;
  ASSERT_THAT(failure, StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(std::string(failure.message()), HasSubstr("No space left on device"));

  // Full: writes keep failing cleanly, reads keep working.
  for (int i = 0; i < 3; ++i) {
    absl::Status again = store->Write(Batch("while-full", "x"), /*sync=*/true);
    EXPECT_FALSE(again.ok());
    EXPECT_TRUE(absl::IsResourceExhausted(again) || absl::IsUnavailable(again)) << again;
  }
  for (const std::string& key : {acked.front(), acked.back()}) {
    ASSERT_OK_AND_ASSIGN(std::optional<std::string> value, store->Get(Cf::kMeta, key));
    EXPECT_TRUE(value.has_value()) << key;
  }

  // Space comes back: the store serves writes again by itself (it reopens the database).
  ASSERT_EQ(unlink(filler.c_str()), 0);
  absl::Status last;
  ASSERT_TRUE(WaitFor(
                  [&] {
                    last = store->Write(Batch("after", "x"), /*sync=*/true);
                    return last.ok();
                  },
                  absl::Seconds(30), "a write to succeed after space was freed",
                  absl::Milliseconds(50))
                  .ok())
      << last;
  EXPECT_GE(store->reopens(), 1);
  for (int i = 0; i < 20; ++i) {
    const std::string key = absl::StrCat("post", i);
    ASSERT_OK(store->Write(Batch(key, Noise(rng, 64 << 10)), /*sync=*/true));
    acked.push_back(key);
  }
  acked.push_back("after");

  // Everything acknowledged, before and after, is there, also after opening the store anew.
  store.reset();
  ASSERT_OK_AND_ASSIGN(store, RocksDbStore::Open(options));
  int missing = 0;
  for (const std::string& key : acked) {
    ASSERT_OK_AND_ASSIGN(std::optional<std::string> value, store->Get(Cf::kMeta, key));
    missing += !value.has_value();
  }
  EXPECT_EQ(missing, 0) << "of " << acked.size() << " acknowledged writes";
  store.reset();
}

TEST_F(DiskFullTest, StoreRefusesWritesBelowItsReserveAndResumesAtOnce) {
  const std::string mnt = dir_->Join("mnt");
  MOUNT_OR_SKIP(mnt, 96 * kMiB);
  RocksDbStoreOptions options;
  options.path = mnt + "/db";
  options.min_free_bytes = 48 * kMiB;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<RocksDbStore> store, RocksDbStore::Open(options));
  ASSERT_OK(store->Write(Batch("before", "x"), /*sync=*/true));
  const std::string filler = mnt + "/filler";
  WriteFiller(filler, 1 << 30);  // everything there is
  EXPECT_LT(FreeBytes(mnt), kMiB);

  absl::Status refused = store->Write(Batch("refused", "x"), /*sync=*/true);
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(std::string(refused.message()), HasSubstr("disk is full"));
  EXPECT_THAT(std::string(refused.message()), HasSubstr("48 MiB"));
  ASSERT_OK_AND_ASSIGN(std::optional<std::string> before, store->Get(Cf::kMeta, "before"));
  EXPECT_TRUE(before.has_value());

  ASSERT_EQ(unlink(filler.c_str()), 0);
  EXPECT_OK(store->Write(Batch("after", "x"), /*sync=*/true));
  // RocksDB never saw the full disk: nothing had to be reopened.
  EXPECT_EQ(store->reopens(), 0);
  ASSERT_OK_AND_ASSIGN(std::optional<std::string> refused_value, store->Get(Cf::kMeta, "refused"));
  EXPECT_FALSE(refused_value.has_value());
  store.reset();
}

// Waits for an asynchronous scheduler answer (bounded).
template <typename T, typename F>
absl::StatusOr<T> Call(F&& start) {
  auto done = std::make_shared<absl::Notification>();
  auto result = std::make_shared<absl::StatusOr<T>>(absl::DeadlineExceededError("no answer"));
  start([done, result](absl::StatusOr<T> r) {
    *result = std::move(r);
    done->Notify();
  });
  if (!done->WaitForNotificationWithTimeout(absl::Seconds(30))) {
    return absl::DeadlineExceededError("the scheduler did not answer in 30 s");
  }
  return *result;
}

TEST_F(DiskFullTest, SchedulerSurvivesEnospcInItsWritesAndLosesNoAcknowledgedSubmit) {
  const std::string mnt = dir_->Join("mnt");
  MOUNT_OR_SKIP(mnt, 160 * kMiB);
  RocksDbStoreOptions options;
  options.path = mnt + "/db";
  options.min_free_bytes = 0;  // the real ENOSPC, inside RocksDB
  options.reopen_interval_ms = 200;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<RocksDbStore> store, RocksDbStore::Open(options));
  coordinator::FollowerHub hub;
  auto scheduler = std::make_unique<coordinator::Scheduler>(store.get(), common::RealClock(), &hub,
                                                            coordinator::SchedulerOptions());
  ASSERT_OK(scheduler->Init());
  scheduler->Start();
  farm::v1::RegisterRequest reg;
  reg.set_name("disk-agent");
  reg.set_slots(4);
  reg.set_session_id("s1");
  ASSERT_OK(
      Call<farm::v1::RegisterResponse>([&](auto cb) { scheduler->Register(reg, cb); }).status());

  std::mt19937 rng(9);
  auto submit = [&](int n, size_t env_bytes) {
    farm::v1::JobSpec spec;
    spec.set_name(absl::StrCat("big-", n));
    spec.add_steps()->set_run("true");
    for (size_t i = 0; i * (64 << 10) < env_bytes; ++i) {
      (*spec.mutable_env())[absl::StrCat("V", i)] = Noise(rng, 64 << 10);
    }
    return Call<farm::v1::SubmitJobResponse>(
        [&](auto cb) { scheduler->Submit(spec, absl::StrCat("req-", n), cb); });
  };
  ASSERT_OK(submit(0, 0).status());
  const std::string filler = mnt + "/filler";
  WriteFiller(filler, FreeBytes(mnt) - 24 * kMiB);

  std::set<std::string> acked;
  absl::Status failure;
  int n = 1;
  for (; n < 500 && failure.ok(); ++n) {
    absl::StatusOr<farm::v1::SubmitJobResponse> r = submit(n, 512 << 10);
    if (r.ok()) {
      acked.insert(r->job_id());
    } else {
      failure = r.status();
    }
    // Leases write too: take one now and then, as an agent would.
    if (n % 4 == 0) {
      farm::v1::LeaseRequest lease;
      lease.set_agent("disk-agent");
      lease.set_session_id("s1");
      (void)Call<farm::v1::LeaseResponse>(
          [&](auto cb) { scheduler->Lease(lease, 0, scheduler->NewCallId(), cb); });
    }
  }
  std::cout << "acknowledged " << acked.size() << " submits, then: " << failure << std::endl;
  ASSERT_THAT(failure, StatusIs(absl::StatusCode::kResourceExhausted));
  // Still full: refused again, and the job of a refused submit does not exist.
  absl::StatusOr<farm::v1::SubmitJobResponse> again = submit(n++, 512 << 10);
  EXPECT_FALSE(again.ok());
  for (const std::string& id : acked) {
    EXPECT_TRUE(scheduler->GetJob(id).ok()) << id;
  }

  ASSERT_EQ(unlink(filler.c_str()), 0);
  absl::Status last;
  ASSERT_TRUE(WaitFor(
                  [&] {
                    absl::StatusOr<farm::v1::SubmitJobResponse> r = submit(n++, 0);
                    last = r.status();
                    if (r.ok()) acked.insert(r->job_id());
                    return r.ok();
                  },
                  absl::Seconds(30), "a submit to succeed after space was freed",
                  absl::Milliseconds(50))
                  .ok())
      << last;
  EXPECT_GE(store->reopens(), 1);

  // Restart on the same data: every acknowledged job is there.
  scheduler->Stop();
  scheduler.reset();
  store.reset();
  ASSERT_OK_AND_ASSIGN(store, RocksDbStore::Open(options));
  coordinator::Scheduler reopened(store.get(), common::RealClock(), &hub,
                                  coordinator::SchedulerOptions());
  ASSERT_OK(reopened.Init());
  int missing = 0;
  for (const std::string& id : acked) missing += !reopened.GetJob(id).ok();
  EXPECT_EQ(missing, 0) << "of " << acked.size() << " acknowledged submits";
}

TEST_F(DiskFullTest, CoordinatorRefusesSubmitsWhileFullAndServesAgainByItself) {
  ASSERT_OK_AND_ASSIGN(farm_, MiniFarm::Create({.tls = true}));
  MiniFarm* farm = farm_.get();
  const std::string data = farm->coordinator_data_dir();
  // Big enough that freeing the filler gives real headroom above the reserve: a WAL
  // preallocation and a memtable flush later, writes must still pass.
  MOUNT_OR_SKIP(data, 512 * kMiB);
  // A short TTL: attempts the agent gives up while the disk is full come back sooner.
  ASSERT_OK(farm->StartCoordinator({"--lease_ttl=10s"}));
  farm::testing::AgentOptions agent;
  agent.name = "disk-a1";
  agent.slots = 2;
  ASSERT_OK(farm->StartAgent(agent));
  ASSERT_OK(farm->WaitForAgents({"disk-a1"}));
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<Checker> checker,
      Checker::Create(farm->coordinator_address(), {.security = farm->admin_security()}));
  const std::string effects = farm->Path("effects.log");  // not on the tmpfs

  std::mt19937 rng(11);
  auto big_job = [&](int n) {
    farm::v1::JobSpec spec;
    spec.set_name(absl::StrCat("big-", n));
    for (int i = 0; i < 8; ++i) (*spec.mutable_env())[absl::StrCat("V", i)] = Noise(rng, 64 << 10);
    *spec.add_steps() = EffectStep(effects);
    return spec;
  };
  // After this one the store has its log preallocated.
  ASSERT_OK_AND_ASSIGN(const std::string first, checker->Submit(big_job(0)));
  // Leave some room above the coordinator's reserve (128 MiB), then fill it with jobs.
  const std::string filler = data + "/filler";
  WriteFiller(filler, FreeBytes(data) - (128 + 24) * kMiB);

  absl::Status refused;
  int n = 1;
  for (; n < 400 && refused.ok(); ++n) refused = checker->Submit(big_job(n)).status();
  std::cout << "acknowledged " << checker->acked() << " big submits, then: " << refused
            << std::endl;
  ASSERT_THAT(refused, StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(std::string(refused.message()), HasSubstr("disk is full"));

  // What a user sees: one line from farmctl, exit code 4; the coordinator keeps running and
  // answers reads.
  ASSERT_OK_AND_ASSIGN(std::string job_file, farm->WriteJobFile("steps: [{run: 'true'}]\n"));
  ASSERT_OK_AND_ASSIGN(farm::testing::CommandResult result, farm->RunFarmctl({"submit", job_file}));
  EXPECT_EQ(result.exit_code, 4) << result.DebugString();
  std::vector<std::string> lines = absl::StrSplit(result.err, '\n', absl::SkipEmpty());
  EXPECT_EQ(lines.size(), 1u) << result.err;
  EXPECT_THAT(result.err, HasSubstr("disk is full")) << result.err;
  std::cout << "farmctl while full: " << result.err;
  ASSERT_TRUE(farm->coordinator()->IsRunning());
  ASSERT_OK_AND_ASSIGN(farm::v1::Job read, farm->GetJob(first));
  EXPECT_EQ(read.id(), first);

  // Space comes back: the farm serves again by itself.
  ASSERT_EQ(unlink(filler.c_str()), 0);
  const absl::Time freed = absl::Now();
  absl::Status last;
  ASSERT_TRUE(WaitFor(
                  [&] {
                    last = checker->Submit(big_job(n++)).status();
                    return last.ok();
                  },
                  absl::Seconds(30), "a submit to succeed after space was freed",
                  absl::Milliseconds(100))
                  .ok())
      << last;
  std::cout << "serving again " << absl::FormatDuration(absl::Now() - freed)
            << " after the space was freed" << std::endl;
  for (int i = 0; i < 10; ++i) ASSERT_OK(checker->Submit(big_job(n++)).status());

  // Every acknowledged job runs, no refused one exists, and all of it survives a kill -9.
  ASSERT_OK_AND_ASSIGN(CheckReport report, checker->WaitAndCheck(absl::Seconds(90), effects));
  std::cout << report.Line() << std::endl;
  EXPECT_TRUE(report.ok()) << report.Line() << "\n" << absl::StrJoin(report.problems, "\n");
  EXPECT_GT(report.submitted, report.acked);  // some were refused
  ASSERT_OK(farm->KillCoordinator());
  ASSERT_OK(farm->RestartCoordinator());
  ASSERT_OK_AND_ASSIGN(CheckReport after, checker->WaitAndCheck(absl::Seconds(30), effects));
  std::cout << "after kill -9: " << after.Line() << std::endl;
  EXPECT_TRUE(after.ok()) << after.Line() << "\n" << absl::StrJoin(after.problems, "\n");

  EXPECT_OK(farm->StopCoordinator().status());  // a clean stop works on a disk that was full
}

}  // namespace
}  // namespace farm::fault
