// The REAPI ContentAddressableStorage service: presence checks, batch uploads and reads, and
// GetTree. Every call's store work runs on the pool; GetTree computes one page per pool job.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "coordinator/service/cas_service.h"
#include "coordinator/service/cas_service_internal.h"

namespace farm::coordinator::reapi_internal {
namespace {

using common::Digest;
using common::ToGrpcStatus;

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
// The service

class CasService final : public reapi::ContentAddressableStorage::CallbackService {
 public:
  CasService(BlobStore* blobs, common::IoPool* pool) : blobs_(blobs), pool_(pool) {}

  grpc::ServerUnaryReactor* FindMissingBlobs(grpc::CallbackServerContext* ctx,
                                             const reapi::FindMissingBlobsRequest* req,
                                             reapi::FindMissingBlobsResponse* resp) override {
    return OnPool(ctx, pool_, [this, req, resp]() -> absl::Status {
      FARM_RETURN_IF_ERROR(CheckDigestFunction(req->digest_function()));
      if (req->blob_digests_size() > kMaxBatchBlobs) {
        return TooBig("FindMissingBlobs with digest count", req->blob_digests_size(),
                      kMaxBatchBlobs, "split the list");
      }
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

}  // namespace

std::unique_ptr<grpc::Service> NewCasService(BlobStore* blobs, common::IoPool* pool) {
  return std::make_unique<CasService>(blobs, pool);
}

}  // namespace farm::coordinator::reapi_internal
