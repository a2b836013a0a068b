// Artifact pins of FileBlobStore, synchronous and on the CAS's own IoPool: what is kept from
// eviction, what is reported missing, how many store writes a pin costs, and that the
// asynchronous form never makes its caller wait for the store or a CAS lock. Real files in a
// temp dir, in-memory metadata, fake clock; waits are bounded by deadlines.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/digest.h"
#include "coordinator/cas/file_blob_store.h"
#include "coordinator/store/memory_store.h"
#include "tests/coordinator/cas/blob_testing.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace farm::coordinator {
namespace {

using cas_testing::RandomBytes;

using ::farm::testing::StatusIs;
using ::farm::testing::StatusIsWithMessage;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr absl::Duration kDeadline = absl::Seconds(30);

// The in-memory store whose synced writes can be held at a gate, to catch a pin in the act.
class GatedStore : public MemoryStore {
 public:
  absl::Status Write(const WriteBatch& batch, bool sync) override {
    if (sync) {
      absl::MutexLock lock(&mu_);
      ++waiting_;
      auto open = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !closed_; };
      mu_.Await(absl::Condition(&open));
      --waiting_;
    }
    return MemoryStore::Write(batch, sync);
  }

  void Close() {
    absl::MutexLock lock(&mu_);
    closed_ = true;
  }
  void Open() {
    absl::MutexLock lock(&mu_);
    closed_ = false;
  }
  // True once a synced write waits at the closed gate (within the deadline).
  bool AwaitWriter() {
    absl::MutexLock lock(&mu_);
    auto waiting = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return waiting_ > 0; };
    return mu_.AwaitWithTimeout(absl::Condition(&waiting), kDeadline);
  }

 private:
  absl::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  int waiting_ ABSL_GUARDED_BY(mu_) = 0;
};

// The outcome of one PinArtifactsAsync call.
struct PinResult {
  absl::Notification done;
  absl::Status status;
  std::thread::id thread;
};

class FileBlobStorePinTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(auto dir, testing::TempDir::Create("blob-store-pin"));
    dir_.emplace(std::move(dir));
    FileBlobStoreOptions options;
    options.root = dir_->Join("cas");
    options.max_bytes = 1 << 20;
    options.min_age_ms = min_age_ms_;
    ASSERT_OK_AND_ASSIGN(blobs_, FileBlobStore::Open(options, &store_, &clock_));
  }

  Digest PutRandom(size_t size, uint32_t seed) {
    return cas_testing::PutRandom(*blobs_, size, seed);
  }
  bool Has(const Digest& d) { return cas_testing::Has(*blobs_, d); }

  void PinAsync(std::vector<Digest> digests, int64_t until_ms, PinResult* result) {
    blobs_->PinArtifactsAsync(std::move(digests), until_ms, [result](absl::Status s) {
      result->status = std::move(s);
      result->thread = std::this_thread::get_id();
      result->done.Notify();
    });
  }

  // The store holds three 300 KiB blobs under its 1 MiB limit; a fourth makes maintenance
  // evict the least recently used one that is older than this and not pinned.
  const int64_t min_age_ms_ = 10 * 60'000;
  std::optional<testing::TempDir> dir_;
  GatedStore store_;
  common::FakeClock clock_;
  std::unique_ptr<FileBlobStore> blobs_;
};

TEST_F(FileBlobStorePinTest, PinnedBlobsAreNotEvictedUntilThePinExpires) {
  const Digest a = PutRandom(300 << 10, 40);
  clock_.AdvanceMs(1000);
  const Digest b = PutRandom(300 << 10, 41);
  clock_.AdvanceMs(1000);
  const Digest c = PutRandom(300 << 10, 42);
  const int64_t pin_until = clock_.NowMs() + 3 * min_age_ms_;
  const Digest absent{std::string(64, 'f'), 12};
  EXPECT_THAT(blobs_->PinArtifacts({a, common::EmptyDigest(), absent}, pin_until),
              StatusIsWithMessage(absl::StatusCode::kNotFound, HasSubstr(absent.ToString())));
  // An earlier pin does not shorten it.
  ASSERT_OK(blobs_->PinArtifacts({a}, clock_.NowMs() + 1));
  clock_.AdvanceMs(min_age_ms_ + 1000);
  const Digest d = PutRandom(300 << 10, 43);
  ASSERT_OK(blobs_->RunMaintenance());
  EXPECT_TRUE(Has(a));  // pinned, although least recently used
  EXPECT_FALSE(Has(b));
  EXPECT_TRUE(Has(c));

  clock_.AdvanceMs(3 * min_age_ms_);
  PutRandom(300 << 10, 44);
  ASSERT_OK(blobs_->RunMaintenance());
  EXPECT_FALSE(Has(a));  // the pin expired
  EXPECT_TRUE(Has(d));
}

TEST_F(FileBlobStorePinTest, ManyDigestsArePinnedWithOneStoreWrite) {
  std::vector<Digest> digests;
  for (uint32_t i = 0; i < 50; ++i) digests.push_back(PutRandom(1000, 100 + i));
  digests.push_back(digests[7]);  // listed twice
  digests.push_back(common::EmptyDigest());
  const int64_t until = clock_.NowMs() + 60'000;

  const int64_t before = store_.writes();
  ASSERT_OK(blobs_->PinArtifacts(digests, until));
  EXPECT_EQ(store_.writes() - before, 1);

  // Nothing to extend: nothing written.
  ASSERT_OK(blobs_->PinArtifacts(digests, until - 1));
  EXPECT_EQ(store_.writes() - before, 1);

  // With one blob missing the others are still pinned, in one write, and the result names it.
  const Digest absent{std::string(64, 'a'), 5};
  digests.push_back(absent);
  EXPECT_THAT(
      blobs_->PinArtifacts(digests, until + 1),
      StatusIsWithMessage(absl::StatusCode::kNotFound,
                          AllOf(HasSubstr("1 artifact blob(s)"), HasSubstr(absent.ToString()))));
  EXPECT_EQ(store_.writes() - before, 2);
}

TEST_F(FileBlobStorePinTest, MalformedDigestsAreRefusedAndNothingIsPinned) {
  const Digest a = PutRandom(1000, 50);
  const int64_t before = store_.writes();
  for (const Digest& bad : {Digest{"", 3}, Digest{std::string(64, 'Z'), 3},
                            Digest{std::string(63, 'a'), 3}, Digest{a.hash, -1}}) {
    EXPECT_THAT(blobs_->PinArtifacts({a, bad}, clock_.NowMs() + 60'000),
                StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                    HasSubstr("cannot pin artifact blob")))
        << bad.ToString();
  }
  EXPECT_EQ(store_.writes(), before);
}

TEST_F(FileBlobStorePinTest, AsyncPinReportsMissingBlobsOnAPoolThread) {
  const Digest a = PutRandom(1000, 60);
  const Digest absent{std::string(64, 'e'), 7};
  PinResult result;
  PinAsync({a, absent}, clock_.NowMs() + 60'000, &result);
  ASSERT_TRUE(result.done.WaitForNotificationWithTimeout(kDeadline));
  EXPECT_THAT(result.status,
              StatusIsWithMessage(absl::StatusCode::kNotFound,
                                  AllOf(HasSubstr(absent.ToString()), Not(HasSubstr(a.hash)))));
  EXPECT_NE(result.thread, std::this_thread::get_id());

  PinResult ok;
  PinAsync({a}, clock_.NowMs() + 60'000, &ok);
  ASSERT_TRUE(ok.done.WaitForNotificationWithTimeout(kDeadline));
  EXPECT_OK(ok.status);
}

TEST_F(FileBlobStorePinTest, AsyncPinnedBlobSurvivesEviction) {
  const Digest a = PutRandom(300 << 10, 70);
  clock_.AdvanceMs(1000);
  const Digest b = PutRandom(300 << 10, 71);
  clock_.AdvanceMs(1000);
  const Digest c = PutRandom(300 << 10, 72);
  PinResult result;
  PinAsync({a}, clock_.NowMs() + 3 * min_age_ms_, &result);
  ASSERT_TRUE(result.done.WaitForNotificationWithTimeout(kDeadline));
  ASSERT_OK(result.status);
  clock_.AdvanceMs(min_age_ms_ + 1000);
  PutRandom(300 << 10, 73);
  ASSERT_OK(blobs_->RunMaintenance());
  EXPECT_TRUE(Has(a));  // pinned, although least recently used
  EXPECT_FALSE(Has(b));
  EXPECT_TRUE(Has(c));
}

// The engine thread's view: asking for a pin returns at once, also while a pin of the same
// blob holds its lock and waits for the disk. The calls run on threads of their own so that a
// blocking implementation fails here rather than hanging the test.
TEST_F(FileBlobStorePinTest, AsyncPinNeverWaitsForTheStoreOrACasLock) {
  const Digest a = PutRandom(1000, 80);
  store_.Close();
  PinResult first, second;
  absl::Notification first_returned, second_returned;
  std::thread first_caller([&] {
    PinAsync({a}, clock_.NowMs() + 60'000, &first);
    first_returned.Notify();
  });
  const bool reached_store = store_.AwaitWriter();
  std::thread second_caller([&] {
    PinAsync({a}, clock_.NowMs() + 120'000, &second);
    second_returned.Notify();
  });
  const absl::Time deadline = absl::Now() + kDeadline;
  const bool first_in_time = first_returned.WaitForNotificationWithDeadline(deadline);
  const bool second_in_time = second_returned.WaitForNotificationWithDeadline(deadline);
  const bool first_done_early = first.done.HasBeenNotified();
  store_.Open();
  first_caller.join();
  second_caller.join();
  EXPECT_TRUE(reached_store) << "the first pin never reached the store";
  EXPECT_TRUE(first_in_time) << "PinArtifactsAsync waited for the store";
  EXPECT_TRUE(second_in_time) << "PinArtifactsAsync waited for a CAS lock";
  EXPECT_FALSE(first_done_early) << "the pin was answered before its write was durable";
  ASSERT_TRUE(first.done.WaitForNotificationWithTimeout(kDeadline));
  ASSERT_TRUE(second.done.WaitForNotificationWithTimeout(kDeadline));
  EXPECT_OK(first.status);
  EXPECT_OK(second.status);
}

TEST_F(FileBlobStorePinTest, PinsAskedForBeforeShutdownStillAnswer) {
  const Digest a = PutRandom(1000, 90);
  std::vector<std::unique_ptr<PinResult>> results;
  for (int i = 0; i < 20; ++i) {
    results.push_back(std::make_unique<PinResult>());
    PinAsync({a}, clock_.NowMs() + 60'000 + i, results.back().get());
  }
  blobs_.reset();
  for (const auto& r : results) {
    ASSERT_TRUE(r->done.HasBeenNotified());
    EXPECT_OK(r->status);
  }
}

}  // namespace
}  // namespace farm::coordinator
