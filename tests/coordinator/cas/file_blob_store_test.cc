// FileBlobStore against a real directory, with the in-memory Store for metadata and a fake
// clock (no sockets, no sleeps).
#include "coordinator/cas/file_blob_store.h"

#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/digest.h"
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
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

common::Digest RandomDigest(uint32_t seed) { return common::DigestOf(RandomBytes(100, seed)); }

// Regular files under dir (recursively).
int CountFiles(const std::string& dir) {
  int n = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) ++n;
  }
  return n;
}

// Overwrites a (read-only) blob file with other bytes of the same length.
void Scribble(const std::string& path, int64_t at) {
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  std::string data;
  ASSERT_OK_AND_ASSIGN(data, testing::ReadFile(path));
  data[static_cast<size_t>(at)] ^= 0x5a;
  ASSERT_OK(testing::WriteFile(path, data));
}

class FileBlobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(auto dir, testing::TempDir::Create("blob-store"));
    dir_.emplace(std::move(dir));
    options_.root = dir_->Join("cas");
    options_.max_bytes = 1 << 20;
    options_.min_age_ms = 10 * 60'000;
    options_.upload_idle_ttl_ms = 30 * 60'000;
    Open();
  }

  void Open() {
    blobs_.reset();
    auto opened = FileBlobStore::Open(options_, &store_, &clock_);
    ASSERT_OK(opened);
    blobs_ = std::move(*opened);
  }

  Digest PutRandom(size_t size, uint32_t seed) {
    return cas_testing::PutRandom(*blobs_, size, seed);
  }
  bool Has(const Digest& d) { return cas_testing::Has(*blobs_, d); }

  std::string tmp_dir() const { return options_.root + "/tmp"; }

  std::optional<testing::TempDir> dir_;
  FileBlobStoreOptions options_;
  MemoryStore store_;
  common::FakeClock clock_;
  std::unique_ptr<FileBlobStore> blobs_;
};

TEST_F(FileBlobStoreTest, PutThenReadBack) {
  const std::string data = RandomBytes(3 << 20 | 17, 1);
  const Digest d = common::DigestOf(data);
  options_.max_bytes = 16 << 20;
  Open();
  EXPECT_FALSE(Has(d));
  ASSERT_OK(blobs_->Put(d, data));
  EXPECT_TRUE(Has(d));
  ASSERT_OK_AND_ASSIGN(std::string back, blobs_->Read(d));
  EXPECT_EQ(back, data);
  // One read-only file, named by the hash under its two-digit shard.
  struct stat st;
  ASSERT_EQ(::stat(blobs_->BlobPath(d).c_str(), &st), 0);
  EXPECT_EQ(st.st_size, d.size);
  EXPECT_EQ(st.st_mode & 0777, 0444u);
  EXPECT_THAT(blobs_->BlobPath(d), HasSubstr("/blobs/" + d.hash.substr(0, 2) + "/" + d.hash));
  EXPECT_EQ(CountFiles(tmp_dir()), 0);
  EXPECT_EQ(blobs_->Stats().blobs, 1);
  EXPECT_EQ(blobs_->Stats().bytes, d.size);
  // The same hash with another size is another (absent) blob.
  EXPECT_FALSE(Has(Digest{d.hash, d.size + 1}));
}

TEST_F(FileBlobStoreTest, CountsBytesInAndOutAndLookupsForTheMetrics) {
  Open();
  const std::string data = RandomBytes(5000, 7);
  const Digest d = common::DigestOf(data);
  ASSERT_OK(blobs_->Put(d, data));
  ASSERT_OK(blobs_->Put(d, data));  // already there: nothing new is written
  ASSERT_OK_AND_ASSIGN(std::string back, blobs_->Read(d));
  ASSERT_OK_AND_ASSIGN(std::vector<Digest> missing,
                       blobs_->FindMissing({d, RandomDigest(1), RandomDigest(2)}));
  EXPECT_EQ(missing.size(), 2u);
  const BlobStoreStats s = blobs_->Stats();
  EXPECT_EQ(s.written_bytes, 5000);
  EXPECT_EQ(s.read_bytes, 5000);
  EXPECT_EQ(s.found, 1);
  EXPECT_EQ(s.missing, 2);
}

TEST_F(FileBlobStoreTest, RejectsDataThatDoesNotMatchItsDigest) {
  const std::string data = RandomBytes(1000, 2);
  const Digest claimed = common::DigestOf("something else entirely, 1000 bytes? no");
  EXPECT_THAT(blobs_->Put(Digest{claimed.hash, 1000}, data),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("hashes to")));
  EXPECT_THAT(blobs_->Put(Digest{common::DigestOf(data).hash, 999}, data),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_FALSE(Has(Digest{claimed.hash, 1000}));
  EXPECT_EQ(CountFiles(options_.root), 0);
}

TEST_F(FileBlobStoreTest, BatchedBlobsSucceedOrFailEachOnTheirOwn) {
  const Digest present = PutRandom(500, 90);
  const std::string one = RandomBytes(1000, 91), two = RandomBytes(2000, 92);
  const std::string bad = RandomBytes(300, 93);
  const Digest d1 = common::DigestOf(one), d2 = common::DigestOf(two);
  const Digest wrong{common::DigestOf("not these bytes").hash, 300};
  const std::string present_data = RandomBytes(500, 90);
  const std::vector<absl::Status> statuses = blobs_->PutBatch({
      BlobData{d1, one},
      BlobData{wrong, bad},
      BlobData{d1, one},  // twice in one batch
      BlobData{common::EmptyDigest(), ""},
      BlobData{d2, two},
      BlobData{present, present_data},
      BlobData{Digest{d2.hash, 1999}, two},
  });
  ASSERT_EQ(statuses.size(), 7u);
  EXPECT_OK(statuses[0]);
  EXPECT_THAT(statuses[1], StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_OK(statuses[2]);
  EXPECT_OK(statuses[3]);
  EXPECT_OK(statuses[4]);
  EXPECT_OK(statuses[5]);
  EXPECT_THAT(statuses[6], StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_TRUE(Has(d1));
  EXPECT_TRUE(Has(d2));
  EXPECT_FALSE(Has(wrong));
  EXPECT_EQ(CountFiles(options_.root), 3);
  EXPECT_EQ(blobs_->Stats().blobs, 3);
  EXPECT_EQ(blobs_->Stats().bytes, 3500);
  ASSERT_OK_AND_ASSIGN(std::string back, blobs_->Read(d2));
  EXPECT_EQ(back, two);
}

TEST_F(FileBlobStoreTest, ConcurrentOverlappingBatchesKeepOneCopyEach) {
  std::vector<std::string> data;
  for (int i = 0; i < 40; ++i) data.push_back(RandomBytes(1000 + i, 200 + i));
  std::vector<std::thread> threads;
  std::vector<std::vector<absl::Status>> results(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::vector<BlobData> batch;
      // Each thread offers a different, overlapping half, in its own order.
      for (int k = 0; k < 20; ++k) {
        const std::string& d = data[(t * 7 + k * (t % 2 == 0 ? 1 : 3)) % data.size()];
        batch.push_back(BlobData{common::DigestOf(d), d});
      }
      results[t] = blobs_->PutBatch(batch);
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& r : results) {
    for (const auto& s : r) EXPECT_OK(s);
  }
  int64_t expected_bytes = 0;
  int expected_blobs = 0;
  for (const std::string& d : data) {
    if (Has(common::DigestOf(d))) {
      expected_bytes += static_cast<int64_t>(d.size());
      ++expected_blobs;
    }
  }
  EXPECT_GT(expected_blobs, 20);
  EXPECT_EQ(blobs_->Stats().blobs, expected_blobs);
  EXPECT_EQ(blobs_->Stats().bytes, expected_bytes);
  EXPECT_EQ(CountFiles(options_.root), expected_blobs);
}

TEST_F(FileBlobStoreTest, EmptyBlobIsAlwaysPresent) {
  const Digest& empty = common::EmptyDigest();
  EXPECT_TRUE(Has(empty));
  ASSERT_OK_AND_ASSIGN(auto missing, blobs_->FindMissing({empty}));
  EXPECT_THAT(missing, IsEmpty());
  ASSERT_OK_AND_ASSIGN(std::string data, blobs_->Read(empty));
  EXPECT_EQ(data, "");
  ASSERT_OK(blobs_->Put(empty, ""));
  ASSERT_OK_AND_ASSIGN(auto writer, blobs_->OpenWrite("u", empty, 0));
  EXPECT_TRUE(writer->complete());
  EXPECT_THAT(blobs_->OpenRead(empty, 1, 0), StatusIs(absl::StatusCode::kOutOfRange));
  // A zero-size digest with another hash is not the empty blob.
  const Digest other{std::string(64, '0'), 0};
  EXPECT_FALSE(Has(other));
  ASSERT_OK_AND_ASSIGN(auto w, blobs_->OpenWrite("u", other, 0));
  EXPECT_THAT(w->Commit(), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(CountFiles(options_.root), 0);
}

TEST_F(FileBlobStoreTest, FindMissingListsAbsentInOrder) {
  const Digest a = PutRandom(10, 1);
  const Digest b{std::string(64, 'b'), 5};
  const Digest c{std::string(64, 'c'), 6};
  ASSERT_OK_AND_ASSIGN(auto missing, blobs_->FindMissing({b, a, c}));
  EXPECT_THAT(missing, ElementsAre(b, c));
}

TEST_F(FileBlobStoreTest, StreamedUploadBecomesVisibleOnlyOnCommit) {
  const std::string data = RandomBytes(100'000, 3);
  const Digest d = common::DigestOf(data);
  ASSERT_OK_AND_ASSIGN(auto w, blobs_->OpenWrite("u1", d, 0));
  EXPECT_FALSE(w->complete());
  for (size_t off = 0; off < data.size(); off += 30'000) {
    ASSERT_OK(w->Append(absl::string_view(data).substr(off, 30'000)));
    EXPECT_FALSE(Has(d));
  }
  EXPECT_EQ(w->committed(), d.size);
  ASSERT_OK(w->Commit());
  EXPECT_TRUE(w->complete());
  EXPECT_TRUE(Has(d));
  const UploadStatus st = blobs_->QueryWrite("u1", d);
  EXPECT_TRUE(st.complete);
  EXPECT_EQ(st.committed, d.size);
  EXPECT_EQ(CountFiles(tmp_dir()), 0);
  // Writing it again ends at once.
  ASSERT_OK_AND_ASSIGN(auto again, blobs_->OpenWrite("u2", d, 0));
  EXPECT_TRUE(again->complete());
  EXPECT_EQ(again->committed(), d.size);
}

TEST_F(FileBlobStoreTest, UploadWithWrongBytesLeavesNothing) {
  std::string data = RandomBytes(50'000, 4);
  const Digest d = common::DigestOf(data);
  data[100] ^= 1;
  ASSERT_OK_AND_ASSIGN(auto w, blobs_->OpenWrite("u", d, 0));
  ASSERT_OK(w->Append(data));
  EXPECT_THAT(w->Commit(),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("hashes to")));
  EXPECT_FALSE(Has(d));
  EXPECT_EQ(blobs_->QueryWrite("u", d).committed, 0);
  EXPECT_EQ(CountFiles(options_.root), 0);

  // Too many bytes, and too few.
  ASSERT_OK_AND_ASSIGN(auto w2, blobs_->OpenWrite("u", d, 0));
  EXPECT_THAT(w2->Append(data + "x"), StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK_AND_ASSIGN(auto w3, blobs_->OpenWrite("u", d, 0));
  ASSERT_OK(w3->Append(data.substr(0, 10)));
  EXPECT_THAT(w3->Commit(),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("after 10")));
  EXPECT_EQ(CountFiles(options_.root), 0);
}

TEST_F(FileBlobStoreTest, InterruptedUploadIsInvisibleAndResumable) {
  const std::string data = RandomBytes(200'000, 5);
  const Digest d = common::DigestOf(data);
  {
    ASSERT_OK_AND_ASSIGN(auto w, blobs_->OpenWrite("u", d, 0));
    ASSERT_OK(w->Append(absl::string_view(data).substr(0, 80'000)));
    // The stream breaks: the writer goes away without Commit.
  }
  EXPECT_FALSE(Has(d));
  EXPECT_THAT(blobs_->Read(d), StatusIs(absl::StatusCode::kNotFound));
  UploadStatus st = blobs_->QueryWrite("u", d);
  EXPECT_EQ(st.committed, 80'000);
  EXPECT_FALSE(st.complete);
  // Another upload id knows nothing of it.
  EXPECT_EQ(blobs_->QueryWrite("other", d).committed, 0);
  EXPECT_EQ(blobs_->Stats().uploads, 1);

  // Resuming anywhere but the committed size (or 0) is refused, and keeps the data.
  EXPECT_THAT(blobs_->OpenWrite("u", d, 1000),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("80000")));
  EXPECT_THAT(blobs_->OpenWrite("other", d, 1000), StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK_AND_ASSIGN(auto w, blobs_->OpenWrite("u", d, 80'000));
  EXPECT_EQ(w->committed(), 80'000);
  ASSERT_OK(w->Append(absl::string_view(data).substr(80'000)));
  ASSERT_OK(w->Commit());
  ASSERT_OK_AND_ASSIGN(std::string back, blobs_->Read(d));
  EXPECT_EQ(back, data);
  EXPECT_EQ(blobs_->Stats().uploads, 0);
  EXPECT_EQ(CountFiles(tmp_dir()), 0);
}

TEST_F(FileBlobStoreTest, RestartingAnUploadAtZeroDiscardsThePartialData) {
  const std::string data = RandomBytes(10'000, 6);
  const Digest d = common::DigestOf(data);
  {
    ASSERT_OK_AND_ASSIGN(auto w, blobs_->OpenWrite("u", d, 0));
    ASSERT_OK(w->Append("garbage that is not the start of the blob"));
  }
  ASSERT_OK_AND_ASSIGN(auto w, blobs_->OpenWrite("u", d, 0));
  EXPECT_EQ(w->committed(), 0);
  ASSERT_OK(w->Append(data));
  ASSERT_OK(w->Commit());
  ASSERT_OK_AND_ASSIGN(std::string back, blobs_->Read(d));
  EXPECT_EQ(back, data);
}

TEST_F(FileBlobStoreTest, ANewerWriterTakesTheUploadOver) {
  const std::string data = RandomBytes(10'000, 7);
  const Digest d = common::DigestOf(data);
  ASSERT_OK_AND_ASSIGN(auto old_writer, blobs_->OpenWrite("u", d, 0));
  ASSERT_OK(old_writer->Append(data.substr(0, 4000)));
  ASSERT_OK_AND_ASSIGN(auto new_writer, blobs_->OpenWrite("u", d, 4000));
  EXPECT_THAT(old_writer->Append(data.substr(4000)), StatusIs(absl::StatusCode::kAborted));
  EXPECT_THAT(old_writer->Commit(), StatusIs(absl::StatusCode::kAborted));
  old_writer.reset();  // must not close the new writer's file
  ASSERT_OK(new_writer->Append(data.substr(4000)));
  ASSERT_OK(new_writer->Commit());
  EXPECT_TRUE(Has(d));
}

TEST_F(FileBlobStoreTest, IdleUploadsAreSwept) {
  const std::string data = RandomBytes(10'000, 8);
  const Digest d = common::DigestOf(data);
  {
    ASSERT_OK_AND_ASSIGN(auto w, blobs_->OpenWrite("u", d, 0));
    ASSERT_OK(w->Append(data.substr(0, 5000)));
  }
  clock_.AdvanceMs(options_.upload_idle_ttl_ms - 1000);
  ASSERT_OK(blobs_->RunMaintenance());
  EXPECT_EQ(blobs_->QueryWrite("u", d).committed, 5000);
  clock_.AdvanceMs(2000);
  ASSERT_OK(blobs_->RunMaintenance());
  EXPECT_EQ(blobs_->QueryWrite("u", d).committed, 0);
  EXPECT_EQ(blobs_->Stats().uploads, 0);
  EXPECT_EQ(CountFiles(tmp_dir()), 0);
  EXPECT_THAT(blobs_->OpenWrite("u", d, 5000), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(FileBlobStoreTest, TooManyUploadsIsResourceExhausted) {
  options_.max_uploads = 2;
  Open();
  std::vector<std::unique_ptr<BlobWriter>> writers;
  for (int i = 0; i < 2; ++i) {
    ASSERT_OK_AND_ASSIGN(auto w, blobs_->OpenWrite(absl::StrCat("u", i), RandomDigest(i), 0));
    writers.push_back(std::move(w));
  }
  EXPECT_THAT(blobs_->OpenWrite("u9", RandomDigest(9), 0),
              StatusIs(absl::StatusCode::kResourceExhausted));
}

TEST_F(FileBlobStoreTest, ConcurrentUploadsOfOneBlobEndWithOneCopy) {
  const std::string data = RandomBytes(300'000, 9);
  const Digest d = common::DigestOf(data);
  constexpr int kThreads = 8;
  std::vector<absl::Status> results(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      if (t % 2 == 0) {
        results[t] = blobs_->Put(d, data);
        return;
      }
      absl::StatusOr<std::unique_ptr<BlobWriter>> w = blobs_->OpenWrite(absl::StrCat("u", t), d, 0);
      if (!w.ok()) {
        results[t] = w.status();
        return;
      }
      if ((*w)->complete()) return;
      for (size_t off = 0; off < data.size() && results[t].ok(); off += 7000) {
        results[t] = (*w)->Append(absl::string_view(data).substr(off, 7000));
      }
      if (results[t].ok()) results[t] = (*w)->Commit();
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& s : results) EXPECT_OK(s);
  EXPECT_EQ(CountFiles(options_.root), 1);
  EXPECT_EQ(blobs_->Stats().blobs, 1);
  EXPECT_EQ(blobs_->Stats().bytes, d.size);
  ASSERT_OK_AND_ASSIGN(std::string back, blobs_->Read(d));
  EXPECT_EQ(back, data);
}

TEST_F(FileBlobStoreTest, CorruptBlobIsDetectedRemovedAndNeverServed) {
  const std::string data = RandomBytes(3 * 1024 * 1024 / 4, 10);
  const Digest d = common::DigestOf(data);
  ASSERT_OK(blobs_->Put(d, data));
  Scribble(blobs_->BlobPath(d), d.size - 1);

  // A streamed read gets every chunk but the last, then DATA_LOSS instead of the last one.
  ASSERT_OK_AND_ASSIGN(auto reader, blobs_->OpenRead(d, 0, 0));
  std::string got, chunk;
  absl::StatusOr<bool> more = true;
  while (more.ok() && *more) {
    more = reader->Next(64 * 1024, &chunk);
    if (more.ok()) got += chunk;
  }
  EXPECT_THAT(more, StatusIsWithMessage(absl::StatusCode::kDataLoss, HasSubstr("corrupt")));
  EXPECT_LT(got.size(), data.size());
  reader.reset();

  EXPECT_FALSE(Has(d));
  EXPECT_FALSE(std::filesystem::exists(blobs_->BlobPath(d)));
  EXPECT_EQ(blobs_->Stats().corrupt_blobs, 1);
  EXPECT_EQ(blobs_->Stats().blobs, 0);
  EXPECT_THAT(blobs_->Read(d), StatusIs(absl::StatusCode::kNotFound));
  // It can be uploaded again.
  ASSERT_OK(blobs_->Put(d, data));
  ASSERT_OK_AND_ASSIGN(std::string back, blobs_->Read(d));
  EXPECT_EQ(back, data);
}

TEST_F(FileBlobStoreTest, CorruptionIsFoundEvenByPartialReads) {
  const std::string data = RandomBytes(100'000, 11);
  const Digest d = common::DigestOf(data);
  ASSERT_OK(blobs_->Put(d, data));
  Scribble(blobs_->BlobPath(d), 90'000);
  // The first 10 bytes are intact, but the range is only handed out after the whole blob
  // checked out.
  ASSERT_OK_AND_ASSIGN(auto reader, blobs_->OpenRead(d, 0, 10));
  std::string chunk;
  EXPECT_THAT(reader->Next(1 << 20, &chunk), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_EQ(chunk, "");
  EXPECT_FALSE(Has(d));
}

TEST_F(FileBlobStoreTest, TruncatedOrMissingFilesAreDetected) {
  const Digest a = PutRandom(5000, 12);
  const Digest b = PutRandom(5000, 13);
  ASSERT_EQ(::truncate(blobs_->BlobPath(a).c_str(), 100), 0);
  EXPECT_THAT(blobs_->OpenRead(a, 0, 0), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_FALSE(Has(a));
  ASSERT_EQ(::unlink(blobs_->BlobPath(b).c_str()), 0);
  EXPECT_THAT(blobs_->Read(b), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_FALSE(Has(b));
  EXPECT_EQ(blobs_->Stats().blobs, 0);
  EXPECT_EQ(blobs_->Stats().bytes, 0);
}

TEST_F(FileBlobStoreTest, RangeReads) {
  const std::string data = RandomBytes(10'000, 14);
  const Digest d = common::DigestOf(data);
  ASSERT_OK(blobs_->Put(d, data));
  auto read = [&](int64_t offset, int64_t limit) -> absl::StatusOr<std::string> {
    FARM_ASSIGN_OR_RETURN(auto r, blobs_->OpenRead(d, offset, limit));
    std::string out, chunk;
    bool more = true;
    while (more) {
      FARM_ASSIGN_OR_RETURN(more, r->Next(999, &chunk));
      out += chunk;
    }
    return out;
  };
  ASSERT_OK_AND_ASSIGN(std::string s, read(0, 0));
  EXPECT_EQ(s, data);
  ASSERT_OK_AND_ASSIGN(s, read(1234, 0));
  EXPECT_EQ(s, data.substr(1234));
  ASSERT_OK_AND_ASSIGN(s, read(1234, 5000));
  EXPECT_EQ(s, data.substr(1234, 5000));
  ASSERT_OK_AND_ASSIGN(s, read(9000, 5000));
  EXPECT_EQ(s, data.substr(9000));
  ASSERT_OK_AND_ASSIGN(s, read(10'000, 0));
  EXPECT_EQ(s, "");
  EXPECT_THAT(read(10'001, 0), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(read(-1, 0), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(read(0, -1), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(blobs_->OpenRead(Digest{d.hash, d.size - 1}, 0, 0),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(FileBlobStoreTest, EvictsLeastRecentlyUsedDownToTheLowWatermark) {
  // 1 MiB limit, 300 KiB blobs: the fourth takes the store above the limit, and removing
  // one blob brings it under 90%.
  const Digest a = PutRandom(300 << 10, 20);
  clock_.AdvanceMs(1000);
  const Digest b = PutRandom(300 << 10, 21);
  clock_.AdvanceMs(1000);
  const Digest c = PutRandom(300 << 10, 22);
  clock_.AdvanceMs(options_.min_age_ms + 1000);
  // Using a makes b the least recently used.
  ASSERT_OK_AND_ASSIGN(auto missing, blobs_->FindMissing({a}));
  ASSERT_OK(blobs_->RunMaintenance());  // below the limit: nothing happens
  EXPECT_EQ(blobs_->Stats().evicted_blobs, 0);
  EXPECT_EQ(blobs_->BytesOverBudget(), 0);
  const Digest d = PutRandom(300 << 10, 23);
  // What `admin gc --dry-run` reports: down to 90% of the limit.
  EXPECT_EQ(blobs_->BytesOverBudget(), blobs_->Stats().bytes - (1 << 20) / 100 * 90);
  ASSERT_OK(blobs_->RunMaintenance());
  EXPECT_EQ(blobs_->BytesOverBudget(), 0);
  EXPECT_TRUE(Has(a));
  EXPECT_FALSE(Has(b));
  EXPECT_TRUE(Has(c));
  EXPECT_TRUE(Has(d));
  EXPECT_FALSE(std::filesystem::exists(blobs_->BlobPath(b)));
  EXPECT_EQ(blobs_->Stats().evicted_blobs, 1);
  EXPECT_LE(blobs_->Stats().bytes, options_.max_bytes / 100 * 90);
}

TEST_F(FileBlobStoreTest, ReadsCountAsUses) {
  const Digest a = PutRandom(300 << 10, 24);
  clock_.AdvanceMs(1000);
  const Digest b = PutRandom(300 << 10, 25);
  clock_.AdvanceMs(1000);
  const Digest c = PutRandom(300 << 10, 26);
  clock_.AdvanceMs(options_.min_age_ms + 1000);
  // Reading a touches it; RunMaintenance flushes and then evicts b, not a.
  ASSERT_OK(blobs_->Read(a).status());
  const Digest d = PutRandom(300 << 10, 27);
  ASSERT_OK(blobs_->RunMaintenance());
  EXPECT_TRUE(Has(a));
  EXPECT_FALSE(Has(b));
  EXPECT_TRUE(Has(c));
  EXPECT_TRUE(Has(d));
}

TEST_F(FileBlobStoreTest, UsesAndAgesAreWhatTheFactoryReportReads) {
  const int64_t written = clock_.NowMs();
  const Digest old_blob = PutRandom(1000, 40);
  clock_.AdvanceMs(2 * 86'400'000LL);
  PutRandom(3000, 41);
  ASSERT_OK_AND_ASSIGN(std::optional<BlobStore::Use> use, blobs_->UseOf(old_blob.hash));
  ASSERT_TRUE(use.has_value());
  EXPECT_EQ(use->size, 1000);
  EXPECT_EQ(use->created_ms, written);
  EXPECT_EQ(use->accessed_ms, written);
  // A read counts as a use at once, before maintenance flushes it.
  clock_.AdvanceMs(1000);
  ASSERT_OK(blobs_->Read(old_blob).status());
  ASSERT_OK_AND_ASSIGN(use, blobs_->UseOf(old_blob.hash));
  EXPECT_EQ(use->accessed_ms, clock_.NowMs());
  ASSERT_OK_AND_ASSIGN(use, blobs_->UseOf(RandomDigest(3).hash));
  EXPECT_FALSE(use.has_value());
  // By age (as flushed): the new blob under a day, the old one (before its read) over a day.
  ASSERT_OK_AND_ASSIGN(std::vector<BlobStore::AgeCount> ages,
                       blobs_->CountByAge({86'400'000LL, 7 * 86'400'000LL}, clock_.NowMs()));
  ASSERT_EQ(ages.size(), 3u);
  EXPECT_EQ(ages[0].blobs, 1);
  EXPECT_EQ(ages[0].bytes, 3000);
  EXPECT_EQ(ages[1].bytes, 1000);
  EXPECT_EQ(ages[2].blobs, 0);
  ASSERT_OK(blobs_->RunMaintenance());
  ASSERT_OK_AND_ASSIGN(ages, blobs_->CountByAge({86'400'000LL}, clock_.NowMs()));
  EXPECT_EQ(ages[0].bytes, 4000);
}

TEST_F(FileBlobStoreTest, RecentlyUsedBlobsAreNotEvicted) {
  for (int i = 0; i < 4; ++i) PutRandom(300 << 10, 30 + i);
  clock_.AdvanceMs(options_.min_age_ms - 1000);
  ASSERT_OK(blobs_->RunMaintenance());
  EXPECT_EQ(blobs_->Stats().blobs, 4);
  EXPECT_GT(blobs_->Stats().bytes, options_.max_bytes);
  clock_.AdvanceMs(2000);
  ASSERT_OK(blobs_->RunMaintenance());
  EXPECT_EQ(blobs_->Stats().blobs, 3);
}

// Pins: file_blob_store_pin_test.cc.

TEST_F(FileBlobStoreTest, BlobLargerThanTheStoreIsRefused) {
  const std::string data = RandomBytes((1 << 20) + 1, 50);
  const Digest d = common::DigestOf(data);
  EXPECT_THAT(blobs_->Put(d, data), StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(blobs_->OpenWrite("u", d, 0), StatusIs(absl::StatusCode::kResourceExhausted));
}

TEST_F(FileBlobStoreTest, ReopeningReconcilesFilesWithMetadata) {
  const Digest a = PutRandom(1000, 60);
  const Digest b = PutRandom(1000, 61);
  {
    const std::string data = RandomBytes(1000, 62);
    ASSERT_OK_AND_ASSIGN(auto w, blobs_->OpenWrite("u", common::DigestOf(data), 0));
    ASSERT_OK(w->Append(data.substr(0, 10)));
  }
  // b's file vanished; an orphan file appeared (a crash between rename and metadata).
  ASSERT_EQ(::unlink(blobs_->BlobPath(b).c_str()), 0);
  const Digest orphan = common::DigestOf("orphan");
  ASSERT_OK(testing::WriteFile(blobs_->BlobPath(orphan), "orphan"));
  Open();
  EXPECT_TRUE(Has(a));
  EXPECT_FALSE(Has(b));
  EXPECT_FALSE(Has(orphan));
  EXPECT_FALSE(std::filesystem::exists(blobs_->BlobPath(orphan)));
  EXPECT_EQ(CountFiles(tmp_dir()), 0);
  EXPECT_EQ(blobs_->Stats().blobs, 1);
  EXPECT_EQ(blobs_->Stats().bytes, 1000);
  ASSERT_OK_AND_ASSIGN(auto missing, blobs_->FindMissing({a, b}));
  EXPECT_THAT(missing, ElementsAre(b));
}

TEST_F(FileBlobStoreTest, MetadataWriteFailureLeavesNothingVisible) {
  const std::string data = RandomBytes(1000, 70);
  const Digest d = common::DigestOf(data);
  store_.FailWrites(absl::UnavailableError("disk on fire"));
  EXPECT_THAT(blobs_->Put(d, data), StatusIs(absl::StatusCode::kUnavailable));
  store_.FailWrites(absl::OkStatus());
  EXPECT_FALSE(Has(d));
  EXPECT_EQ(CountFiles(options_.root), 0);
}

TEST(FileBlobStoreOptionsTest, Validates) {
  FileBlobStoreOptions o;
  EXPECT_THAT(o.Validate(), StatusIs(absl::StatusCode::kInvalidArgument));
  o.root = "/tmp/x";
  EXPECT_OK(o.Validate());
  o.max_bytes = 1000;
  EXPECT_THAT(o.Validate(),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("cas_max_bytes")));
  o.max_bytes = 1 << 30;
  o.min_age_ms = -1;
  EXPECT_THAT(o.Validate(),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("cas_min_age")));
}

// A disk that fills up mid-upload: RESOURCE_EXHAUSTED, nothing partial visible, the store keeps
// working. Needs a small tmpfs, i.e. root (or CAP_SYS_ADMIN).
TEST(FileBlobStoreDiskFullTest, UploadFailsCleanlyAndTheStoreKeepsServing) {
  ASSERT_OK_AND_ASSIGN(auto dir, testing::TempDir::Create("blob-store-full"));
  const std::string mnt = dir.Join("mnt");
  std::filesystem::create_directory(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=2m") != 0) {
    GTEST_SKIP() << "cannot mount a 2 MiB tmpfs (" << std::strerror(errno)
                 << "); run as root to test a full disk";
  }
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{mnt};

  MemoryStore store;
  common::FakeClock clock;
  FileBlobStoreOptions options;
  options.root = mnt + "/cas";
  options.max_bytes = 64 << 20;  // the disk, not the limit, is what runs out
  ASSERT_OK_AND_ASSIGN(auto blobs, FileBlobStore::Open(options, &store, &clock));

  const std::string big = RandomBytes(3 << 20, 80);
  const Digest big_digest = common::DigestOf(big);
  ASSERT_OK_AND_ASSIGN(auto w, blobs->OpenWrite("u", big_digest, 0));
  absl::Status s;
  for (size_t off = 0; off < big.size() && s.ok(); off += 256 << 10) {
    s = w->Append(absl::string_view(big).substr(off, 256 << 10));
  }
  if (s.ok()) s = w->Commit();
  // What the client hears: the code to back off on, and a message naming the cause and file.
  EXPECT_THAT(
      s, StatusIsWithMessage(absl::StatusCode::kResourceExhausted,
                             AllOf(HasSubstr("No space left on device"), HasSubstr(options.root))));
  w.reset();
  ASSERT_OK_AND_ASSIGN(bool present, blobs->Contains(big_digest));
  EXPECT_FALSE(present);
  EXPECT_EQ(blobs->QueryWrite("u", big_digest).committed, 0);
  EXPECT_EQ(CountFiles(options.root), 0);

  EXPECT_THAT(blobs->Put(big_digest, big), StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_EQ(CountFiles(options.root), 0);

  // The space came back: smaller blobs still go in and come out.
  const std::string small = RandomBytes(100'000, 81);
  const Digest small_digest = common::DigestOf(small);
  ASSERT_OK(blobs->Put(small_digest, small));
  ASSERT_OK_AND_ASSIGN(std::string back, blobs->Read(small_digest));
  EXPECT_EQ(back, small);
}

}  // namespace
}  // namespace farm::coordinator
