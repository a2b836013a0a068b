#include "tests/common/fake_cas.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/digest.h"

namespace farm::testing {

namespace reapi = ::build::bazel::remote::execution::v2;
namespace bs = ::google::bytestream;

namespace {

std::string Key(const reapi::Digest& digest) {
  return absl::StrCat(digest.hash(), "/", digest.size_bytes());
}

// "blobs/HASH/SIZE" (after `skip` leading components) → "HASH/SIZE", or "" when malformed.
std::string BlobKey(const std::vector<std::string>& parts, size_t at) {
  if (parts.size() != at + 3 || parts[at] != "blobs") return "";
  int64_t size = 0;
  if (!absl::SimpleAtoi(parts[at + 2], &size) || size < 0 ||
      !common::ValidateHash(parts[at + 1]).ok()) {
    return "";
  }
  return absl::StrCat(parts[at + 1], "/", size);
}

int64_t SizeOf(const std::string& key) {
  int64_t size = 0;
  (void)absl::SimpleAtoi(key.substr(key.find('/') + 1), &size);
  return size;
}

}  // namespace

class FakeCas::CasService final : public reapi::ContentAddressableStorage::Service {
 public:
  explicit CasService(FakeCas* cas) : cas_(cas) {}

  grpc::Status FindMissingBlobs(grpc::ServerContext*, const reapi::FindMissingBlobsRequest* request,
                                reapi::FindMissingBlobsResponse* response) override {
    absl::MutexLock lock(&cas_->mu_);
    ++cas_->stats_.find_missing_calls;
    if (cas_->find_missing_to_fail_ > 0) {
      --cas_->find_missing_to_fail_;
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "injected");
    }
    for (const reapi::Digest& digest : request->blob_digests()) {
      if (digest.size_bytes() == 0) continue;  // the empty blob is always present
      if (!cas_->blobs_.count(Key(digest))) *response->add_missing_blob_digests() = digest;
    }
    return grpc::Status::OK;
  }

  grpc::Status BatchUpdateBlobs(grpc::ServerContext*, const reapi::BatchUpdateBlobsRequest* request,
                                reapi::BatchUpdateBlobsResponse* response) override {
    absl::MutexLock lock(&cas_->mu_);
    ++cas_->stats_.batch_update_calls;
    cas_->stats_.batch_sizes.push_back(request->requests_size());
    int64_t total = 0;
    for (const auto& r : request->requests()) total += static_cast<int64_t>(r.data().size());
    if (cas_->max_batch_bytes_ > 0 && total > cas_->max_batch_bytes_) {
      return grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          absl::StrCat("batch of ", total, " bytes is over the limit of ", cas_->max_batch_bytes_));
    }
    for (const auto& r : request->requests()) {
      auto* out = response->add_responses();
      *out->mutable_digest() = r.digest();
      const common::Digest actual = common::DigestOf(r.data());
      if (actual.hash != r.digest().hash() || actual.size != r.digest().size_bytes()) {
        out->mutable_status()->set_code(grpc::StatusCode::INVALID_ARGUMENT);
        out->mutable_status()->set_message("the data does not match the digest");
        continue;
      }
      cas_->blobs_[Key(r.digest())] = r.data();
    }
    return grpc::Status::OK;
  }

  grpc::Status BatchReadBlobs(grpc::ServerContext*, const reapi::BatchReadBlobsRequest*,
                              reapi::BatchReadBlobsResponse*) override {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "not in the fake");
  }

 private:
  FakeCas* cas_;
};

class FakeCas::ByteStreamService final : public bs::ByteStream::Service {
 public:
  explicit ByteStreamService(FakeCas* cas) : cas_(cas) {}

  grpc::Status Read(grpc::ServerContext*, const bs::ReadRequest* request,
                    grpc::ServerWriter<bs::ReadResponse>* writer) override {
    const std::vector<std::string> parts = absl::StrSplit(request->resource_name(), '/');
    const std::string key = BlobKey(parts, 0);
    if (key.empty()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad resource name");
    std::string data;
    int64_t chunk = 0;
    int64_t break_after = -1;
    {
      absl::MutexLock lock(&cas_->mu_);
      ++cas_->stats_.read_streams;
      cas_->stats_.read_offsets.push_back(request->read_offset());
      auto it = cas_->blobs_.find(key);
      if (it == cas_->blobs_.end()) {
        if (SizeOf(key) != 0) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such blob");
      } else {
        data = it->second;
      }
      chunk = cas_->read_chunk_bytes_;
      if (cas_->reads_to_break_ > 0) {
        --cas_->reads_to_break_;
        break_after = cas_->break_read_after_;
      }
    }
    if (request->read_offset() < 0 || request->read_offset() > static_cast<int64_t>(data.size())) {
      return grpc::Status(grpc::StatusCode::OUT_OF_RANGE, "offset beyond the blob");
    }
    int64_t at = request->read_offset();
    int64_t end = static_cast<int64_t>(data.size());
    if (request->read_limit() > 0) end = std::min(end, at + request->read_limit());
    int64_t sent = 0;
    while (at < end) {
      int64_t n = std::min(chunk, end - at);
      if (break_after >= 0) {
        if (sent >= break_after) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "injected");
        n = std::min(n, break_after - sent);
      }
      bs::ReadResponse response;
      response.set_data(data.substr(static_cast<size_t>(at), static_cast<size_t>(n)));
      if (!writer->Write(response)) return grpc::Status(grpc::StatusCode::CANCELLED, "gone");
      at += n;
      sent += n;
    }
    return grpc::Status::OK;
  }

  grpc::Status Write(grpc::ServerContext*, grpc::ServerReader<bs::WriteRequest>* reader,
                     bs::WriteResponse* response) override {
    bs::WriteRequest request;
    std::string resource;
    std::string key;
    int64_t break_after = -1;
    int64_t stream_bytes = 0;  // received by this stream
    {
      absl::MutexLock lock(&cas_->mu_);
      ++cas_->stats_.write_streams;
      if (cas_->writes_to_break_ > 0) {
        --cas_->writes_to_break_;
        break_after = cas_->break_write_after_;
      }
    }
    while (reader->Read(&request)) {
      absl::MutexLock lock(&cas_->mu_);
      if (resource.empty()) {
        resource = request.resource_name();
        const std::vector<std::string> parts = absl::StrSplit(resource, '/');
        if (parts.size() < 2 || parts[0] != "uploads" || parts[1].empty() ||
            (key = BlobKey(parts, 2)).empty()) {
          return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                              absl::StrCat("bad resource name \"", resource, "\""));
        }
        cas_->stats_.write_resources.push_back(resource);
      } else if (!request.resource_name().empty() && request.resource_name() != resource) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "resource name changed");
      }
      Upload& upload = cas_->uploads_[resource];
      if (request.write_offset() != static_cast<int64_t>(upload.data.size())) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            absl::StrCat("write_offset ", request.write_offset(), ", committed ",
                                         upload.data.size()));
      }
      std::string data = request.data();
      bool broken = false;
      if (break_after >= 0 && stream_bytes + static_cast<int64_t>(data.size()) > break_after) {
        data.resize(static_cast<size_t>(break_after - stream_bytes));
        broken = true;
      }
      stream_bytes += static_cast<int64_t>(data.size());
      upload.data += data;
      cas_->stats_.write_bytes += static_cast<int64_t>(data.size());
      if (broken) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "injected");
      if (static_cast<int64_t>(upload.data.size()) > SizeOf(key)) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "more data than the size");
      }
      if (request.finish_write()) {
        const common::Digest actual = common::DigestOf(upload.data);
        if (actual.ToString() != key) {
          cas_->uploads_.erase(resource);
          return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                              "the data does not match the digest");
        }
        cas_->blobs_[key] = upload.data;
        upload.complete = true;
        response->set_committed_size(static_cast<int64_t>(upload.data.size()));
        return grpc::Status::OK;
      }
    }
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "stream ended without finish_write");
  }

  grpc::Status QueryWriteStatus(grpc::ServerContext*, const bs::QueryWriteStatusRequest* request,
                                bs::QueryWriteStatusResponse* response) override {
    absl::MutexLock lock(&cas_->mu_);
    ++cas_->stats_.query_write_status_calls;
    auto it = cas_->uploads_.find(request->resource_name());
    if (it == cas_->uploads_.end()) return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown");
    response->set_committed_size(static_cast<int64_t>(it->second.data.size()));
    response->set_complete(it->second.complete);
    return grpc::Status::OK;
  }

 private:
  FakeCas* cas_;
};

class FakeCas::CapabilitiesService final : public reapi::Capabilities::Service {
 public:
  explicit CapabilitiesService(FakeCas* cas) : cas_(cas) {}

  grpc::Status GetCapabilities(grpc::ServerContext*, const reapi::GetCapabilitiesRequest*,
                               reapi::ServerCapabilities* response) override {
    absl::MutexLock lock(&cas_->mu_);
    ++cas_->stats_.capabilities_calls;
    auto* cache = response->mutable_cache_capabilities();
    cache->add_digest_functions(reapi::DigestFunction::SHA256);
    cache->set_max_batch_total_size_bytes(cas_->max_batch_bytes_);
    return grpc::Status::OK;
  }

 private:
  FakeCas* cas_;
};

FakeCas::FakeCas()
    : cas_(std::make_unique<CasService>(this)),
      bytestream_(std::make_unique<ByteStreamService>(this)),
      capabilities_(std::make_unique<CapabilitiesService>(this)) {}

FakeCas::~FakeCas() {
  if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now());
}

std::string FakeCas::Start() {
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(16 << 20);
  for (grpc::Service* service : services()) builder.RegisterService(service);
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port == 0) return "";
  return absl::StrCat("127.0.0.1:", port);
}

std::vector<grpc::Service*> FakeCas::services() {
  return {cas_.get(), bytestream_.get(), capabilities_.get()};
}

std::string FakeCas::Put(const std::string& data) {
  const std::string key = common::DigestOf(data).ToString();
  absl::MutexLock lock(&mu_);
  blobs_[key] = data;
  return key;
}

void FakeCas::PutRaw(const std::string& key, const std::string& data) {
  absl::MutexLock lock(&mu_);
  blobs_[key] = data;
}

bool FakeCas::Has(const std::string& key) const {
  absl::MutexLock lock(&mu_);
  return blobs_.count(key) > 0;
}

std::string FakeCas::Get(const std::string& key) const {
  absl::MutexLock lock(&mu_);
  auto it = blobs_.find(key);
  return it == blobs_.end() ? "" : it->second;
}

size_t FakeCas::blob_count() const {
  absl::MutexLock lock(&mu_);
  return blobs_.size();
}

void FakeCas::SetMaxBatchBytes(int64_t bytes) {
  absl::MutexLock lock(&mu_);
  max_batch_bytes_ = bytes;
}

void FakeCas::BreakNextWrites(int count, int64_t after_bytes) {
  absl::MutexLock lock(&mu_);
  writes_to_break_ = count;
  break_write_after_ = after_bytes;
}

void FakeCas::BreakNextReads(int count, int64_t after_bytes) {
  absl::MutexLock lock(&mu_);
  reads_to_break_ = count;
  break_read_after_ = after_bytes;
}

void FakeCas::FailNextFindMissing(int count) {
  absl::MutexLock lock(&mu_);
  find_missing_to_fail_ = count;
}

void FakeCas::SetReadChunkBytes(int64_t bytes) {
  absl::MutexLock lock(&mu_);
  read_chunk_bytes_ = bytes;
}

FakeCas::Stats FakeCas::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

}  // namespace farm::testing
