// coordinator/backup: backups of a real store (RocksDB) and CAS in a temp dir, their validation
// and restore; the CAS's eviction hold; and the job counts admin status reads.
#include "coordinator/backup/backup.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/digest.h"
#include "coordinator/cas/file_blob_store.h"
#include "coordinator/scheduler/job_counts.h"
#include "coordinator/store/keys.h"
#include "coordinator/store/memory_store.h"
#include "coordinator/store/rocksdb_store.h"
#include "tests/coordinator/cas/blob_testing.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace farm::coordinator {
namespace {

namespace fs = std::filesystem;
using ::farm::testing::StatusIs;
using ::farm::testing::StatusIsWithMessage;
using ::farm::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::vector<std::string> Entries(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// A data dir: the store and the CAS as the coordinator lays them out.
struct DataDir {
  static std::unique_ptr<DataDir> Open(const std::string& path, int64_t cas_max_bytes = 1 << 30) {
    auto d = std::make_unique<DataDir>();
    RocksDbStoreOptions store_options;
    store_options.path = path + "/db";
    store_options.min_free_bytes = 0;
    auto store = RocksDbStore::Open(store_options);
    EXPECT_OK(store.status());
    if (!store.ok()) return nullptr;
    d->store = *std::move(store);
    FileBlobStoreOptions cas;
    cas.root = path + "/cas";
    cas.max_bytes = cas_max_bytes;
    cas.min_age_ms = 0;
    auto blobs = FileBlobStore::Open(cas, d->store.get(), &d->clock);
    EXPECT_OK(blobs.status());
    if (!blobs.ok()) return nullptr;
    d->cas = *std::move(blobs);
    return d;
  }
  common::FakeClock clock;
  std::unique_ptr<RocksDbStore> store;
  std::unique_ptr<FileBlobStore> cas;  // after store: destroyed first
};

class BackupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(TempDir tmp, TempDir::Create("backup-test"));
    tmp_.emplace(std::move(tmp));
    live_ = DataDir::Open(Join("live"));
    ASSERT_NE(live_, nullptr);
    for (uint32_t i = 0; i < 3; ++i) {
      blobs_.push_back(cas_testing::PutRandom(*live_->cas, 1000 * (i + 1), i));
    }
    WriteBatch batch;
    batch.Put(Cf::kJobs, keys::JobKey(1), "job one");
    ASSERT_OK(live_->store->Write(batch, true));
    maker_ = std::make_unique<BackupMaker>(live_->store.get(), live_->cas.get(), &live_->clock,
                                           Join("live"), "test");
  }

  std::string BlobIn(const std::string& root, const common::Digest& d) {
    return absl::StrCat(root, "/cas/blobs/", d.hash.substr(0, 2), "/", d.hash);
  }

  std::string Join(const std::string& relative) const { return tmp_->Join(relative); }
  std::string Root() const { return tmp_->path(); }

  std::optional<TempDir> tmp_;
  std::unique_ptr<DataDir> live_;
  std::vector<common::Digest> blobs_;
  std::unique_ptr<BackupMaker> maker_;
};

TEST_F(BackupTest, ARestoredDataDirHasTheRecordsAndTheBlobs) {
  const std::string dir = Join("b");
  ASSERT_OK_AND_ASSIGN(BackupSummary made, maker_->CreateBackup(dir));
  EXPECT_EQ(made.blobs, 3);
  EXPECT_EQ(made.blob_bytes, 6000);
  EXPECT_GT(made.db_files, 0);
  EXPECT_GT(made.linked_files, 0);  // one file system here
  EXPECT_THAT(Entries(Root()), ::testing::ElementsAre("b", "live"));
  EXPECT_OK(ValidateBackup(dir));

  // Changes after the backup are not in it.
  WriteBatch later;
  later.Put(Cf::kJobs, keys::JobKey(2), "job two");
  ASSERT_OK(live_->store->Write(later, true));

  ASSERT_OK_AND_ASSIGN(RestoreSummary restored, RestoreBackup(dir, Join("new")));
  EXPECT_EQ(restored.blobs, 3);
  std::unique_ptr<DataDir> again = DataDir::Open(Join("new"));
  ASSERT_NE(again, nullptr);
  ASSERT_OK_AND_ASSIGN(auto one, again->store->Get(Cf::kJobs, keys::JobKey(1)));
  EXPECT_EQ(one, "job one");
  ASSERT_OK_AND_ASSIGN(auto two, again->store->Get(Cf::kJobs, keys::JobKey(2)));
  EXPECT_FALSE(two.has_value());
  for (uint32_t i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(std::string data, again->cas->Read(blobs_[i]));
    EXPECT_EQ(data, cas_testing::RandomBytes(1000 * (i + 1), i));
  }
  EXPECT_OK(CheckNoUnfinishedRestore(Join("new")));
  // The backup is as it was (the restored store wrote only to files of its own).
  again.reset();
  EXPECT_OK(ValidateBackup(dir));
}

// Another file system (tmpfs in /dev/shm): no hard links, every file copied, both ways.
TEST_F(BackupTest, AcrossFileSystemsEveryFileIsCopied) {
  struct stat shm, here;
  if (::stat("/dev/shm", &shm) != 0 || ::stat(Root().c_str(), &here) != 0 ||
      shm.st_dev == here.st_dev || ::access("/dev/shm", W_OK) != 0) {
    GTEST_SKIP() << "needs a writable /dev/shm on a file system other than " << Root();
  }
  const std::string dir = absl::StrCat("/dev/shm/farm-backup-test-", ::getpid());
  fs::remove_all(dir);
  ASSERT_OK_AND_ASSIGN(BackupSummary made, maker_->CreateBackup(dir));
  EXPECT_EQ(made.linked_files, 0);
  EXPECT_EQ(made.copied_files, made.db_files + 3);
  EXPECT_OK(ValidateBackup(dir));
  ASSERT_OK_AND_ASSIGN(RestoreSummary restored, RestoreBackup(dir, Join("new")));
  fs::remove_all(dir);
  EXPECT_EQ(restored.linked_files, 0);
  std::unique_ptr<DataDir> again = DataDir::Open(Join("new"));
  ASSERT_NE(again, nullptr);
  for (uint32_t i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(std::string data, again->cas->Read(blobs_[i]));
    EXPECT_EQ(data, cas_testing::RandomBytes(1000 * (i + 1), i));
  }
}

TEST_F(BackupTest, ABadTargetIsRefusedAndLeavesNothing) {
  fs::create_directories(Join("exists"));
  EXPECT_THAT(
      maker_->CreateBackup(Join("exists")).status(),
      StatusIsWithMessage(absl::StatusCode::kAlreadyExists,
                          HasSubstr(absl::StrCat("backup dir ", Join("exists"), " exists"))));
  EXPECT_THAT(maker_->CreateBackup(Join("exists/")).status(),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(
      maker_->CreateBackup(Join("no/such/dir")).status(),
      StatusIsWithMessage(absl::StatusCode::kFailedPrecondition, HasSubstr("does not exist")));
  EXPECT_THAT(maker_->CreateBackup("relative").status(),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("absolute")));
  EXPECT_THAT(
      maker_->CreateBackup(Join("live/cas/b")).status(),
      StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("is inside the data dir")));
  EXPECT_THAT(Entries(Root()), ::testing::ElementsAre("exists", "live"));
  EXPECT_THAT(Entries(Join("exists")), IsEmpty());
}

TEST_F(BackupTest, ValidationNamesWhatIsWrong) {
  const std::string dir = Join("b");
  ASSERT_OK(maker_->CreateBackup(dir).status());

  // An altered blob: replaced, not written through its link into the live store.
  const std::string blob = BlobIn(dir, blobs_[1]);
  std::string bytes = cas_testing::RandomBytes(blobs_[1].size, 99);
  ASSERT_EQ(::unlink(blob.c_str()), 0);
  ASSERT_OK(farm::testing::WriteFile(blob, bytes));
  EXPECT_THAT(ValidateBackup(dir),
              StatusIsWithMessage(absl::StatusCode::kDataLoss,
                                  HasSubstr(absl::StrCat("is corrupted: blob ", blobs_[1].hash,
                                                         " does not match its SHA-256"))));
  EXPECT_THAT(RestoreBackup(dir, Join("new")).status(), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_FALSE(fs::exists(Join("new")));
  ASSERT_OK_AND_ASSIGN(std::string live, live_->cas->Read(blobs_[1]));  // untouched
  EXPECT_EQ(live, cas_testing::RandomBytes(blobs_[1].size, 1));

  ASSERT_EQ(::unlink(blob.c_str()), 0);
  EXPECT_THAT(ValidateBackup(dir),
              StatusIsWithMessage(absl::StatusCode::kDataLoss,
                                  HasSubstr(absl::StrCat(blobs_[1].hash, " is missing"))));

  ASSERT_EQ(::unlink(absl::StrCat(dir, "/", kBackupManifestName).c_str()), 0);
  EXPECT_THAT(ValidateBackup(dir), StatusIsWithMessage(absl::StatusCode::kFailedPrecondition,
                                                       HasSubstr("is not a farm backup")));
  EXPECT_THAT(
      ValidateBackup(Join("nothing")),
      StatusIsWithMessage(absl::StatusCode::kFailedPrecondition, HasSubstr("does not exist")));
}

TEST_F(BackupTest, AnAlteredStoreFileIsNamed) {
  const std::string dir = Join("b");
  ASSERT_OK(maker_->CreateBackup(dir).status());
  const std::string current = dir + "/db/CURRENT";
  ASSERT_OK_AND_ASSIGN(std::string text, farm::testing::ReadFile(current));
  text[0] = text[0] == 'X' ? 'Y' : 'X';
  ASSERT_EQ(::unlink(current.c_str()), 0);
  ASSERT_OK(farm::testing::WriteFile(current, text));
  EXPECT_THAT(ValidateBackup(dir),
              StatusIsWithMessage(absl::StatusCode::kDataLoss, HasSubstr("store file db/CURRENT")));
}

TEST_F(BackupTest, RestoreNeedsANewOrEmptyDataDir) {
  const std::string dir = Join("b");
  ASSERT_OK(maker_->CreateBackup(dir).status());
  fs::create_directories(Join("used"));
  ASSERT_OK(farm::testing::WriteFile(Join("used/x"), "x"));
  EXPECT_THAT(
      RestoreBackup(dir, Join("used")).status(),
      StatusIsWithMessage(absl::StatusCode::kFailedPrecondition, HasSubstr("is not empty")));
  EXPECT_THAT(Entries(Join("used")), ::testing::ElementsAre("x"));
  EXPECT_THAT(
      RestoreBackup(dir, Join("no/parent")).status(),
      StatusIsWithMessage(absl::StatusCode::kFailedPrecondition, HasSubstr("does not exist")));
  fs::create_directories(Join("empty"));
  EXPECT_OK(RestoreBackup(dir, Join("empty")).status());

  // A restore that stopped halfway leaves its marker, which a coordinator refuses.
  ASSERT_OK(farm::testing::WriteFile(Join("empty/") + kRestoreMarker, ""));
  EXPECT_THAT(
      CheckNoUnfinishedRestore(Join("empty")),
      StatusIsWithMessage(absl::StatusCode::kFailedPrecondition, HasSubstr("did not finish")));
}

TEST(EvictionHoldTest, NoBlobIsEvictedWhileHeld) {
  ASSERT_OK_AND_ASSIGN(TempDir tmp, TempDir::Create("hold-test"));
  std::unique_ptr<DataDir> d = DataDir::Open(tmp.path(), /*cas_max_bytes=*/1 << 20);
  ASSERT_NE(d, nullptr);
  std::vector<common::Digest> blobs;
  for (uint32_t i = 0; i < 3; ++i) blobs.push_back(cas_testing::PutRandom(*d->cas, 600'000, i));
  d->clock.AdvanceMs(1000);
  {
    FileBlobStore::EvictionHold hold = d->cas->HoldEvictions();
    ASSERT_OK(d->cas->RunMaintenance());
    EXPECT_EQ(d->cas->Stats().blobs, 3);
  }
  ASSERT_OK(d->cas->RunMaintenance());
  EXPECT_LT(d->cas->Stats().blobs, 3);
}

TEST(JobCountsTest, CountsOnceThenFollowsTransitionsDurably) {
  MemoryStore store;
  WriteBatch jobs;
  for (uint64_t seq = 1; seq <= 3; ++seq) {
    farm::v1::Job job;
    job.set_state(seq == 3 ? farm::v1::SUCCEEDED : farm::v1::QUEUED);
    jobs.Put(Cf::kJobs, keys::JobKey(seq), job.SerializeAsString());
  }
  ASSERT_OK(store.Write(jobs, true));
  JobCounts counts;
  ASSERT_OK(counts.Load(&store));  // a store without counts: counted once
  EXPECT_EQ(counts.Snapshot()[farm::v1::QUEUED], 2);
  EXPECT_EQ(counts.Snapshot()[farm::v1::SUCCEEDED], 1);

  Txn txn(&store, /*id=*/7);
  counts.Moved(txn, farm::v1::QUEUED, farm::v1::RUNNING);
  counts.Moved(txn, farm::v1::JOB_STATE_UNSPECIFIED, farm::v1::WAITING);
  counts.Removed(txn, farm::v1::SUCCEEDED);
  txn.Seal();
  ASSERT_OK(store.Write(txn.batch(), true));
  JobCounts reloaded;
  ASSERT_OK(reloaded.Load(&store));
  const auto snapshot = reloaded.Snapshot();
  EXPECT_EQ(snapshot[farm::v1::QUEUED], 1);
  EXPECT_EQ(snapshot[farm::v1::RUNNING], 1);
  EXPECT_EQ(snapshot[farm::v1::WAITING], 1);
  EXPECT_EQ(snapshot[farm::v1::SUCCEEDED], 0);
  EXPECT_EQ(snapshot, counts.Snapshot());
}

}  // namespace
}  // namespace farm::coordinator
