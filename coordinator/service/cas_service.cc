#include "coordinator/service/cas_service.h"

#include <grpcpp/grpcpp.h>

#include <deque>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "coordinator/cas/resource_name.h"

namespace farm::coordinator {
namespace {

namespace reapi = build::bazel::remote::execution::v2;
namespace bs = google::bytestream;
using common::Digest;
using common::ToGrpcStatus;

absl::StatusOr<Digest> FromProto(const reapi::Digest& d) {
  return common::MakeDigest(d.hash(), d.size_bytes());
}

reapi::Digest ToProto(const Digest& d) {
  reapi::Digest out;
  out.set_hash(d.hash);
  out.set_size_bytes(d.size);
  return out;
}

void SetStatus(const absl::Status& s, google::rpc::Status* out) {
  out->set_code(static_cast<int>(s.code()));
  out->set_message(std::string(s.message()));
}

// Bazel sends no digest_function; SHA-256 is then inferred from the 64-digit hashes.
absl::Status CheckDigestFunction(reapi::DigestFunction::Value f) {
  if (f == reapi::DigestFunction::UNKNOWN || f == reapi::DigestFunction::SHA256) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("digest function ", reapi::DigestFunction::Value_Name(f),
                   " is not supported; this server uses SHA256 only"));
}

// Runs fn (returning absl::Status) on the pool and finishes the unary call with its result.
template <typename Fn>
grpc::ServerUnaryReactor* OnPool(grpc::CallbackServerContext* ctx, common::IoPool* pool, Fn fn) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  pool->Post([reactor, fn = std::move(fn)]() mutable { reactor->Finish(ToGrpcStatus(fn())); });
  return reactor;
}

absl::Status TooBig(absl::string_view what, int64_t value, int64_t limit,
                    absl::string_view advice) {
  return absl::InvalidArgumentError(
      absl::StrCat(what, " ", value, " is above this server's limit of ", limit, "; ", advice));
}

// ---------------------------------------------------------------------------------------------
// GetTree: breadth-first from the root, one page per response, pages computed on the pool.

class GetTreeCall final : public grpc::ServerWriteReactor<reapi::GetTreeResponse> {
 public:
  GetTreeCall(BlobStore* blobs, common::IoPool* pool, const reapi::GetTreeRequest& req)
      : blobs_(blobs), pool_(pool) {
    absl::Status s = Setup(req);
    if (!s.ok()) {
      Finish(ToGrpcStatus(s));
      return;
    }
    pool_->Post([this] { NextPage(); });
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
      return;
    }
    if (frontier_.empty()) {
      Finish(grpc::Status::OK);
      return;
    }
    pool_->Post([this] { NextPage(); });
  }

  void OnDone() override { delete this; }

 private:
  absl::Status Setup(const reapi::GetTreeRequest& req) {
    FARM_RETURN_IF_ERROR(CheckDigestFunction(req.digest_function()));
    FARM_ASSIGN_OR_RETURN(Digest root, FromProto(req.root_digest()));
    if (req.page_size() < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("page_size ", req.page_size(), " is negative"));
    }
    page_size_ =
        req.page_size() == 0 ? kMaxTreePageSize : std::min<int>(req.page_size(), kMaxTreePageSize);
    if (!req.page_token().empty() && !absl::SimpleAtoi(req.page_token(), &skip_)) {
      return absl::InvalidArgumentError(
          absl::StrCat("page_token \"", req.page_token(), "\" was not issued by this server"));
    }
    seen_.insert(root);
    frontier_.push_back(std::move(root));
    return absl::OkStatus();
  }

  // Pool thread. Fills and sends the next page, or finishes with an error.
  void NextPage() {
    // Leave room under the message limit for one more Directory of up to this size.
    constexpr size_t kPageBytes = 8 << 20;
    response_.Clear();
    size_t bytes = 0;
    while (!frontier_.empty() && response_.directories_size() < page_size_ && bytes < kPageBytes) {
      const Digest d = std::move(frontier_.front());
      frontier_.pop_front();
      const bool is_root = visited_ == 0;
      ++visited_;
      absl::StatusOr<std::string> raw = blobs_->Read(d);
      reapi::Directory dir;
      if (raw.ok() && !dir.ParseFromString(*raw)) {
        raw = absl::InvalidArgumentError(
            absl::StrCat("blob ", d.ToString(), " is not a Directory message"));
      }
      if (!raw.ok()) {
        // The root must be there; parts of the tree that are missing are left out.
        if (is_root || raw.status().code() != absl::StatusCode::kNotFound) {
          Finish(ToGrpcStatus(raw.status()));
          return;
        }
        continue;
      }
      for (const auto& child : dir.directories()) {
        absl::StatusOr<Digest> cd = FromProto(child.digest());
        if (!cd.ok()) continue;  // a malformed child is as good as missing
        if (seen_.insert(*cd).second) frontier_.push_back(std::move(*cd));
      }
      if (emitted_++ < skip_) continue;
      bytes += raw->size();
      *response_.add_directories() = std::move(dir);
    }
    if (!frontier_.empty()) response_.set_next_page_token(absl::StrCat(emitted_));
    if (response_.directories_size() == 0) {
      Finish(grpc::Status::OK);  // the page token pointed at the end
      return;
    }
    StartWrite(&response_);
  }

  BlobStore* const blobs_;
  common::IoPool* const pool_;
  int page_size_ = kMaxTreePageSize;
  int64_t skip_ = 0;
  int64_t emitted_ = 0;
  int64_t visited_ = 0;
  std::deque<Digest> frontier_;
  absl::flat_hash_set<Digest> seen_;
  reapi::GetTreeResponse response_;
};

// ---------------------------------------------------------------------------------------------
// ByteStream Read: the pool reads chunk N+1 while chunk N is on the wire.

class ReadCall final : public grpc::ServerWriteReactor<bs::ReadResponse> {
 public:
  ReadCall(BlobStore* blobs, common::IoPool* pool, const bs::ReadRequest& req)
      : blobs_(blobs), pool_(pool), request_(req) {
    absl::MutexLock lock(&mu_);
    producing_ = true;
    pool_->Post([this] { Produce(); });
  }

  void OnWriteDone(bool ok) override {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      in_flight_ = false;
      if (!ok && status_.ok()) status_ = absl::CancelledError("the client stopped reading");
      finish = Pump();
    }
    if (finish.has_value()) Finish(*finish);
  }

  void OnCancel() override {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      if (status_.ok()) status_ = absl::CancelledError("the client cancelled the read");
      finish = Pump();
    }
    if (finish.has_value()) Finish(*finish);
  }

  void OnDone() override { delete this; }

 private:
  // Pool thread; the only code that touches reader_.
  void Produce() {
    absl::Status s;
    std::string data;
    {
      absl::MutexLock lock(&mu_);
      data.swap(spare_);
    }
    bool more = false;
    if (reader_ == nullptr) s = Open();
    if (s.ok()) {
      absl::StatusOr<bool> r = reader_->Next(kReadChunkBytes, &data);
      if (r.ok()) {
        more = *r;
      } else {
        s = r.status();
      }
    }
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      producing_ = false;
      if (!s.ok()) {
        if (status_.ok()) status_ = s;
      } else {
        if (!data.empty()) next_.emplace(std::move(data));
        eof_ = !more;
      }
      finish = Pump();
    }
    if (finish.has_value()) Finish(*finish);
  }

  absl::Status Open() {
    FARM_ASSIGN_OR_RETURN(ResourceName name, ParseReadResourceName(request_.resource_name()));
    if (request_.read_offset() < 0) {
      return absl::OutOfRangeError(
          absl::StrCat("read_offset ", request_.read_offset(), " is negative"));
    }
    if (request_.read_limit() < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("read_limit ", request_.read_limit(), " is negative"));
    }
    FARM_ASSIGN_OR_RETURN(
        reader_, blobs_->OpenRead(name.digest, request_.read_offset(), request_.read_limit()));
    return absl::OkStatus();
  }

  // Starts what can start: a send or the next read from disk. Returns the status to Finish
  // with once nothing is outstanding; the caller calls Finish after releasing mu_ and then
  // must not touch the call again (OnDone may delete it at once).
  std::optional<grpc::Status> Pump() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return std::nullopt;
    if (!status_.ok()) {
      // Wait for the outstanding write and the pool job, then end with the error.
      if (in_flight_ || producing_) return std::nullopt;
      finished_ = true;
      return ToGrpcStatus(status_);
    }
    if (!in_flight_ && next_.has_value()) {
      // Swap buffers rather than copy: the chunk sent last becomes the next one to fill.
      sending_.mutable_data()->swap(*next_);
      spare_ = std::move(*next_);
      next_.reset();
      in_flight_ = true;
      StartWrite(&sending_);
    }
    if (!producing_ && !next_.has_value() && !eof_) {
      producing_ = true;
      pool_->Post([this] { Produce(); });
    }
    if (!in_flight_ && !next_.has_value() && !producing_ && eof_) {
      finished_ = true;
      return grpc::Status::OK;
    }
    return std::nullopt;
  }

  BlobStore* const blobs_;
  common::IoPool* const pool_;
  const bs::ReadRequest request_;
  std::unique_ptr<BlobReader> reader_;

  absl::Mutex mu_;
  bs::ReadResponse sending_ ABSL_GUARDED_BY(mu_);
  std::optional<std::string> next_ ABSL_GUARDED_BY(mu_);
  std::string spare_ ABSL_GUARDED_BY(mu_);
  bool in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool producing_ ABSL_GUARDED_BY(mu_) = false;
  bool eof_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
};

// ---------------------------------------------------------------------------------------------
// ByteStream Write: gRPC reads message N+1 while the pool appends message N.

class WriteCall final : public grpc::ServerReadReactor<bs::WriteRequest> {
 public:
  WriteCall(BlobStore* blobs, common::IoPool* pool, bs::WriteResponse* response)
      : blobs_(blobs), pool_(pool), response_(response) {
    absl::MutexLock lock(&mu_);
    reading_ = true;
    StartRead(&incoming_);
  }

  void OnReadDone(bool ok) override {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      reading_ = false;
      if (!ok) {
        half_closed_ = true;
      } else {
        if (incoming_.finish_write()) saw_finish_ = true;
        queue_.push_back(std::move(incoming_));
        incoming_.Clear();
      }
      finish = Pump();
    }
    if (finish.has_value()) Finish(*finish);
  }

  void OnCancel() override {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      if (status_.ok()) status_ = absl::CancelledError("the client cancelled the write");
      finish = Pump();
    }
    if (finish.has_value()) Finish(*finish);
  }

  void OnDone() override { delete this; }

 private:
  // Pool thread; the only code that touches writer_ and the stream bookkeeping below.
  void Apply(bs::WriteRequest req) {
    absl::Status s = ApplyOne(req);
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      applying_ = false;
      if (!s.ok() && status_.ok()) status_ = s;
      if (writer_ != nullptr && writer_->complete()) complete_ = true;
      finish = Pump();
    }
    if (finish.has_value()) Finish(*finish);
  }

  absl::Status ApplyOne(const bs::WriteRequest& req) {
    if (writer_ == nullptr) {
      FARM_ASSIGN_OR_RETURN(ResourceName name, ParseWriteResourceName(req.resource_name()));
      resource_name_ = req.resource_name();
      FARM_ASSIGN_OR_RETURN(writer_,
                            blobs_->OpenWrite(absl::StrCat(name.instance, "/uploads/", name.uuid),
                                              name.digest, req.write_offset()));
      // A blob that is already present ends the call at once (REAPI).
      if (writer_->complete()) return absl::OkStatus();
      expected_offset_ = req.write_offset();
    } else if (!req.resource_name().empty() && req.resource_name() != resource_name_) {
      return absl::InvalidArgumentError(
          absl::StrCat("resource_name changed within one Write, from \"", resource_name_,
                       "\" to \"", req.resource_name(), "\""));
    }
    if (req.write_offset() != expected_offset_) {
      return absl::InvalidArgumentError(absl::StrCat("write_offset ", req.write_offset(),
                                                     " does not follow the bytes sent so far (",
                                                     expected_offset_, ")"));
    }
    FARM_RETURN_IF_ERROR(writer_->Append(req.data()));
    expected_offset_ += static_cast<int64_t>(req.data().size());
    if (req.finish_write()) FARM_RETURN_IF_ERROR(writer_->Commit());
    return absl::OkStatus();
  }

  // As ReadCall::Pump: starts reads and pool jobs; returns the status to Finish with.
  std::optional<grpc::Status> Pump() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return std::nullopt;
    if (!status_.ok() || complete_) {
      // Finish at once (an outstanding read then ends by itself), but not under a pool job.
      if (applying_) return std::nullopt;
      finished_ = true;
      if (status_.ok()) response_->set_committed_size(writer_->committed());
      return ToGrpcStatus(status_);
    }
    if (!applying_ && !queue_.empty()) {
      applying_ = true;
      bs::WriteRequest next = std::move(queue_.front());
      queue_.pop_front();
      pool_->Post([this, req = std::move(next)]() mutable { Apply(std::move(req)); });
    }
    if (!reading_ && !half_closed_ && !saw_finish_ && queue_.size() < 1) {
      reading_ = true;
      StartRead(&incoming_);
    }
    if (!applying_ && queue_.empty() && (half_closed_ || saw_finish_)) {
      // The client stopped without finish_write: what arrived stays resumable.
      finished_ = true;
      response_->set_committed_size(writer_ != nullptr ? writer_->committed() : 0);
      return grpc::Status::OK;
    }
    return std::nullopt;
  }

  BlobStore* const blobs_;
  common::IoPool* const pool_;
  bs::WriteResponse* const response_;

  // Pool side (one Apply at a time).
  std::unique_ptr<BlobWriter> writer_;
  std::string resource_name_;
  int64_t expected_offset_ = 0;

  absl::Mutex mu_;
  bs::WriteRequest incoming_ ABSL_GUARDED_BY(mu_);
  std::deque<bs::WriteRequest> queue_ ABSL_GUARDED_BY(mu_);
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  bool applying_ ABSL_GUARDED_BY(mu_) = false;
  bool half_closed_ ABSL_GUARDED_BY(mu_) = false;
  bool saw_finish_ ABSL_GUARDED_BY(mu_) = false;
  bool complete_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Services

class ReapiServices::Capabilities final : public reapi::Capabilities::CallbackService {
 public:
  grpc::ServerUnaryReactor* GetCapabilities(grpc::CallbackServerContext* ctx,
                                            const reapi::GetCapabilitiesRequest* req,
                                            reapi::ServerCapabilities* resp) override {
    auto* cache = resp->mutable_cache_capabilities();
    cache->add_digest_functions(reapi::DigestFunction::SHA256);
    cache->mutable_action_cache_update_capabilities()->set_update_enabled(true);
    cache->set_max_batch_total_size_bytes(kMaxBatchTotalBytes);
    // The cache stores symlink targets as given; it never resolves them.
    cache->set_symlink_absolute_path_strategy(reapi::SymlinkAbsolutePathStrategy::ALLOWED);
    resp->mutable_low_api_version()->set_major(2);
    resp->mutable_high_api_version()->set_major(2);
    resp->mutable_high_api_version()->set_minor(3);
    auto* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

class ReapiServices::Cas final : public reapi::ContentAddressableStorage::CallbackService {
 public:
  Cas(BlobStore* blobs, common::IoPool* pool) : blobs_(blobs), pool_(pool) {}

  grpc::ServerUnaryReactor* FindMissingBlobs(grpc::CallbackServerContext* ctx,
                                             const reapi::FindMissingBlobsRequest* req,
                                             reapi::FindMissingBlobsResponse* resp) override {
    return OnPool(ctx, pool_, [this, req, resp]() -> absl::Status {
      FARM_RETURN_IF_ERROR(CheckDigestFunction(req->digest_function()));
      std::vector<Digest> digests;
      digests.reserve(req->blob_digests_size());
      for (int i = 0; i < req->blob_digests_size(); ++i) {
        absl::StatusOr<Digest> d = FromProto(req->blob_digests(i));
        if (!d.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat("blob_digests[", i, "]: ", d.status().message()));
        }
        digests.push_back(std::move(*d));
      }
      FARM_ASSIGN_OR_RETURN(std::vector<Digest> missing, blobs_->FindMissing(digests));
      for (const Digest& d : missing) *resp->add_missing_blob_digests() = ToProto(d);
      return absl::OkStatus();
    });
  }

  grpc::ServerUnaryReactor* BatchUpdateBlobs(grpc::CallbackServerContext* ctx,
                                             const reapi::BatchUpdateBlobsRequest* req,
                                             reapi::BatchUpdateBlobsResponse* resp) override {
    return OnPool(ctx, pool_, [this, req, resp]() -> absl::Status {
      FARM_RETURN_IF_ERROR(CheckDigestFunction(req->digest_function()));
      if (req->requests_size() > kMaxBatchBlobs) {
        return TooBig("BatchUpdateBlobs with blob count", req->requests_size(), kMaxBatchBlobs,
                      "split the batch");
      }
      int64_t total = 0;
      for (const auto& r : req->requests()) total += static_cast<int64_t>(r.data().size());
      if (total > kMaxBatchTotalBytes) {
        return TooBig("BatchUpdateBlobs with total size", total, kMaxBatchTotalBytes,
                      "split the batch or upload large blobs with ByteStream.Write");
      }
      // Well-formed blobs are stored together (they share their disk syncs).
      std::vector<absl::Status> statuses(req->requests_size());
      std::vector<BlobData> batch;
      std::vector<int> batch_index;
      for (int i = 0; i < req->requests_size(); ++i) {
        const auto& r = req->requests(i);
        absl::StatusOr<Digest> d = FromProto(r.digest());
        if (!d.ok()) {
          statuses[i] = d.status();
        } else if (r.compressor() != reapi::Compressor::IDENTITY) {
          statuses[i] = absl::InvalidArgumentError(
              absl::StrCat("compressor ", reapi::Compressor::Value_Name(r.compressor()),
                           " is not supported; send the data uncompressed"));
        } else {
          batch.push_back(BlobData{std::move(*d), r.data()});
          batch_index.push_back(i);
        }
      }
      const std::vector<absl::Status> stored = blobs_->PutBatch(batch);
      for (size_t k = 0; k < stored.size(); ++k) statuses[batch_index[k]] = stored[k];
      for (int i = 0; i < req->requests_size(); ++i) {
        auto* out = resp->add_responses();
        *out->mutable_digest() = req->requests(i).digest();
        SetStatus(statuses[i], out->mutable_status());
      }
      return absl::OkStatus();
    });
  }

  grpc::ServerUnaryReactor* BatchReadBlobs(grpc::CallbackServerContext* ctx,
                                           const reapi::BatchReadBlobsRequest* req,
                                           reapi::BatchReadBlobsResponse* resp) override {
    return OnPool(ctx, pool_, [this, req, resp]() -> absl::Status {
      FARM_RETURN_IF_ERROR(CheckDigestFunction(req->digest_function()));
      if (req->digests_size() > kMaxBatchBlobs) {
        return TooBig("BatchReadBlobs with blob count", req->digests_size(), kMaxBatchBlobs,
                      "split the batch");
      }
      std::vector<absl::StatusOr<Digest>> digests;
      int64_t total = 0;
      for (const auto& p : req->digests()) {
        digests.push_back(FromProto(p));
        if (digests.back().ok()) total += digests.back()->size;
      }
      if (total > kMaxBatchTotalBytes) {
        return TooBig("BatchReadBlobs with total size", total, kMaxBatchTotalBytes,
                      "split the batch or read large blobs with ByteStream.Read");
      }
      for (int i = 0; i < req->digests_size(); ++i) {
        auto* out = resp->add_responses();
        *out->mutable_digest() = req->digests(i);
        absl::Status s = digests[i].status();
        if (s.ok()) {
          absl::StatusOr<std::string> data = blobs_->Read(*digests[i]);
          if (data.ok()) {
            out->set_data(std::move(*data));
          } else {
            s = data.status();
          }
        }
        SetStatus(s, out->mutable_status());
      }
      return absl::OkStatus();
    });
  }

  grpc::ServerWriteReactor<reapi::GetTreeResponse>* GetTree(
      grpc::CallbackServerContext* ctx, const reapi::GetTreeRequest* req) override {
    return new GetTreeCall(blobs_, pool_, *req);
  }

 private:
  BlobStore* const blobs_;
  common::IoPool* const pool_;
};

class ReapiServices::Ac final : public reapi::ActionCache::CallbackService {
 public:
  Ac(ActionCache* cache, common::IoPool* pool) : cache_(cache), pool_(pool) {}

  grpc::ServerUnaryReactor* GetActionResult(grpc::CallbackServerContext* ctx,
                                            const reapi::GetActionResultRequest* req,
                                            reapi::ActionResult* resp) override {
    return OnPool(ctx, pool_, [this, req, resp]() -> absl::Status {
      FARM_RETURN_IF_ERROR(CheckDigestFunction(req->digest_function()));
      FARM_ASSIGN_OR_RETURN(Digest action, FromProto(req->action_digest()));
      FARM_ASSIGN_OR_RETURN(*resp, cache_->Get(req->instance_name(), action));
      return absl::OkStatus();
    });
  }

  grpc::ServerUnaryReactor* UpdateActionResult(grpc::CallbackServerContext* ctx,
                                               const reapi::UpdateActionResultRequest* req,
                                               reapi::ActionResult* resp) override {
    return OnPool(ctx, pool_, [this, req, resp]() -> absl::Status {
      FARM_RETURN_IF_ERROR(CheckDigestFunction(req->digest_function()));
      FARM_ASSIGN_OR_RETURN(Digest action, FromProto(req->action_digest()));
      FARM_ASSIGN_OR_RETURN(*resp,
                            cache_->Update(req->instance_name(), action, req->action_result()));
      return absl::OkStatus();
    });
  }

 private:
  ActionCache* const cache_;
  common::IoPool* const pool_;
};

class ReapiServices::ByteStream final : public bs::ByteStream::CallbackService {
 public:
  ByteStream(BlobStore* blobs, common::IoPool* pool) : blobs_(blobs), pool_(pool) {}

  grpc::ServerWriteReactor<bs::ReadResponse>* Read(grpc::CallbackServerContext* ctx,
                                                   const bs::ReadRequest* req) override {
    return new ReadCall(blobs_, pool_, *req);
  }

  grpc::ServerReadReactor<bs::WriteRequest>* Write(grpc::CallbackServerContext* ctx,
                                                   bs::WriteResponse* resp) override {
    return new WriteCall(blobs_, pool_, resp);
  }

  grpc::ServerUnaryReactor* QueryWriteStatus(grpc::CallbackServerContext* ctx,
                                             const bs::QueryWriteStatusRequest* req,
                                             bs::QueryWriteStatusResponse* resp) override {
    return OnPool(ctx, pool_, [this, req, resp]() -> absl::Status {
      FARM_ASSIGN_OR_RETURN(ResourceName name, ParseWriteResourceName(req->resource_name()));
      const UploadStatus st =
          blobs_->QueryWrite(absl::StrCat(name.instance, "/uploads/", name.uuid), name.digest);
      resp->set_committed_size(st.committed);
      resp->set_complete(st.complete);
      return absl::OkStatus();
    });
  }

 private:
  BlobStore* const blobs_;
  common::IoPool* const pool_;
};

ReapiServices::ReapiServices(BlobStore* blobs, ActionCache* action_cache, int io_threads)
    : pool_(io_threads),
      capabilities_(std::make_unique<Capabilities>()),
      cas_(std::make_unique<Cas>(blobs, &pool_)),
      ac_(std::make_unique<Ac>(action_cache, &pool_)),
      bytestream_(std::make_unique<ByteStream>(blobs, &pool_)) {}

ReapiServices::~ReapiServices() = default;

void ReapiServices::Register(grpc::ServerBuilder& builder) {
  builder.RegisterService(capabilities_.get());
  builder.RegisterService(cas_.get());
  builder.RegisterService(ac_.get());
  builder.RegisterService(bytestream_.get());
}

}  // namespace farm::coordinator
