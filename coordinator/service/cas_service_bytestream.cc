// The google.bytestream.ByteStream service over the BlobStore: streamed reads and resumable
// uploads. Both directions pipeline through the pool: a Read reads chunk N+1 from disk while
// chunk N is on the wire, a Write receives message N+1 while the pool appends message N; so a
// stream holds at most three messages in memory. Each call's reactor state is guarded by its
// own mutex; the reader or writer of the store is touched only by the pool job of the moment.
#include <grpcpp/grpcpp.h>

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "common/text.h"
#include "coordinator/cas/resource_name.h"
#include "coordinator/service/cas_service.h"
#include "coordinator/service/cas_service_internal.h"
#include "google/bytestream/bytestream.grpc.pb.h"

namespace farm::coordinator::reapi_internal {
namespace {

namespace bs = google::bytestream;
using common::ToGrpcStatus;

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
          absl::StrCat("resource_name changed within one Write, from ",
                       common::Quote(resource_name_), " to ", common::Quote(req.resource_name())));
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

// ---------------------------------------------------------------------------------------------
// The service

class ByteStreamService final : public bs::ByteStream::CallbackService {
 public:
  ByteStreamService(BlobStore* blobs, common::IoPool* pool) : blobs_(blobs), pool_(pool) {}

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

}  // namespace

std::unique_ptr<grpc::Service> NewByteStreamService(BlobStore* blobs, common::IoPool* pool) {
  return std::make_unique<ByteStreamService>(blobs, pool);
}

}  // namespace farm::coordinator::reapi_internal
