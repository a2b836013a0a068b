#include "coordinator/cas/action_cache.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <optional>
#include <string>

#include "common/clock.h"
#include "coordinator/cas/file_blob_store.h"
#include "coordinator/store/memory_store.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace farm::coordinator {
namespace {

namespace reapi = build::bazel::remote::execution::v2;
using ::farm::testing::StatusIs;
using ::farm::testing::StatusIsWithMessage;
using ::testing::HasSubstr;

reapi::Digest ToProto(const Digest& d) {
  reapi::Digest out;
  out.set_hash(d.hash);
  out.set_size_bytes(d.size);
  return out;
}

class ActionCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(auto dir, testing::TempDir::Create("action-cache"));
    dir_.emplace(std::move(dir));
    FileBlobStoreOptions options;
    options.root = dir_->Join("cas");
    ASSERT_OK_AND_ASSIGN(blobs_, FileBlobStore::Open(options, &store_, &clock_));
    cache_.emplace(&store_, blobs_.get());
  }

  Digest Put(const std::string& data) {
    const Digest d = common::DigestOf(data);
    EXPECT_OK(blobs_->Put(d, data));
    return d;
  }

  // Makes the store lose a blob the way a corrupt disk would.
  void Lose(const Digest& d) {
    const std::string path = blobs_->BlobPath(d);
    ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
    ASSERT_OK(testing::WriteFile(path, std::string(static_cast<size_t>(d.size), '?')));
    EXPECT_THAT(blobs_->Read(d), StatusIs(absl::StatusCode::kDataLoss));
  }

  reapi::ActionResult Result(const Digest& out, const Digest& stdout_digest) {
    reapi::ActionResult r;
    auto* f = r.add_output_files();
    f->set_path("bazel-out/k8-fastbuild/bin/a.txt");
    *f->mutable_digest() = ToProto(out);
    f->set_is_executable(true);
    *r.mutable_stdout_digest() = ToProto(stdout_digest);
    r.set_exit_code(0);
    r.mutable_execution_metadata()->set_worker("test");
    return r;
  }

  std::optional<testing::TempDir> dir_;
  MemoryStore store_;
  common::FakeClock clock_;
  std::unique_ptr<FileBlobStore> blobs_;
  std::optional<ActionCache> cache_;
  const Digest action_ = common::DigestOf("an Action message");
};

TEST_F(ActionCacheTest, StoresAndServesResultsPerInstance) {
  EXPECT_THAT(cache_->Get("", action_), StatusIs(absl::StatusCode::kNotFound));
  const reapi::ActionResult r = Result(Put("output"), Put("stdout"));
  ASSERT_OK_AND_ASSIGN(reapi::ActionResult stored, cache_->Update("", action_, r));
  EXPECT_EQ(stored.SerializeAsString(), r.SerializeAsString());
  ASSERT_OK_AND_ASSIGN(reapi::ActionResult got, cache_->Get("", action_));
  EXPECT_EQ(got.SerializeAsString(), r.SerializeAsString());
  EXPECT_THAT(cache_->Get("other/instance", action_), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(ActionCacheTest, ResultWhoseOutputIsGoneIsAMissAndIsDropped) {
  const Digest out = Put("output that will be lost");
  ASSERT_OK(cache_->Update("", action_, Result(out, Put("stdout"))).status());
  Lose(out);
  EXPECT_THAT(cache_->Get("", action_),
              StatusIsWithMessage(absl::StatusCode::kNotFound, HasSubstr("no longer in the CAS")));
  ASSERT_OK_AND_ASSIGN(auto raw,
                       store_.Get(Cf::kActionCache, std::string(1, '\0') + action_.ToString()));
  EXPECT_FALSE(raw.has_value());
}

TEST_F(ActionCacheTest, ResultWhoseStdoutIsGoneIsAMiss) {
  const Digest out = Put("output");
  const Digest log = Put("stdout that will be lost");
  ASSERT_OK(cache_->Update("", action_, Result(out, log)).status());
  Lose(log);
  EXPECT_THAT(cache_->Get("", action_), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(ActionCacheTest, FilesInsideOutputDirectoriesMustBePresent) {
  const Digest inner = Put("a file deep in an output directory");
  reapi::Directory sub;
  auto* f = sub.add_files();
  f->set_name("deep.txt");
  *f->mutable_digest() = ToProto(inner);
  reapi::Tree tree;
  auto* child = tree.mutable_root()->add_directories();
  child->set_name("sub");
  *child->mutable_digest() = ToProto(common::DigestOf(sub.SerializeAsString()));
  *tree.add_children() = sub;
  const Digest tree_digest = Put(tree.SerializeAsString());

  reapi::ActionResult r;
  auto* dir = r.add_output_directories();
  dir->set_path("out");
  *dir->mutable_tree_digest() = ToProto(tree_digest);
  ASSERT_OK(cache_->Update("", action_, r).status());
  ASSERT_OK(cache_->Get("", action_).status());
  Lose(inner);
  EXPECT_THAT(cache_->Get("", action_), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(ActionCacheTest, UpdateRefusesResultsThatPointAtNothing) {
  const Digest absent = common::DigestOf("never uploaded");
  EXPECT_THAT(
      cache_->Update("", action_, Result(absent, common::EmptyDigest())),
      StatusIsWithMessage(absl::StatusCode::kFailedPrecondition, HasSubstr(absent.ToString())));
  reapi::ActionResult bad = Result(Put("x"), common::EmptyDigest());
  bad.mutable_output_files(0)->mutable_digest()->set_hash("ABC");
  EXPECT_THAT(cache_->Update("", action_, bad),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("a.txt")));
  EXPECT_THAT(cache_->Get("", action_), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(ActionCacheTest, OversizedResultsAreRefused) {
  reapi::ActionResult r;
  r.set_stdout_raw(std::string(kMaxActionResultBytes, 'x'));
  EXPECT_THAT(cache_->Update("", action_, r),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("limit")));
}

}  // namespace
}  // namespace farm::coordinator
