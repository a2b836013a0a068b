// The REAPI services of a real Coordinator, in-process on 127.0.0.1:0 with a temporary data
// directory, driven through the generated stubs the way Bazel and the farm's clients drive them.
#include "coordinator/service/cas_service.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "build/bazel/remote/execution/v2/remote_execution.grpc.pb.h"
#include "common/channel.h"
#include "common/digest.h"
#include "coordinator/coordinator.h"
#include "google/bytestream/bytestream.grpc.pb.h"
#include "tests/coordinator/cas/blob_testing.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace farm::coordinator {
namespace {

using cas_testing::RandomBytes;

namespace reapi = build::bazel::remote::execution::v2;
namespace bs = google::bytestream;
using common::Digest;
using ::testing::HasSubstr;

std::unique_ptr<grpc::ClientContext> Ctx(int seconds = 20) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  return ctx;
}

reapi::Digest ToProto(const Digest& d) {
  reapi::Digest out;
  out.set_hash(d.hash);
  out.set_size_bytes(d.size);
  return out;
}

std::string ReadName(const Digest& d, const std::string& instance = "") {
  return absl::StrCat(instance.empty() ? "" : instance + "/", "blobs/", d.hash, "/", d.size);
}

std::string WriteName(const Digest& d, const std::string& uuid, const std::string& instance = "") {
  return absl::StrCat(instance.empty() ? "" : instance + "/", "uploads/", uuid, "/blobs/", d.hash,
                      "/", d.size);
}

class CasServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(auto dir, testing::TempDir::Create("cas-service"));
    dir_.emplace(std::move(dir));
    CoordinatorOptions options;
    options.listen = "127.0.0.1:0";
    options.insecure = true;
    options.data_dir = dir_->path();
    coordinator_ = std::make_unique<Coordinator>(options);
    ASSERT_OK(coordinator_->Init());
    ASSERT_OK(coordinator_->Start());
    ASSERT_OK_AND_ASSIGN(auto channel, common::MakeChannel(coordinator_->address()));
    capabilities_ = reapi::Capabilities::NewStub(channel);
    cas_ = reapi::ContentAddressableStorage::NewStub(channel);
    ac_ = reapi::ActionCache::NewStub(channel);
    bytestream_ = bs::ByteStream::NewStub(channel);
  }

  void TearDown() override { coordinator_.reset(); }

  // Writes `data` in `chunk`-byte messages from `offset`; finish_write on the last one when
  // `finish`. The response and the call's status.
  std::pair<grpc::Status, int64_t> Write(const std::string& name, const std::string& data,
                                         size_t chunk, int64_t offset = 0, bool finish = true) {
    auto ctx = Ctx();
    bs::WriteResponse resp;
    auto writer = bytestream_->Write(ctx.get(), &resp);
    size_t pos = static_cast<size_t>(offset);
    bool first = true;
    do {
      bs::WriteRequest req;
      if (first) req.set_resource_name(name);
      first = false;
      req.set_write_offset(static_cast<int64_t>(pos));
      const size_t n = std::min(chunk, data.size() - pos);
      req.set_data(data.substr(pos, n));
      pos += n;
      req.set_finish_write(finish && pos == data.size());
      if (!writer->Write(req)) break;
    } while (pos < data.size());
    writer->WritesDone();
    grpc::Status s = writer->Finish();
    return {s, resp.committed_size()};
  }

  // Reads a resource; the bytes, the number of messages and the status.
  struct ReadResult {
    grpc::Status status;
    std::string data;
    int messages = 0;
  };
  ReadResult Read(const std::string& name, int64_t offset = 0, int64_t limit = 0) {
    auto ctx = Ctx();
    bs::ReadRequest req;
    req.set_resource_name(name);
    req.set_read_offset(offset);
    req.set_read_limit(limit);
    auto reader = bytestream_->Read(ctx.get(), req);
    ReadResult out;
    bs::ReadResponse resp;
    while (reader->Read(&resp)) {
      out.data += resp.data();
      ++out.messages;
    }
    out.status = reader->Finish();
    return out;
  }

  std::vector<std::string> Missing(const std::vector<Digest>& digests) {
    reapi::FindMissingBlobsRequest req;
    for (const Digest& d : digests) *req.add_blob_digests() = ToProto(d);
    reapi::FindMissingBlobsResponse resp;
    grpc::Status s = cas_->FindMissingBlobs(Ctx().get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    std::vector<std::string> out;
    for (const auto& d : resp.missing_blob_digests()) out.push_back(d.hash());
    return out;
  }

  std::string BlobPath(const Digest& d) const {
    return absl::StrCat(dir_->path(), "/cas/blobs/", d.hash.substr(0, 2), "/", d.hash);
  }

  std::optional<testing::TempDir> dir_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<reapi::Capabilities::Stub> capabilities_;
  std::unique_ptr<reapi::ContentAddressableStorage::Stub> cas_;
  std::unique_ptr<reapi::ActionCache::Stub> ac_;
  std::unique_ptr<bs::ByteStream::Stub> bytestream_;
};

TEST_F(CasServiceTest, AdvertisesSha256CacheCapabilities) {
  reapi::GetCapabilitiesRequest req;
  req.set_instance_name("any/instance");
  reapi::ServerCapabilities caps;
  grpc::Status s = capabilities_->GetCapabilities(Ctx().get(), req, &caps);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(caps.cache_capabilities().digest_functions_size(), 1);
  EXPECT_EQ(caps.cache_capabilities().digest_functions(0), reapi::DigestFunction::SHA256);
  EXPECT_TRUE(caps.cache_capabilities().action_cache_update_capabilities().update_enabled());
  EXPECT_EQ(caps.cache_capabilities().max_batch_total_size_bytes(), kMaxBatchTotalBytes);
  EXPECT_LT(caps.cache_capabilities().max_batch_total_size_bytes(), common::kMaxGrpcMessageBytes);
  EXPECT_EQ(caps.low_api_version().major(), 2);
  EXPECT_EQ(caps.low_api_version().minor(), 0);
  EXPECT_EQ(caps.high_api_version().major(), 2);
  EXPECT_FALSE(caps.has_execution_capabilities());
}

TEST_F(CasServiceTest, BatchUploadFindAndRead) {
  const std::string a = "alpha", b = RandomBytes(100'000, 1);
  const Digest da = common::DigestOf(a), db = common::DigestOf(b);
  EXPECT_EQ(Missing({da, db, common::EmptyDigest()}), (std::vector<std::string>{da.hash, db.hash}));

  reapi::BatchUpdateBlobsRequest up;
  auto* r1 = up.add_requests();
  *r1->mutable_digest() = ToProto(da);
  r1->set_data(a);
  auto* r2 = up.add_requests();
  *r2->mutable_digest() = ToProto(db);
  r2->set_data(b);
  auto* bad = up.add_requests();  // data that does not match its digest
  *bad->mutable_digest() = ToProto(common::DigestOf("claimed"));
  bad->set_data("claimes");
  auto* malformed = up.add_requests();
  malformed->mutable_digest()->set_hash("xyz");
  reapi::BatchUpdateBlobsResponse up_resp;
  grpc::Status s = cas_->BatchUpdateBlobs(Ctx().get(), up, &up_resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(up_resp.responses_size(), 4);
  EXPECT_EQ(up_resp.responses(0).status().code(), 0);
  EXPECT_EQ(up_resp.responses(1).status().code(), 0);
  EXPECT_EQ(up_resp.responses(2).status().code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(up_resp.responses(3).status().code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(up_resp.responses(2).digest().hash(), common::DigestOf("claimed").hash);

  EXPECT_TRUE(Missing({da, db}).empty());
  EXPECT_EQ(Missing({common::DigestOf("claimed")}).size(), 1u);

  reapi::BatchReadBlobsRequest rd;
  *rd.add_digests() = ToProto(db);
  *rd.add_digests() = ToProto(common::DigestOf("absent"));
  *rd.add_digests() = ToProto(da);
  reapi::BatchReadBlobsResponse rd_resp;
  s = cas_->BatchReadBlobs(Ctx().get(), rd, &rd_resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(rd_resp.responses_size(), 3);
  EXPECT_EQ(rd_resp.responses(0).data(), b);
  EXPECT_EQ(rd_resp.responses(1).status().code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(rd_resp.responses(2).data(), a);
  EXPECT_EQ(rd_resp.responses(2).digest().hash(), da.hash);
}

TEST_F(CasServiceTest, BadDigestsAndOversizeBatchesAreRejected) {
  reapi::FindMissingBlobsRequest req;
  auto* d = req.add_blob_digests();
  d->set_hash(std::string(63, 'a'));
  reapi::FindMissingBlobsResponse resp;
  grpc::Status s = cas_->FindMissingBlobs(Ctx().get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("64"));

  d->set_hash(std::string(64, 'a'));
  d->set_size_bytes(-1);
  s = cas_->FindMissingBlobs(Ctx().get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("negative"));

  d->set_size_bytes(1);
  req.set_digest_function(reapi::DigestFunction::MD5);
  s = cas_->FindMissingBlobs(Ctx().get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  req.set_digest_function(reapi::DigestFunction::SHA256);
  s = cas_->FindMissingBlobs(Ctx().get(), req, &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();

  // Over max_batch_total_size_bytes, in one message that gRPC still accepts.
  reapi::BatchUpdateBlobsRequest up;
  const std::string chunk(9 << 19, 'z');  // 3 x 4.5 MiB: above 12 MiB, below 16 MiB
  for (int i = 0; i < 3; ++i) {
    auto* r = up.add_requests();
    *r->mutable_digest() = ToProto(common::DigestOf(chunk));
    r->set_data(chunk);
  }
  reapi::BatchUpdateBlobsResponse up_resp;
  s = cas_->BatchUpdateBlobs(Ctx().get(), up, &up_resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr(absl::StrCat(kMaxBatchTotalBytes)));

  reapi::BatchReadBlobsRequest rd;
  for (int i = 0; i < 4; ++i) *rd.add_digests() = ToProto(Digest{std::string(64, 'c'), 4 << 20});
  reapi::BatchReadBlobsResponse rd_resp;
  s = cas_->BatchReadBlobs(Ctx().get(), rd, &rd_resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr(absl::StrCat(kMaxBatchTotalBytes)));
}

TEST_F(CasServiceTest, FindMissingBlobsHoldsAtMostTheBatchLimit) {
  reapi::FindMissingBlobsRequest req;
  for (int i = 0; i < kMaxBatchBlobs; ++i) {
    *req.add_blob_digests() = ToProto(common::DigestOf(absl::StrCat("blob ", i)));
  }
  reapi::FindMissingBlobsResponse resp;
  grpc::Status s = cas_->FindMissingBlobs(Ctx().get(), req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.missing_blob_digests_size(), kMaxBatchBlobs);

  *req.add_blob_digests() = ToProto(common::DigestOf("one more"));
  resp.Clear();
  s = cas_->FindMissingBlobs(Ctx().get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("limit of 10000"));
  EXPECT_EQ(resp.missing_blob_digests_size(), 0);
}

TEST_F(CasServiceTest, ByteStreamWriteThenReadRanges) {
  const std::string data = RandomBytes((5 << 20) + 123, 2);
  const Digest d = common::DigestOf(data);
  auto [s, committed] = Write(WriteName(d, "u-1", "my/instance"), data, 64 << 10);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(committed, d.size);

  // The CAS is shared by every instance name.
  ReadResult r = Read(ReadName(d));
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.data, data);
  EXPECT_GE(r.messages, 6);  // chunks of at most 1 MiB
  r = Read(ReadName(d, "other"), 1'000'000, 3'000'000);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.data, data.substr(1'000'000, 3'000'000));
  r = Read(ReadName(d), d.size);
  EXPECT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.data, "");

  EXPECT_EQ(Read(ReadName(d), d.size + 1).status.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(Read(ReadName(d), -1).status.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(Read(ReadName(d), 0, -1).status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Read(ReadName(common::DigestOf("absent"))).status.error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Read("blobs/" + d.hash).status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Read("blobs/" + d.hash.substr(1) + "/5").status.error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Read("blobs/" + d.hash + "/-5").status.error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(CasServiceTest, ByteStreamWriteOfWrongBytesStoresNothing) {
  std::string data = RandomBytes(300'000, 3);
  const Digest d = common::DigestOf(data);
  data[7] ^= 1;
  auto [s, committed] = Write(WriteName(d, "u"), data, 100'000);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Missing({d}).size(), 1u);

  // More bytes than the digest says; a bad resource name; an offset that skips bytes.
  auto [s2, c2] = Write(WriteName(d, "u"), data + "extra", 100'000);
  EXPECT_EQ(s2.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  auto [s3, c3] = Write("uploads/u/blobs/" + d.hash, data, 100'000);
  EXPECT_EQ(s3.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  auto [s4, c4] = Write(WriteName(d, "u2"), data, 100'000, /*offset=*/5);
  EXPECT_EQ(s4.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Missing({d}).size(), 1u);
}

TEST_F(CasServiceTest, ByteStreamWriteResumesWhereQueryWriteStatusSays) {
  const std::string data = RandomBytes(1'000'000, 4);
  const Digest d = common::DigestOf(data);
  const std::string name = WriteName(d, "resume-me");
  // A first attempt stops (without finish_write) after 400 KB.
  auto [s1, c1] = Write(name, data.substr(0, 400'000), 100'000, 0, /*finish=*/false);
  ASSERT_TRUE(s1.ok()) << s1.error_message();
  EXPECT_EQ(c1, 400'000);
  EXPECT_EQ(Missing({d}).size(), 1u);

  bs::QueryWriteStatusRequest q;
  q.set_resource_name(name);
  bs::QueryWriteStatusResponse qr;
  grpc::Status s = bytestream_->QueryWriteStatus(Ctx().get(), q, &qr);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(qr.committed_size(), 400'000);
  EXPECT_FALSE(qr.complete());

  auto [s2, c2] = Write(name, data, 100'000, qr.committed_size());
  ASSERT_TRUE(s2.ok()) << s2.error_message();
  EXPECT_EQ(c2, d.size);
  EXPECT_EQ(Read(ReadName(d)).data, data);
  s = bytestream_->QueryWriteStatus(Ctx().get(), q, &qr);
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(qr.complete());
  EXPECT_EQ(qr.committed_size(), d.size);

  q.set_resource_name("uploads/x/blobs/nothex/1");
  EXPECT_EQ(bytestream_->QueryWriteStatus(Ctx().get(), q, &qr).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(CasServiceTest, WritingABlobThatIsPresentEndsAtOnce) {
  const std::string data = RandomBytes(2 << 20, 5);
  const Digest d = common::DigestOf(data);
  ASSERT_TRUE(Write(WriteName(d, "a"), data, 1 << 20).first.ok());
  // Only the first 64 KiB are offered; the server answers with the full size anyway.
  auto ctx = Ctx();
  bs::WriteResponse resp;
  auto writer = bytestream_->Write(ctx.get(), &resp);
  bs::WriteRequest req;
  req.set_resource_name(WriteName(d, "b"));
  req.set_data(data.substr(0, 64 << 10));
  writer->Write(req);
  grpc::Status s = writer->Finish();
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.committed_size(), d.size);
}

TEST_F(CasServiceTest, CorruptBlobIsReportedAndThenMissing) {
  const std::string data = RandomBytes(3 << 20, 6);
  const Digest d = common::DigestOf(data);
  ASSERT_TRUE(Write(WriteName(d, "u"), data, 1 << 20).first.ok());
  const std::string path = BlobPath(d);
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  std::string bytes = data;
  bytes[2'500'000] ^= 0x40;
  ASSERT_OK(testing::WriteFile(path, bytes));

  ReadResult r = Read(ReadName(d));
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_THAT(r.status.error_message(), HasSubstr("corrupt"));
  EXPECT_LT(r.data.size(), data.size());  // never the whole (bad) blob
  EXPECT_EQ(Missing({d}).size(), 1u);
  EXPECT_EQ(Read(ReadName(d)).status.error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(CasServiceTest, GetTreeWalksDirectoriesInPages) {
  // root/{a/{c}, b}, with a missing directory d under b.
  auto put = [&](const std::string& bytes) {
    reapi::BatchUpdateBlobsRequest up;
    auto* r = up.add_requests();
    *r->mutable_digest() = ToProto(common::DigestOf(bytes));
    r->set_data(bytes);
    reapi::BatchUpdateBlobsResponse resp;
    EXPECT_TRUE(cas_->BatchUpdateBlobs(Ctx().get(), up, &resp).ok());
    return common::DigestOf(bytes);
  };
  auto dir_node = [](reapi::Directory* parent, const std::string& name, const Digest& d) {
    auto* n = parent->add_directories();
    n->set_name(name);
    *n->mutable_digest() = ToProto(d);
  };
  reapi::Directory c;
  c.add_files()->set_name("file-in-c");
  const Digest dc = put(c.SerializeAsString());
  reapi::Directory a;
  dir_node(&a, "c", dc);
  const Digest da = put(a.SerializeAsString());
  reapi::Directory b;
  dir_node(&b, "d", common::DigestOf("not uploaded"));
  const Digest db = put(b.SerializeAsString());
  reapi::Directory root;
  dir_node(&root, "a", da);
  dir_node(&root, "b", db);
  const Digest droot = put(root.SerializeAsString());

  auto get_tree = [&](int page_size, const std::string& token, std::vector<int>* pages,
                      std::string* last_token) {
    reapi::GetTreeRequest req;
    *req.mutable_root_digest() = ToProto(droot);
    req.set_page_size(page_size);
    req.set_page_token(token);
    auto ctx = Ctx();
    auto reader = cas_->GetTree(ctx.get(), req);
    reapi::GetTreeResponse resp;
    std::vector<std::string> names;
    while (reader->Read(&resp)) {
      pages->push_back(resp.directories_size());
      for (const auto& dir : resp.directories()) names.push_back(dir.SerializeAsString());
      *last_token = resp.next_page_token();
    }
    EXPECT_TRUE(reader->Finish().ok());
    return names;
  };
  std::vector<int> pages;
  std::string token;
  std::vector<std::string> all = get_tree(0, "", &pages, &token);
  EXPECT_EQ(all, (std::vector<std::string>{root.SerializeAsString(), a.SerializeAsString(),
                                           b.SerializeAsString(), c.SerializeAsString()}));
  EXPECT_EQ(pages, std::vector<int>{4});
  EXPECT_EQ(token, "");

  pages.clear();
  std::vector<std::string> paged = get_tree(3, "", &pages, &token);
  EXPECT_EQ(paged, all);
  EXPECT_EQ(pages, (std::vector<int>{3, 1}));

  pages.clear();
  std::vector<std::string> rest = get_tree(0, "2", &pages, &token);
  EXPECT_EQ(rest, (std::vector<std::string>{b.SerializeAsString(), c.SerializeAsString()}));

  reapi::GetTreeRequest req;
  *req.mutable_root_digest() = ToProto(common::DigestOf("no such root"));
  auto ctx = Ctx();
  auto reader = cas_->GetTree(ctx.get(), req);
  reapi::GetTreeResponse resp;
  while (reader->Read(&resp)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(CasServiceTest, ActionCacheHitsOnlyWhileOutputsArePresent) {
  const std::string out = RandomBytes(2 << 20, 7);
  const Digest dout = common::DigestOf(out);
  const Digest action = common::DigestOf("action");
  reapi::ActionResult result;
  auto* f = result.add_output_files();
  f->set_path("out/big.bin");
  *f->mutable_digest() = ToProto(dout);
  result.mutable_execution_metadata()->set_worker("bazel");

  reapi::UpdateActionResultRequest up;
  up.set_instance_name("ci");
  *up.mutable_action_digest() = ToProto(action);
  *up.mutable_action_result() = result;
  reapi::ActionResult stored;
  // The output is not uploaded yet.
  EXPECT_EQ(ac_->UpdateActionResult(Ctx().get(), up, &stored).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  ASSERT_TRUE(Write(WriteName(dout, "u"), out, 1 << 20).first.ok());
  grpc::Status s = ac_->UpdateActionResult(Ctx().get(), up, &stored);
  ASSERT_TRUE(s.ok()) << s.error_message();

  reapi::GetActionResultRequest get;
  get.set_instance_name("ci");
  *get.mutable_action_digest() = ToProto(action);
  reapi::ActionResult got;
  s = ac_->GetActionResult(Ctx().get(), get, &got);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(got.SerializeAsString(), result.SerializeAsString());
  get.set_instance_name("another");
  EXPECT_EQ(ac_->GetActionResult(Ctx().get(), get, &got).error_code(), grpc::StatusCode::NOT_FOUND);
  get.set_instance_name("ci");
  get.mutable_action_digest()->set_hash("short");
  EXPECT_EQ(ac_->GetActionResult(Ctx().get(), get, &got).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  // The output goes away (here: found corrupt and removed): the entry is a miss from now on.
  const std::string path = BlobPath(dout);
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  ASSERT_OK(testing::WriteFile(path, std::string(out.size(), '\0')));
  EXPECT_EQ(Read(ReadName(dout)).status.error_code(), grpc::StatusCode::DATA_LOSS);
  *get.mutable_action_digest() = ToProto(action);
  EXPECT_EQ(ac_->GetActionResult(Ctx().get(), get, &got).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(CasServiceTest, ManyConcurrentStreams) {
  constexpr int kStreams = 16;
  std::vector<std::string> blobs;
  for (int i = 0; i < kStreams; ++i) blobs.push_back(RandomBytes(700'000 + i, 100 + i));
  std::vector<std::thread> threads;
  std::vector<grpc::Status> results(kStreams);
  for (int i = 0; i < kStreams; ++i) {
    threads.emplace_back([&, i] {
      // Half of them upload the same blob.
      const std::string& data = blobs[i % 2 == 0 ? 0 : i];
      results[i] =
          Write(WriteName(common::DigestOf(data), absl::StrCat("u", i)), data, 64 << 10).first;
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& s : results) EXPECT_TRUE(s.ok()) << s.error_message();
  for (int i = 0; i < kStreams; ++i) {
    EXPECT_EQ(Read(ReadName(common::DigestOf(blobs[i % 2 == 0 ? 0 : i]))).data,
              blobs[i % 2 == 0 ? 0 : i]);
  }
  EXPECT_EQ(coordinator_->blob_store()->Stats().blobs, kStreams / 2 + 1);
}

}  // namespace
}  // namespace farm::coordinator
