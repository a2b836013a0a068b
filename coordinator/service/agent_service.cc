#include "coordinator/service/agent_service.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"

namespace farm::coordinator {
namespace {

using common::ToGrpcStatus;

// Longest a parked call is held, whatever the client asks.
constexpr int64_t kMaxParkMs = 60'000;
// A parked call answers this long before the client's deadline, so the answer arrives.
constexpr int64_t kDeadlineMarginMs = 1'000;

int64_t ParkMs(grpc::CallbackServerContext* ctx, int64_t requested_ms) {
  int64_t ms = std::clamp<int64_t>(requested_ms, 0, kMaxParkMs);
  const auto deadline = ctx->deadline();
  if (deadline != std::chrono::system_clock::time_point::max()) {
    const int64_t left = std::chrono::duration_cast<std::chrono::milliseconds>(
                             deadline - std::chrono::system_clock::now())
                             .count() -
                         kDeadlineMarginMs;
    ms = std::min(ms, std::max<int64_t>(left, 0));
  }
  return ms;
}

// A unary call the scheduler may hold; tells the scheduler when the client goes away.
class ParkedCall final : public grpc::ServerUnaryReactor {
 public:
  ParkedCall(Scheduler* scheduler, uint64_t call_id) : scheduler_(scheduler), call_id_(call_id) {}
  void OnCancel() override { scheduler_->CancelWait(call_id_); }
  void OnDone() override { delete this; }

 private:
  Scheduler* const scheduler_;
  const uint64_t call_id_;
};

template <typename T>
auto FinishWith(grpc::ServerUnaryReactor* reactor, T* resp) {
  return [reactor, resp](absl::StatusOr<T> r) {
    if (r.ok()) *resp = std::move(*r);
    reactor->Finish(ToGrpcStatus(r.status()));
  };
}

// Applies uploaded chunks one at a time; each is committed before the next is read, which
// bounds what a stream holds in memory to one message.
class UploadLogsCall final : public grpc::ServerReadReactor<farm::v1::LogUploadChunk> {
 public:
  UploadLogsCall(Scheduler* scheduler, farm::v1::LogUploadResponse* resp)
      : scheduler_(scheduler), resp_(resp) {
    StartRead(&chunk_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The client half-closed (or went away): everything read so far is committed.
      Finish(grpc::Status::OK);
      return;
    }
    if (chunk_.data().size() > kMaxLogChunkBytes) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("a log chunk is ", chunk_.data().size(),
                                       " bytes; the limit is ", kMaxLogChunkBytes)));
      return;
    }
    const uint32_t step = chunk_.step_index();
    scheduler_->AppendLog(std::move(chunk_), [this, step](absl::StatusOr<int64_t> committed) {
      if (!committed.ok()) {
        Finish(ToGrpcStatus(committed.status()));
        return;
      }
      (*resp_->mutable_committed())[step] = *committed;
      chunk_.Clear();
      StartRead(&chunk_);
    });
  }

  void OnDone() override { delete this; }

 private:
  Scheduler* const scheduler_;
  farm::v1::LogUploadResponse* const resp_;
  farm::v1::LogUploadChunk chunk_;
};

}  // namespace

grpc::ServerUnaryReactor* AgentServiceImpl::Register(grpc::CallbackServerContext* ctx,
                                                     const farm::v1::RegisterRequest* req,
                                                     farm::v1::RegisterResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  scheduler_->Register(*req, FinishWith(reactor, resp));
  return reactor;
}

grpc::ServerUnaryReactor* AgentServiceImpl::Lease(grpc::CallbackServerContext* ctx,
                                                  const farm::v1::LeaseRequest* req,
                                                  farm::v1::LeaseResponse* resp) {
  const uint64_t call_id = scheduler_->NewCallId();
  auto* reactor = new ParkedCall(scheduler_, call_id);
  scheduler_->Lease(*req, ParkMs(ctx, req->wait_ms()), call_id, FinishWith(reactor, resp));
  return reactor;
}

grpc::ServerUnaryReactor* AgentServiceImpl::Heartbeat(grpc::CallbackServerContext* ctx,
                                                      const farm::v1::HeartbeatRequest* req,
                                                      farm::v1::HeartbeatResponse* resp) {
  const uint64_t call_id = scheduler_->NewCallId();
  auto* reactor = new ParkedCall(scheduler_, call_id);
  scheduler_->Heartbeat(*req, ParkMs(ctx, req->wait_ms()), call_id, FinishWith(reactor, resp));
  return reactor;
}

grpc::ServerReadReactor<farm::v1::LogUploadChunk>* AgentServiceImpl::UploadLogs(
    grpc::CallbackServerContext* ctx, farm::v1::LogUploadResponse* resp) {
  return new UploadLogsCall(scheduler_, resp);
}

grpc::ServerUnaryReactor* AgentServiceImpl::StepStarted(grpc::CallbackServerContext* ctx,
                                                        const farm::v1::StepStartedRequest* req,
                                                        farm::v1::Ack* resp) {
  auto* reactor = ctx->DefaultReactor();
  scheduler_->StepStarted(*req, FinishWith(reactor, resp));
  return reactor;
}

grpc::ServerUnaryReactor* AgentServiceImpl::StepFinished(grpc::CallbackServerContext* ctx,
                                                         const farm::v1::StepFinishedRequest* req,
                                                         farm::v1::Ack* resp) {
  auto* reactor = ctx->DefaultReactor();
  scheduler_->StepFinished(*req, FinishWith(reactor, resp));
  return reactor;
}

grpc::ServerUnaryReactor* AgentServiceImpl::CompleteJob(grpc::CallbackServerContext* ctx,
                                                        const farm::v1::CompleteJobRequest* req,
                                                        farm::v1::Ack* resp) {
  auto* reactor = ctx->DefaultReactor();
  scheduler_->CompleteJob(*req, FinishWith(reactor, resp));
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListAgents(grpc::CallbackServerContext* ctx,
                                                       const farm::v1::ListAgentsRequest* req,
                                                       farm::v1::ListAgentsResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  scheduler_->ListAgents(FinishWith(reactor, resp));
  return reactor;
}

}  // namespace farm::coordinator
