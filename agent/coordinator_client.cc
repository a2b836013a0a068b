#include "agent/coordinator_client.h"

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <chrono>
#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/backoff.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "farm/v1/farm.grpc.pb.h"

namespace farm::agent {

using farm::v1::AgentService;

struct CoordinatorClient::Stub {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<AgentService::Stub> stub;
};

void CallCanceller::Cancel() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
  for (grpc::ClientContext* context : active_) context->TryCancel();
}

bool CallCanceller::cancelled() const {
  absl::MutexLock lock(&mu_);
  return cancelled_;
}

bool CallCanceller::SleepFor(int64_t ms) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&cancelled_), absl::Milliseconds(ms));
}

bool CallCanceller::Attach(grpc::ClientContext* context) {
  absl::MutexLock lock(&mu_);
  if (cancelled_) return false;
  active_.insert(context);
  return true;
}

void CallCanceller::Detach(grpc::ClientContext* context) {
  absl::MutexLock lock(&mu_);
  active_.erase(context);
}

bool IsNotRegistered(const absl::Status& status) {
  return common::ReasonOf(status) == common::kReasonAgentNotRegistered;
}

bool IsRetryable(const absl::Status& status) {
  // RESOURCE_EXHAUSTED is the coordinator's full disk: it serves again by itself once space is
  // back, and the lease's fence bounds how long an attempt waits for that. (The agent's own
  // messages stay far below the size limits that would make the code permanent.)
  return status.code() == absl::StatusCode::kUnavailable ||
         status.code() == absl::StatusCode::kDeadlineExceeded ||
         status.code() == absl::StatusCode::kResourceExhausted;
}

namespace {

// Runs `call` with a fresh context whose deadline is `deadline_ms` from now, attached to
// `canceller` for the duration of the call.
absl::Status CallOnce(int64_t deadline_ms, CallCanceller* canceller,
                      const std::function<grpc::Status(grpc::ClientContext*)>& call,
                      bool wait_for_ready = true) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(deadline_ms));
  // While the coordinator is down (restarting), wait for the channel to reconnect instead of
  // failing at once: the call goes out the moment it is back, and the deadline still bounds
  // the wait.
  context.set_wait_for_ready(wait_for_ready);
  if (canceller != nullptr && !canceller->Attach(&context)) {
    return absl::CancelledError("call cancelled");
  }
  const grpc::Status status = call(&context);
  if (canceller != nullptr) canceller->Detach(&context);
  return common::FromGrpcStatus(status);
}

absl::Status CallWithRetries(const char* what, CallCanceller* canceller,
                             const std::function<grpc::Status(grpc::ClientContext*)>& call) {
  CallCanceller never_cancelled;
  if (canceller == nullptr) canceller = &never_cancelled;
  common::Backoff backoff;
  int failures = 0;
  while (true) {
    absl::Status status = CallOnce(kUnaryDeadlineMs, canceller, call);
    // CANCELLED that this side did not ask for: the coordinator went away mid-call (killed).
    // These reports are idempotent, and a completion's answer may carry the slot's next lease:
    // giving up would leave that lease to expire and its job to run again.
    const bool dropped = absl::IsCancelled(status) && !canceller->cancelled();
    if (!IsRetryable(status) && !dropped) return status;
    // Log the first failure and then every tenth, so a long outage does not flood the log.
    if (failures++ % 10 == 0) {
      FARM_LOG(WARNING) << what << " failed, retrying: " << status.ToString();
    }
    if (canceller->SleepFor(backoff.NextDelayMs())) {
      return absl::CancelledError(absl::StrCat(what, " cancelled"));
    }
  }
}

}  // namespace

CoordinatorClient::CoordinatorClient(std::shared_ptr<grpc::Channel> channel)
    : stub_(std::make_unique<Stub>()) {
  stub_->channel = channel;
  stub_->stub = AgentService::NewStub(channel);
}

CoordinatorClient::~CoordinatorClient() = default;

absl::StatusOr<farm::v1::EnrollResponse> CoordinatorClient::Enroll(
    const farm::v1::EnrollRequest& request, CallCanceller* canceller) {
  farm::v1::EnrollResponse response;
  absl::Status status = CallOnce(
      kUnaryDeadlineMs, canceller,
      [&](grpc::ClientContext* c) { return stub_->stub->Enroll(c, request, &response); },
      /*wait_for_ready=*/false);
  if (!status.ok()) return status;
  return response;
}

absl::StatusOr<farm::v1::RegisterResponse> CoordinatorClient::Register(
    const farm::v1::RegisterRequest& request, CallCanceller* canceller) {
  farm::v1::RegisterResponse response;
  // Fails fast, so that an operator sees a wrong --coordinator at once; the retry loop
  // around it backs off.
  absl::Status status = CallOnce(
      kUnaryDeadlineMs, canceller,
      [&](grpc::ClientContext* c) { return stub_->stub->Register(c, request, &response); },
      /*wait_for_ready=*/false);
  if (!status.ok()) return status;
  return response;
}

absl::StatusOr<farm::v1::LeaseResponse> CoordinatorClient::Lease(
    const farm::v1::LeaseRequest& request, CallCanceller* canceller) {
  farm::v1::LeaseResponse response;
  absl::Status status =
      CallOnce(request.wait_ms() + kLongPollSlackMs, canceller,
               [&](grpc::ClientContext* c) { return stub_->stub->Lease(c, request, &response); });
  if (!status.ok()) return status;
  return response;
}

absl::StatusOr<farm::v1::HeartbeatResponse> CoordinatorClient::Heartbeat(
    const farm::v1::HeartbeatRequest& request, CallCanceller* canceller, bool fail_fast) {
  farm::v1::HeartbeatResponse response;
  absl::Status status = CallOnce(
      fail_fast ? kFailFastDeadlineMs : request.wait_ms() + kLongPollSlackMs, canceller,
      [&](grpc::ClientContext* c) { return stub_->stub->Heartbeat(c, request, &response); },
      /*wait_for_ready=*/!fail_fast);
  if (!status.ok()) return status;
  return response;
}

absl::StatusOr<farm::v1::LogUploadResponse> CoordinatorClient::UploadLogs(
    const std::vector<std::shared_ptr<const farm::v1::LogUploadChunk>>& chunks,
    CallCanceller* canceller) {
  farm::v1::LogUploadResponse response;
  absl::Status status = CallOnce(kUploadDeadlineMs, canceller, [&](grpc::ClientContext* c) {
    std::unique_ptr<grpc::ClientWriter<farm::v1::LogUploadChunk>> writer =
        stub_->stub->UploadLogs(c, &response);
    for (const auto& chunk : chunks) {
      // A failed write means the stream is broken; Finish() says why.
      if (!writer->Write(*chunk)) break;
    }
    writer->WritesDone();
    return writer->Finish();
  });
  if (!status.ok()) return status;
  return response;
}

absl::Status CoordinatorClient::StepStarted(const farm::v1::StepStartedRequest& request,
                                            CallCanceller* canceller) {
  farm::v1::Ack ack;
  return CallWithRetries("StepStarted", canceller, [&](grpc::ClientContext* c) {
    return stub_->stub->StepStarted(c, request, &ack);
  });
}

absl::Status CoordinatorClient::StepFinished(const farm::v1::StepFinishedRequest& request,
                                             CallCanceller* canceller) {
  farm::v1::Ack ack;
  return CallWithRetries("StepFinished", canceller, [&](grpc::ClientContext* c) {
    return stub_->stub->StepFinished(c, request, &ack);
  });
}

absl::StatusOr<farm::v1::CompleteJobResponse> CoordinatorClient::CompleteJob(
    const farm::v1::CompleteJobRequest& request, CallCanceller* canceller) {
  farm::v1::CompleteJobResponse response;
  absl::Status status = CallWithRetries("CompleteJob", canceller, [&](grpc::ClientContext* c) {
    response.Clear();
    return stub_->stub->CompleteJob(c, request, &response);
  });
  if (!status.ok()) return status;
  return response;
}

}  // namespace farm::agent
