// Inputs: the agent's blob cache (fetch once, verify on use, LRU bound, concurrent fetches),
// staging under inputs/ in a workspace (paths checked again on the agent), and the whole flow
// (inputs → steps) against the fake AgentService with a fake CAS on the same address.
#include "agent/inputs.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/agent.h"
#include "agent/blob_cache.h"
#include "common/cas_client.h"
#include "common/channel.h"
#include "common/digest.h"
#include "tests/agent/fake_agent_service.h"
#include "tests/agent/test_util.h"
#include "tests/common/fake_cas.h"
#include "tests/testing/status_matchers.h"

namespace farm::agent {
namespace {

namespace fs = std::filesystem;
using ::farm::agent::testing::FakeAgentService;
using ::farm::agent::testing::ReadFile;
using ::farm::agent::testing::TempDir;
using ::farm::agent::testing::WaitFor;
using ::farm::testing::FakeCas;
using ::farm::testing::StatusIs;
using ::farm::testing::StatusIsWithMessage;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

bool IsExecutable(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && (st.st_mode & S_IXUSR) != 0;
}

// Files in `dir` (names), or empty when it does not exist.
std::vector<std::string> Listing(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    names.push_back(it->path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// The digest of a file's content (compared instead of the content: failures stay readable).
common::Digest DigestOfFile(const std::string& path) { return common::DigestOf(ReadFile(path)); }

// Replaces a (read-only) cached blob's bytes.
void Overwrite(const std::string& path, const std::string& data) {
  ::chmod(path.c_str(), 0644);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

farm::v1::Artifact MakeArtifact(const std::string& path, const std::string& data,
                                bool executable = false) {
  farm::v1::Artifact artifact;
  artifact.set_path(path);
  const common::Digest digest = common::DigestOf(data);
  artifact.set_hash(digest.hash);
  artifact.set_size(digest.size);
  artifact.set_executable(executable);
  return artifact;
}

farm::v1::JobInput MakeInput(const std::string& dir, std::vector<farm::v1::Artifact> artifacts) {
  farm::v1::JobInput input;
  input.set_dir(dir);
  input.set_job_id(absl::StrCat("job-", dir));
  for (farm::v1::Artifact& artifact : artifacts) *input.add_artifacts() = std::move(artifact);
  return input;
}

class BlobCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    const std::string address = cas_.Start();
    ASSERT_FALSE(address.empty());
    ASSERT_OK_AND_ASSIGN(std::shared_ptr<grpc::Channel> channel, common::MakeChannel(address));
    common::CasClientOptions options;
    options.initial_backoff_ms = 10;
    client_ = std::make_unique<common::CasClient>(channel, options);
    cache_dir_ = dir_.path() + "/work/cache/blobs";
    out_ = dir_.path() + "/out";
    fs::create_directories(out_);
  }

  std::unique_ptr<BlobCache> Open(int64_t max_bytes) {
    absl::StatusOr<std::unique_ptr<BlobCache>> cache =
        BlobCache::Open({cache_dir_, max_bytes}, client_.get());
    EXPECT_OK(cache.status());
    return cache.ok() ? *std::move(cache) : nullptr;
  }
  // Stores `data` in the CAS; returns its digest.
  common::Digest Blob(const std::string& data) {
    cas_.Put(data);
    return common::DigestOf(data);
  }
  std::string Out(const std::string& name) const { return out_ + "/" + name; }

  TempDir dir_;
  FakeCas cas_;
  std::unique_ptr<common::CasClient> client_;
  std::string cache_dir_;
  std::string out_;
};

TEST_F(BlobCacheTest, ABlobIsFetchedOnceThenServedFromTheCache) {
  std::unique_ptr<BlobCache> cache = Open(1 << 20);
  const std::string data(100'000, 'a');
  const common::Digest digest = Blob(data);

  ASSERT_OK(cache->Materialize(digest, Out("first"), /*executable=*/true, nullptr));
  EXPECT_EQ(DigestOfFile(Out("first")), digest);
  EXPECT_TRUE(IsExecutable(Out("first")));
  EXPECT_EQ(cas_.stats().read_streams, 1);
  EXPECT_TRUE(cache->Contains(digest));
  EXPECT_EQ(DigestOfFile(cache->PathOf(digest)), digest);
  EXPECT_EQ(cache->bytes(), digest.size);

  ASSERT_OK(cache->Materialize(digest, Out("second"), /*executable=*/false, nullptr));
  EXPECT_EQ(DigestOfFile(Out("second")), digest);
  EXPECT_FALSE(IsExecutable(Out("second")));
  EXPECT_EQ(cas_.stats().read_streams, 1) << "the cached blob was fetched again";
  const BlobCache::Stats stats = cache->stats();
  EXPECT_EQ(stats.misses, 1);
  EXPECT_EQ(stats.hits, 1);
  EXPECT_EQ(stats.bytes_fetched, digest.size);

  // The copies are the workspace's own: changing one does not change the cache.
  Overwrite(Out("second"), "changed by a step");
  ASSERT_OK(cache->Materialize(digest, Out("third"), false, nullptr));
  EXPECT_EQ(DigestOfFile(Out("third")), digest);
  EXPECT_EQ(cache->stats().corrupt, 0);
}

TEST_F(BlobCacheTest, AnExistingDestinationIsNotReplaced) {
  std::unique_ptr<BlobCache> cache = Open(1 << 20);
  const common::Digest digest = Blob("content");
  Overwrite(Out("taken"), "already here");
  EXPECT_THAT(cache->Materialize(digest, Out("taken"), false, nullptr),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_EQ(ReadFile(Out("taken")), "already here");
}

TEST_F(BlobCacheTest, ACorruptCachedBlobIsDetectedRemovedAndFetchedAgain) {
  std::unique_ptr<BlobCache> cache = Open(1 << 20);
  const std::string data(50'000, 'x');
  const common::Digest digest = Blob(data);
  ASSERT_OK(cache->Materialize(digest, Out("a"), false, nullptr));
  // Same size, other bytes: only the hash can tell.
  Overwrite(cache->PathOf(digest), std::string(50'000, 'y'));

  ASSERT_OK(cache->Materialize(digest, Out("b"), false, nullptr));
  EXPECT_EQ(DigestOfFile(Out("b")), digest);
  EXPECT_EQ(DigestOfFile(cache->PathOf(digest)), digest) << "the cache entry was not repaired";
  BlobCache::Stats stats = cache->stats();
  EXPECT_EQ(stats.corrupt, 1);
  EXPECT_EQ(stats.misses, 2);
  EXPECT_EQ(cas_.stats().read_streams, 2);

  // A cached blob someone deleted is fetched again too.
  ASSERT_EQ(::unlink(cache->PathOf(digest).c_str()), 0);
  ASSERT_OK(cache->Materialize(digest, Out("c"), false, nullptr));
  EXPECT_EQ(DigestOfFile(Out("c")), digest);
  stats = cache->stats();
  EXPECT_EQ(stats.corrupt, 2);
  EXPECT_EQ(stats.misses, 3);
  EXPECT_EQ(cache->bytes(), digest.size);
}

TEST_F(BlobCacheTest, ABlobCorruptInTheStoreFailsAfterOneRetry) {
  std::unique_ptr<BlobCache> cache = Open(1 << 20);
  const common::Digest digest = common::DigestOf("the real content");
  cas_.PutRaw(digest.ToString(), "something else!!");  // same size, wrong bytes
  EXPECT_THAT(cache->Materialize(digest, Out("a"), false, nullptr),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_EQ(cas_.stats().read_streams, 2);
  EXPECT_FALSE(fs::exists(Out("a")));
  EXPECT_FALSE(cache->Contains(digest));
  EXPECT_THAT(Listing(cache_dir_), IsEmpty()) << "a temporary file was left behind";
}

TEST_F(BlobCacheTest, AMissingBlobIsNotFoundAndLeavesNothingBehind) {
  std::unique_ptr<BlobCache> cache = Open(1 << 20);
  const common::Digest digest = common::DigestOf("never uploaded");
  EXPECT_THAT(cache->Materialize(digest, Out("a"), false, nullptr),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_FALSE(fs::exists(Out("a")));
  EXPECT_EQ(cache->entries(), 0);
  EXPECT_THAT(Listing(cache_dir_), IsEmpty());
  // The store gets it later: the next try fetches it.
  cas_.Put("never uploaded");
  ASSERT_OK(cache->Materialize(digest, Out("a"), false, nullptr));
  EXPECT_EQ(ReadFile(Out("a")), "never uploaded");
}

TEST_F(BlobCacheTest, EvictionAtTheBoundKeepsTheMostRecentlyUsed) {
  std::unique_ptr<BlobCache> cache = Open(300);
  const common::Digest a = Blob(std::string(100, 'a'));
  const common::Digest b = Blob(std::string(100, 'b'));
  const common::Digest c = Blob(std::string(100, 'c'));
  const common::Digest d = Blob(std::string(100, 'd'));
  ASSERT_OK(cache->Materialize(a, Out("a1"), false, nullptr));
  ASSERT_OK(cache->Materialize(b, Out("b1"), false, nullptr));
  ASSERT_OK(cache->Materialize(c, Out("c1"), false, nullptr));
  EXPECT_EQ(cache->stats().evictions, 0);
  ASSERT_OK(cache->Materialize(a, Out("a2"), false, nullptr));  // a is now the most recent

  ASSERT_OK(cache->Materialize(d, Out("d1"), false, nullptr));
  EXPECT_TRUE(cache->Contains(a));
  EXPECT_FALSE(cache->Contains(b)) << "b was the least recently used";
  EXPECT_TRUE(cache->Contains(c));
  EXPECT_TRUE(cache->Contains(d));
  EXPECT_FALSE(fs::exists(cache->PathOf(b)));
  EXPECT_EQ(cache->stats().evictions, 1);
  EXPECT_EQ(cache->bytes(), 300);
  EXPECT_EQ(Listing(cache_dir_).size(), 3u);

  // b again: a miss, and now c is the oldest.
  ASSERT_OK(cache->Materialize(b, Out("b2"), false, nullptr));
  EXPECT_FALSE(cache->Contains(c));
  EXPECT_TRUE(cache->Contains(a));
  EXPECT_EQ(cache->stats().misses, 5);
}

TEST_F(BlobCacheTest, ABlobLargerThanTheBoundIsFetchedButNotCached) {
  std::unique_ptr<BlobCache> cache = Open(1000);
  const common::Digest small = Blob(std::string(500, 's'));
  const common::Digest big = Blob(std::string(5000, 'B'));
  ASSERT_OK(cache->Materialize(small, Out("small"), false, nullptr));
  ASSERT_OK(cache->Materialize(big, Out("big"), true, nullptr));
  EXPECT_EQ(ReadFile(Out("big")), std::string(5000, 'B'));
  EXPECT_TRUE(IsExecutable(Out("big")));
  EXPECT_FALSE(cache->Contains(big));
  EXPECT_TRUE(cache->Contains(small)) << "a blob that never fits pushed others out";
}

TEST_F(BlobCacheTest, LastUseSurvivesARestartAndLeftoversAreRemoved) {
  const common::Digest a = Blob(std::string(100, 'a'));
  const common::Digest b = Blob(std::string(100, 'b'));
  {
    std::unique_ptr<BlobCache> cache = Open(1000);
    ASSERT_OK(cache->Materialize(a, Out("a1"), false, nullptr));
    ASSERT_OK(cache->Materialize(b, Out("b1"), false, nullptr));
    // Both last used an hour ago; then a is used again (now).
    const struct timespec hour_ago[2] = {{0, UTIME_OMIT}, {::time(nullptr) - 3600, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, cache->PathOf(a).c_str(), hour_ago, 0), 0);
    ASSERT_EQ(::utimensat(AT_FDCWD, cache->PathOf(b).c_str(), hour_ago, 0), 0);
    ASSERT_OK(cache->Materialize(a, Out("a2"), false, nullptr));
  }
  // What an agent killed in the middle of a fetch leaves.
  Overwrite(cache_dir_ + "/.deadbeef.farm-0123456789ab", "partial");

  // Restarted with room for one blob: the most recently used stays.
  std::unique_ptr<BlobCache> cache = Open(150);
  EXPECT_TRUE(cache->Contains(a));
  EXPECT_FALSE(cache->Contains(b));
  EXPECT_EQ(cache->bytes(), 100);
  EXPECT_EQ(Listing(cache_dir_), std::vector<std::string>{a.hash});
  ASSERT_OK(cache->Materialize(a, Out("a3"), false, nullptr));
  EXPECT_EQ(cache->stats().hits, 1);
  EXPECT_EQ(cache->stats().misses, 0);
}

TEST_F(BlobCacheTest, ConcurrentCallersFetchABlobOnce) {
  std::unique_ptr<BlobCache> cache = Open(64 << 20);
  cas_.SetReadChunkBytes(4 << 10);  // a slow fetch, so that the callers overlap
  std::string data(2 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7919 % 251);
  const common::Digest digest = Blob(data);

  constexpr int kCallers = 6;
  std::vector<absl::Status> results(kCallers);
  std::vector<std::thread> threads;
  for (int i = 0; i < kCallers; ++i) {
    threads.emplace_back([&, i] {
      results[i] = cache->Materialize(digest, Out(absl::StrCat("copy", i)), false, nullptr);
    });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < kCallers; ++i) {
    ASSERT_OK(results[i]);
    EXPECT_EQ(DigestOfFile(Out(absl::StrCat("copy", i))), digest) << i;
  }
  EXPECT_EQ(cas_.stats().read_streams, 1);
  const BlobCache::Stats stats = cache->stats();
  EXPECT_EQ(stats.misses, 1);
  EXPECT_EQ(stats.hits, kCallers - 1);
  EXPECT_EQ(stats.bytes_fetched, digest.size);
  EXPECT_EQ(Listing(cache_dir_), std::vector<std::string>{digest.hash});
}

TEST_F(BlobCacheTest, ZeroBytesDisablesTheCacheAndEmptiesIt) {
  const common::Digest digest = Blob("cached before");
  {
    std::unique_ptr<BlobCache> cache = Open(1000);
    ASSERT_OK(cache->Materialize(digest, Out("a"), false, nullptr));
    ASSERT_TRUE(fs::exists(cache->PathOf(digest)));
  }
  std::unique_ptr<BlobCache> cache = Open(0);
  EXPECT_THAT(Listing(cache_dir_), IsEmpty());
  ASSERT_OK(cache->Materialize(digest, Out("b"), false, nullptr));
  ASSERT_OK(cache->Materialize(digest, Out("c"), false, nullptr));
  EXPECT_EQ(ReadFile(Out("c")), "cached before");
  EXPECT_EQ(cache->stats().misses, 2);
  EXPECT_EQ(cache->stats().hits, 0);
  EXPECT_THAT(Listing(cache_dir_), IsEmpty());
}

TEST_F(BlobCacheTest, TheEmptyBlobNeedsNoFetch) {
  std::unique_ptr<BlobCache> cache = Open(1000);
  ASSERT_OK(cache->Materialize(common::EmptyDigest(), Out("empty"), true, nullptr));
  EXPECT_TRUE(fs::exists(Out("empty")));
  EXPECT_EQ(fs::file_size(Out("empty")), 0u);
  EXPECT_TRUE(IsExecutable(Out("empty")));
  EXPECT_EQ(cas_.stats().read_streams, 0);
}

class StageInputsTest : public BlobCacheTest {
 protected:
  void SetUp() override {
    BlobCacheTest::SetUp();
    workspace_ = dir_.path() + "/work/ws";
    fs::create_directories(workspace_);
    cache_ = Open(1 << 20);
  }
  absl::StatusOr<StagingStats> Stage(const std::vector<farm::v1::JobInput>& inputs) {
    google::protobuf::RepeatedPtrField<farm::v1::JobInput> list(inputs.begin(), inputs.end());
    return StageInputs(list, workspace_, *cache_, nullptr);
  }

  std::string workspace_;
  std::unique_ptr<BlobCache> cache_;
};

TEST_F(StageInputsTest, EachArtifactLandsAtInputsDirPathWithItsMode) {
  cas_.Put("#!/bin/sh\necho app\n");
  cas_.Put("library");
  cas_.Put("no findings");
  ASSERT_OK_AND_ASSIGN(
      StagingStats stats,
      Stage({MakeInput("build/amd64", {MakeArtifact("out/app", "#!/bin/sh\necho app\n", true),
                                       MakeArtifact("out/lib/libx.so", "library")}),
             MakeInput("lint",
                       {MakeArtifact("report.txt", "no findings"), MakeArtifact("empty", "")})}));
  EXPECT_EQ(stats.files, 4);
  const std::string in = workspace_ + "/inputs/";
  EXPECT_EQ(ReadFile(in + "build/amd64/out/app"), "#!/bin/sh\necho app\n");
  EXPECT_TRUE(IsExecutable(in + "build/amd64/out/app"));
  EXPECT_EQ(ReadFile(in + "build/amd64/out/lib/libx.so"), "library");
  EXPECT_FALSE(IsExecutable(in + "build/amd64/out/lib/libx.so"));
  EXPECT_EQ(ReadFile(in + "lint/report.txt"), "no findings");
  EXPECT_TRUE(fs::exists(in + "lint/empty"));
}

TEST_F(StageInputsTest, UnsafeDirsAndPathsAreRefusedBeforeAnythingIsWritten) {
  cas_.Put("x");
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"../escape", "x"}, {"/abs", "x"},    {"a//b", "x"},   {"", "x"},  {".", "x"},
      {"ok", "../../x"},  {"ok", "/etc/x"}, {"ok", "a/./b"}, {"ok", ""}, {"a/../../b", "x"},
  };
  for (const auto& [dir, path] : bad) {
    EXPECT_THAT(Stage({MakeInput("first", {MakeArtifact("fine", "x")}),
                       MakeInput(dir, {MakeArtifact(path, "x")})}),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << "dir \"" << dir << "\" path \"" << path << "\"";
  }
  farm::v1::Artifact bad_hash = MakeArtifact("f", "x");
  bad_hash.set_hash("ABC");
  EXPECT_THAT(Stage({MakeInput("d", {bad_hash})}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Stage({MakeInput("a", {MakeArtifact("b/c", "x")}),
                     MakeInput("a/b", {MakeArtifact("c", "x")})}),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("twice")));
  EXPECT_THAT(Listing(workspace_), IsEmpty());
  EXPECT_FALSE(fs::exists(dir_.path() + "/work/escape"));
  EXPECT_EQ(cas_.stats().read_streams, 0);
}

TEST_F(StageInputsTest, AMissingBlobNamesTheInput) {
  cas_.Put("present");
  EXPECT_THAT(
      Stage({MakeInput("build/amd64", {MakeArtifact("out/lib", "present"),
                                       MakeArtifact("out/app", "not uploaded")})}),
      StatusIsWithMessage(absl::StatusCode::kNotFound,
                          StartsWith("cannot stage input build/amd64/out/app: NOT_FOUND: ")));
}

// The whole flow: a leased job with inputs, against the fake coordinator and its CAS.
class AgentInputsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (grpc::Service* service : cas_.services()) fake_.AddService(service);
    address_ = fake_.Start();
    ASSERT_FALSE(address_.empty());
    fake_.SetTimings(/*lease_ttl_ms=*/30'000, /*heartbeat_interval_ms=*/200);
    options_.coordinator = address_;
    options_.security.insecure = true;  // the test coordinator speaks plaintext
    options_.name = "test-agent";
    options_.slots = 1;
    options_.work_dir = dir_.path() + "/work";
    options_.lease_wait_ms = 500;
    options_.version = "test";
  }
  void TearDown() override {
    if (agent_ != nullptr) agent_->Shutdown();
  }
  void StartAgent() {
    agent_ = std::make_unique<Agent>(options_);
    ASSERT_OK(agent_->Init());
    ASSERT_OK(agent_->Start());
  }

  bool WaitCompleted(const std::string& id) {
    return fake_.WaitUntil([&](const FakeAgentService::State& s) {
      auto it = s.jobs.find(id);
      return it != s.jobs.end() && it->second.completions > 0;
    });
  }
  FakeAgentService::FakeJob Run(const std::string& id, const farm::v1::JobSpec& spec,
                                const std::vector<farm::v1::JobInput>& inputs) {
    fake_.AddJob(id, spec, inputs);
    EXPECT_TRUE(WaitCompleted(id)) << "job " << id << " did not complete";
    return fake_.Snapshot().jobs[id];
  }
  static farm::v1::JobSpec Spec(const std::string& run) {
    farm::v1::JobSpec spec;
    spec.set_name("uses-inputs");
    farm::v1::StepSpec* step = spec.add_steps();
    step->set_name("use");
    step->set_run(run);
    return spec;
  }

  FakeCas cas_;  // declared first: it must outlive the server that serves it
  FakeAgentService fake_;
  TempDir dir_;
  AgentOptions options_;
  std::string address_;
  std::unique_ptr<Agent> agent_;
};

TEST_F(AgentInputsTest, InputsAreStagedBeforeTheFirstStep) {
  StartAgent();
  cas_.Put("#!/bin/sh\necho built app\n");
  cas_.Put("lint: clean\n");
  const FakeAgentService::FakeJob job =
      Run("j1",
          Spec("inputs/build/amd64/out/app; cat inputs/lint/report.txt; "
               "test -x inputs/lint/report.txt || echo not-executable"),
          {MakeInput("build/amd64", {MakeArtifact("out/app", "#!/bin/sh\necho built app\n", true)}),
           MakeInput("lint", {MakeArtifact("report.txt", "lint: clean\n")})});
  EXPECT_EQ(job.outcome, farm::v1::ATTEMPT_SUCCEEDED) << job.reason;
  EXPECT_EQ(job.logs.at(0), "built app\nlint: clean\nnot-executable\n");
}

TEST_F(AgentInputsTest, ASecondJobNeedingTheSameBlobDoesNotFetchItAgain) {
  StartAgent();
  const std::string data(300'000, 'z');
  cas_.Put(data);
  const std::vector<farm::v1::JobInput> inputs = {
      MakeInput("build", {MakeArtifact("out/big.bin", data)})};
  FakeAgentService::FakeJob job = Run("j1", Spec("wc -c < inputs/build/out/big.bin"), inputs);
  EXPECT_EQ(job.outcome, farm::v1::ATTEMPT_SUCCEEDED) << job.reason;
  EXPECT_EQ(job.logs.at(0), "300000\n");
  const BlobCache::Stats first = agent_->blob_cache()->stats();
  EXPECT_EQ(first.misses, 1);
  EXPECT_EQ(first.bytes_fetched, 300'000);
  const int reads = cas_.stats().read_streams;
  EXPECT_EQ(reads, 1);

  // Another job, under another dir name, needs the same content.
  job = Run("j2", Spec("wc -c < inputs/other/big.bin"),
            {MakeInput("other", {MakeArtifact("big.bin", data)})});
  EXPECT_EQ(job.outcome, farm::v1::ATTEMPT_SUCCEEDED) << job.reason;
  EXPECT_EQ(job.logs.at(0), "300000\n");
  const BlobCache::Stats second = agent_->blob_cache()->stats();
  EXPECT_EQ(second.hits, first.hits + 1);
  EXPECT_EQ(second.misses, first.misses);
  EXPECT_EQ(second.bytes_fetched, first.bytes_fetched);
  EXPECT_EQ(cas_.stats().read_streams, reads);
  // The cache lives in the work dir, next to (not in) the removed workspaces.
  EXPECT_TRUE(
      fs::exists(absl::StrCat(options_.work_dir, "/cache/blobs/", common::DigestOf(data).hash)));
}

TEST_F(AgentInputsTest, AMissingInputFailsTheAttemptBeforeAnyStep) {
  StartAgent();
  cas_.Put("present");
  farm::v1::JobSpec spec = Spec("touch ran");
  spec.add_steps()->set_run("touch cleanup-ran");
  spec.mutable_steps(1)->set_when(farm::v1::WHEN_ALWAYS);
  const FakeAgentService::FakeJob job = Run(
      "j1", spec,
      {MakeInput("build/amd64",
                 {MakeArtifact("out/lib", "present"), MakeArtifact("out/app", "never uploaded")})});
  EXPECT_EQ(job.outcome, farm::v1::ATTEMPT_FAILED);
  EXPECT_THAT(job.reason, StartsWith("cannot stage input build/amd64/out/app: NOT_FOUND: "));
  EXPECT_THAT(job.started_steps, IsEmpty());
  EXPECT_TRUE(job.finished.empty());
}

TEST_F(AgentInputsTest, AnUnsafeInputPathFailsTheAttempt) {
  StartAgent();
  cas_.Put("x");
  const FakeAgentService::FakeJob job =
      Run("j1", Spec("true"), {MakeInput("../../escape", {MakeArtifact("x", "x")})});
  EXPECT_EQ(job.outcome, farm::v1::ATTEMPT_FAILED);
  EXPECT_THAT(job.reason, AllOf(HasSubstr("dir"), HasSubstr("../../escape")));
  EXPECT_THAT(job.started_steps, IsEmpty());
  EXPECT_FALSE(fs::exists(dir_.path() + "/escape"));
  EXPECT_EQ(cas_.stats().read_streams, 0);
}

TEST_F(AgentInputsTest, TheJobTimeoutBoundsStaging) {
  StartAgent();
  cas_.Put("slow");
  // Every read breaks: the client would retry with backoff for seconds before giving up.
  cas_.BreakNextReads(1000, 0);
  farm::v1::JobSpec spec = Spec("true");
  spec.set_timeout_ms(300);
  const FakeAgentService::FakeJob job =
      Run("j1", spec, {MakeInput("build", {MakeArtifact("slow", "slow")})});
  EXPECT_EQ(job.outcome, farm::v1::ATTEMPT_FAILED);
  EXPECT_EQ(job.reason, "job timed out after 300ms while staging its inputs");
  EXPECT_THAT(job.started_steps, IsEmpty());
}

TEST_F(AgentInputsTest, ACancelWhileStagingEndsTheAttemptWithoutAStep) {
  StartAgent();
  cas_.Put("slow");
  cas_.BreakNextReads(1000, 0);
  fake_.AddJob("j1", Spec("true"), {MakeInput("build", {MakeArtifact("slow", "slow")})});
  ASSERT_TRUE(WaitFor([&] { return cas_.stats().read_streams > 0; }));
  fake_.CancelJob("j1");
  ASSERT_TRUE(WaitCompleted("j1"));
  const FakeAgentService::FakeJob job = fake_.Snapshot().jobs["j1"];
  EXPECT_EQ(job.outcome, farm::v1::ATTEMPT_CANCELLED);
  EXPECT_EQ(job.reason, "cancelled");
  EXPECT_THAT(job.started_steps, IsEmpty());
}

}  // namespace
}  // namespace farm::agent
