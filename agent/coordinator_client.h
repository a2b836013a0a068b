// The agent's side of farm.v1.AgentService: one wrapper over the generated stub that gives
// every call a deadline, converts grpc::Status to absl::Status (common::FromGrpcStatus, which
// keeps the error's reason), and retries the calls about a
// job on UNAVAILABLE / DEADLINE_EXCEEDED with exponential backoff and jitter.
//
// With log_sender.cc, the only agent code that includes grpcpp.
//
// Thread-safe: any number of threads may call at once (gRPC channels and stubs are).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/cas_client.h"
#include "farm/v1/farm.pb.h"

namespace grpc {
class Channel;
class ClientContext;
}  // namespace grpc

namespace farm::agent {

// Deadline of one try of a short unary call (StepStarted, StepFinished, CompleteJob, Register).
inline constexpr int64_t kUnaryDeadlineMs = 10'000;
// A long-poll call (Lease, Heartbeat) may take this much longer than the wait it asks for.
inline constexpr int64_t kLongPollSlackMs = 5'000;
// Deadline of a call that must not hold anything up (the goodbye heartbeat at shutdown).
inline constexpr int64_t kFailFastDeadlineMs = 1'000;
// Deadline of one log upload stream.
inline constexpr int64_t kUploadDeadlineMs = 60'000;

// Aborts blocking calls from another thread: Cancel() TryCancel()s every call that is in
// flight under this canceller and makes later calls fail at once with CANCELLED. It is also a
// cancellable sleep for retry loops. Sticky. Thread-safe. As a common::CancelSource it aborts an
// attempt's CAS calls (artifact uploads) too.
class CallCanceller final : public common::CancelSource {
 public:
  CallCanceller() = default;
  CallCanceller(const CallCanceller&) = delete;
  CallCanceller& operator=(const CallCanceller&) = delete;

  void Cancel();
  bool cancelled() const;
  // Sleeps up to `ms`; returns true (early) when cancelled.
  bool SleepFor(int64_t ms) override;

  // Used by call sites: registers the context of an in-flight call. Attach returns false
  // (and registers nothing) when already cancelled.
  bool Attach(grpc::ClientContext* context) override;
  void Detach(grpc::ClientContext* context) override;

 private:
  mutable absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_set<grpc::ClientContext*> active_ ABSL_GUARDED_BY(mu_);
};

// True when the coordinator does not know the agent that called (it restarted, or forgot an
// agent that was silent for long): the status carries the reason
// common::kReasonAgentNotRegistered (a NOT_FOUND; the message text is not looked at). The
// agent answers by registering again.
bool IsNotRegistered(const absl::Status& status);

// True for the codes worth retrying a call on: UNAVAILABLE, DEADLINE_EXCEEDED and
// RESOURCE_EXHAUSTED (the coordinator's disk is full).
bool IsRetryable(const absl::Status& status);

class CoordinatorClient {
 public:
  explicit CoordinatorClient(std::shared_ptr<grpc::Channel> channel);
  ~CoordinatorClient();

  // Exchanges an enrollment token for the agent's credential (agent/enrollment.h). A single
  // try that fails fast, like Register; the channel needs no credential.
  absl::StatusOr<farm::v1::EnrollResponse> Enroll(const farm::v1::EnrollRequest& request,
                                                  CallCanceller* canceller);

  // Single tries; `canceller` may be null. CANCELLED when the canceller fired. Except
  // Register, calls wait for the channel to (re)connect within their deadline rather than
  // failing at once, so that they go out the moment a restarted coordinator is back.
  absl::StatusOr<farm::v1::RegisterResponse> Register(const farm::v1::RegisterRequest& request,
                                                      CallCanceller* canceller);
  // Deadline: request.wait_ms + kLongPollSlackMs.
  absl::StatusOr<farm::v1::LeaseResponse> Lease(const farm::v1::LeaseRequest& request,
                                                CallCanceller* canceller);
  // fail_fast: a last word at shutdown; no waiting for a reconnect, deadline
  // kFailFastDeadlineMs, and request.wait_ms should be 0.
  absl::StatusOr<farm::v1::HeartbeatResponse> Heartbeat(const farm::v1::HeartbeatRequest& request,
                                                        CallCanceller* canceller,
                                                        bool fail_fast = false);
  // One client stream: writes every chunk, then WritesDone + Finish.
  absl::StatusOr<farm::v1::LogUploadResponse> UploadLogs(
      const std::vector<std::shared_ptr<const farm::v1::LogUploadChunk>>& chunks,
      CallCanceller* canceller);

  // Retried on IsRetryable() codes, and on a CANCELLED the canceller did not cause (the
  // coordinator died mid-call), with backoff until they succeed, fail otherwise, or
  // `canceller` fires (CANCELLED). FAILED_PRECONDITION means the lease is stale.
  absl::Status StepStarted(const farm::v1::StepStartedRequest& request, CallCanceller* canceller);
  absl::Status StepFinished(const farm::v1::StepFinishedRequest& request, CallCanceller* canceller);
  // The answer carries the slot's next lease when the request asked for one (lease_next).
  absl::StatusOr<farm::v1::CompleteJobResponse> CompleteJob(
      const farm::v1::CompleteJobRequest& request, CallCanceller* canceller);

 private:
  struct Stub;  // keeps the generated gRPC stub out of this header
  std::unique_ptr<Stub> stub_;
};

}  // namespace farm::agent
