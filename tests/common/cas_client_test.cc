// common::CasClient against the in-process FakeCas: batching, streaming, resuming, verifying.
#include "common/cas_client.h"

#include <dirent.h>
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/channel.h"
#include "common/digest.h"
#include "tests/common/fake_cas.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace farm::common {
namespace {

using ::farm::testing::FakeCas;
using ::farm::testing::FileExists;
using ::farm::testing::ReadFile;
using ::farm::testing::StatusIs;
using ::farm::testing::TempDir;
using ::farm::testing::WriteFile;
using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::Le;
using ::testing::MatchesRegex;
using ::testing::SizeIs;

// Deterministic, incompressible-looking content of `size` bytes, different per `seed`.
std::string Content(size_t size, int seed) {
  std::string data(size, '\0');
  uint32_t x = 2654435761u * static_cast<uint32_t>(seed + 1);
  for (char& c : data) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>(x);
  }
  return data;
}

std::vector<std::string> ListDir(const std::string& path) {
  std::vector<std::string> names;
  if (DIR* dir = ::opendir(path.c_str())) {
    while (struct dirent* e = ::readdir(dir)) {
      const std::string name = e->d_name;
      if (name != "." && name != "..") names.push_back(name);
    }
    ::closedir(dir);
  }
  return names;
}

// A cancel source that has already fired.
class Fired final : public CancelSource {
 public:
  bool Attach(grpc::ClientContext*) override { return false; }
  void Detach(grpc::ClientContext*) override {}
  bool SleepFor(int64_t) override { return true; }
};

class CasClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    address_ = cas_.Start();
    ASSERT_FALSE(address_.empty());
    ASSERT_OK_AND_ASSIGN(TempDir dir, TempDir::Create("cas-client-test"));
    dir_.emplace(std::move(dir));
    options_.initial_backoff_ms = 1;
    options_.max_backoff_ms = 5;
    options_.attempts = 3;
    ASSERT_OK_AND_ASSIGN(channel_, MakeChannel(address_));
    client_ = std::make_unique<CasClient>(channel_, options_);
  }

  // Writes `data` to a file under the temp dir; returns its path and digest.
  std::pair<std::string, Digest> File(const std::string& name, const std::string& data) {
    const std::string path = dir_->Join(name);
    EXPECT_OK(WriteFile(path, data));
    return {path, DigestOf(data)};
  }

  FakeCas cas_;
  std::string address_;
  std::optional<TempDir> dir_;
  CasClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<CasClient> client_;
};

TEST_F(CasClientTest, FindMissingAndStat) {
  const std::string present = cas_.Put("present");
  const Digest absent = DigestOf("absent");
  ASSERT_OK_AND_ASSIGN(std::vector<Digest> missing,
                       client_->FindMissing({*ParseDigest(present), absent, absent}));
  EXPECT_THAT(missing, ElementsAre(absent));
  EXPECT_THAT(client_->Stat(*ParseDigest(present)), ::farm::testing::IsOkAndHolds(true));
  EXPECT_THAT(client_->Stat(absent), ::farm::testing::IsOkAndHolds(false));
  EXPECT_THAT(client_->Stat(EmptyDigest()), ::farm::testing::IsOkAndHolds(true));
}

TEST_F(CasClientTest, FindMissingRetriesUnavailable) {
  cas_.FailNextFindMissing(2);
  EXPECT_THAT(client_->Stat(DigestOf("x")), ::farm::testing::IsOkAndHolds(false));
  EXPECT_EQ(cas_.stats().find_missing_calls, 3);
}

TEST_F(CasClientTest, FindMissingGivesUpAfterBoundedTries) {
  cas_.FailNextFindMissing(10);
  EXPECT_THAT(client_->Stat(DigestOf("x")), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(cas_.stats().find_missing_calls, options_.attempts);
}

TEST_F(CasClientTest, SmallFilesGoTogetherInOneBatch) {
  std::vector<CasClient::FileUpload> uploads;
  for (int i = 0; i < 5; ++i) {
    auto [path, digest] = File(absl::StrCat("f", i), Content(10'000, i));
    uploads.push_back({path, "", digest});
  }
  ASSERT_OK(client_->UploadFiles(uploads));
  const FakeCas::Stats stats = cas_.stats();
  EXPECT_THAT(stats.batch_sizes, ElementsAre(5));
  EXPECT_EQ(stats.write_streams, 0);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(cas_.Get(uploads[i].digest.ToString()), Content(10'000, i));
  }
}

TEST_F(CasClientTest, BatchesStayUnderTheServersLimit) {
  constexpr int64_t kLimit = 300 << 10;
  cas_.SetMaxBatchBytes(kLimit);
  std::vector<CasClient::FileUpload> uploads;
  for (int i = 0; i < 6; ++i) {
    auto [path, digest] = File(absl::StrCat("f", i), Content(100 << 10, i));
    uploads.push_back({path, "", digest});
  }
  // The fake refuses a batch over its limit, so success means every batch fitted.
  ASSERT_OK(client_->UploadFiles(uploads));
  const FakeCas::Stats stats = cas_.stats();
  EXPECT_GE(stats.batch_update_calls, 3);
  EXPECT_THAT(stats.batch_sizes, Each(Le(2)));
  EXPECT_EQ(cas_.blob_count(), 6u);
}

TEST_F(CasClientTest, LargeFilesAreStreamedWithAnUploadResourceName) {
  const std::string data = Content((3 << 20) + 12345, 7);
  auto [path, digest] = File("big", data);
  ASSERT_OK(client_->UploadFile(path, digest));
  const FakeCas::Stats stats = cas_.stats();
  EXPECT_EQ(stats.batch_update_calls, 0);
  EXPECT_EQ(stats.write_streams, 1);
  EXPECT_EQ(stats.write_bytes, static_cast<int64_t>(data.size()));
  ASSERT_THAT(stats.write_resources, SizeIs(1));
  EXPECT_THAT(
      stats.write_resources[0],
      MatchesRegex(absl::StrCat("uploads/[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                                "[0-9a-f]{12}/blobs/",
                                digest.hash, "/", digest.size)));
  EXPECT_EQ(cas_.Get(digest.ToString()), data);
}

TEST_F(CasClientTest, AnInterruptedWriteResumesWhereTheServerIs) {
  const std::string data = Content(3 << 20, 3);
  auto [path, digest] = File("big", data);
  cas_.BreakNextWrites(1, (3 << 20) / 2);
  ASSERT_OK(client_->UploadFile(path, digest));
  const FakeCas::Stats stats = cas_.stats();
  EXPECT_EQ(stats.write_streams, 2);
  EXPECT_GE(stats.query_write_status_calls, 1);
  // Nothing was sent twice: the second stream started at the committed offset.
  EXPECT_EQ(stats.write_bytes, static_cast<int64_t>(data.size()));
  EXPECT_EQ(cas_.Get(digest.ToString()), data);
  // Both streams named the same upload.
  ASSERT_THAT(stats.write_resources, SizeIs(2));
  EXPECT_EQ(stats.write_resources[0], stats.write_resources[1]);
}

TEST_F(CasClientTest, AWriteThatNeverProgressesGivesUp) {
  auto [path, digest] = File("big", Content(2 << 20, 4));
  cas_.BreakNextWrites(100, 0);
  EXPECT_THAT(client_->UploadFile(path, digest), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(cas_.stats().write_streams, options_.attempts);
  EXPECT_FALSE(cas_.Has(digest.ToString()));
}

TEST_F(CasClientTest, AFileThatChangedAfterHashingIsRefused) {
  auto [path, digest] = File("f", "original");
  ASSERT_OK(WriteFile(path, "original plus more"));
  EXPECT_THAT(client_->UploadFile(path, digest), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(cas_.blob_count(), 0u);
}

TEST_F(CasClientTest, AWrongDigestOfTheSameSizeIsRefusedByTheStore) {
  auto [path, digest] = File("f", "aaaa");
  const Digest wrong = DigestOf("bbbb");
  EXPECT_THAT(client_->UploadFile(path, wrong), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_FALSE(cas_.Has(wrong.ToString()));
}

TEST_F(CasClientTest, TheEmptyBlobIsNeverSent) {
  auto [path, digest] = File("empty", "");
  ASSERT_OK(client_->UploadFile(path, digest));
  EXPECT_EQ(cas_.stats().batch_update_calls, 0);
  EXPECT_EQ(cas_.stats().write_streams, 0);
  const std::string out = dir_->Join("empty.out");
  ASSERT_OK(client_->Download(digest, out));
  EXPECT_THAT(ReadFile(out), ::farm::testing::IsOkAndHolds(""));
}

TEST_F(CasClientTest, DownloadWritesTheVerifiedBlobAndNothingElse) {
  const std::string data = Content(1 << 20, 5);
  const std::string key = cas_.Put(data);
  const std::string out_dir = dir_->Join("out");
  ASSERT_EQ(::mkdir(out_dir.c_str(), 0755), 0);
  ASSERT_OK(client_->Download(*ParseDigest(key), out_dir + "/blob"));
  EXPECT_THAT(ReadFile(out_dir + "/blob"), ::farm::testing::IsOkAndHolds(data));
  EXPECT_THAT(ListDir(out_dir), ElementsAre("blob"));  // no temporary file left
}

TEST_F(CasClientTest, DownloadSetsTheExecutableBit) {
  const std::string key = cas_.Put("#!/bin/sh\necho hi\n");
  const std::string tool = dir_->Join("tool");
  const std::string data = dir_->Join("data");
  ASSERT_OK(client_->Download(*ParseDigest(key), tool, /*executable=*/true));
  ASSERT_OK(client_->Download(*ParseDigest(key), data, /*executable=*/false));
  struct stat st;
  ASSERT_EQ(::stat(tool.c_str(), &st), 0);
  EXPECT_NE(st.st_mode & S_IXUSR, 0u);
  ASSERT_EQ(::stat(data.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & S_IXUSR, 0u);
}

TEST_F(CasClientTest, ABrokenReadResumesAtTheOffsetReached) {
  const std::string data = Content(1 << 20, 6);
  const std::string key = cas_.Put(data);
  cas_.BreakNextReads(1, 300'000);
  const std::string out = dir_->Join("blob");
  ASSERT_OK(client_->Download(*ParseDigest(key), out));
  EXPECT_THAT(ReadFile(out), ::farm::testing::IsOkAndHolds(data));
  EXPECT_THAT(cas_.stats().read_offsets, ElementsAre(0, 300'000));
}

TEST_F(CasClientTest, ACorruptBlobIsDataLossAndLeavesTheDestinationAlone) {
  const Digest digest = DigestOf("the real content");
  cas_.PutRaw(digest.ToString(), "something else!!");  // same size, other bytes
  const std::string out_dir = dir_->Join("out");
  ASSERT_EQ(::mkdir(out_dir.c_str(), 0755), 0);
  ASSERT_OK(WriteFile(out_dir + "/file", "previous"));
  EXPECT_THAT(client_->Download(digest, out_dir + "/file"), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(ReadFile(out_dir + "/file"), ::farm::testing::IsOkAndHolds("previous"));
  EXPECT_THAT(ListDir(out_dir), ElementsAre("file"));

  // A blob shorter than its digest says is caught too.
  const Digest longer = DigestOf("0123456789");
  cas_.PutRaw(longer.ToString(), "01234");
  EXPECT_THAT(client_->Download(longer, out_dir + "/other"), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_FALSE(FileExists(out_dir + "/other"));
  EXPECT_THAT(ListDir(out_dir), ElementsAre("file"));
}

TEST_F(CasClientTest, AMissingBlobIsNotFound) {
  const std::string out = dir_->Join("x");
  EXPECT_THAT(client_->Download(DigestOf("nope"), out), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_FALSE(FileExists(out));
}

TEST_F(CasClientTest, ACancelledSourceStopsCalls) {
  Fired fired;
  auto [path, digest] = File("f", "data");
  EXPECT_THAT(client_->UploadFile(path, digest, &fired), StatusIs(absl::StatusCode::kCancelled));
  EXPECT_THAT(client_->Download(*ParseDigest(cas_.Put("abc")), dir_->Join("y"), false, &fired),
              StatusIs(absl::StatusCode::kCancelled));
  EXPECT_FALSE(FileExists(dir_->Join("y")));
}

TEST(CasClientUnreachableTest, CallsFailWithUnavailable) {
  std::string address;
  {
    FakeCas gone;
    address = gone.Start();
    ASSERT_FALSE(address.empty());
  }
  CasClientOptions options;
  options.initial_backoff_ms = 1;
  options.max_backoff_ms = 2;
  options.attempts = 2;
  ASSERT_OK_AND_ASSIGN(auto channel, MakeChannel(address));
  CasClient client(channel, options);
  EXPECT_THAT(client.Stat(DigestOf("x")), StatusIs(absl::StatusCode::kUnavailable));
}

}  // namespace
}  // namespace farm::common
