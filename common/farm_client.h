// A client of the farm's public API (farm.v1 JobService and AdminService) with the one retry
// policy every farm client uses: farmctl, the fault suite's history checker, the examples.
//
// - Every try has a deadline (RetryPolicy::call_timeout_ms).
// - Only UNAVAILABLE, and the codes the policy names (DEADLINE_EXCEEDED by default), are retried;
//   any other error returns at once.
// - Between tries: while the connection is up (the coordinator itself answered UNAVAILABLE, or
//   did not answer in time), an exponential backoff with jitter (common::Backoff); while it is
//   down, a wait for the channel to connect again, so that the next try goes out the moment a
//   restarted coordinator listens (waiting on the channel is also what drives its reconnection:
//   a client that merely sleeps between fail-fast calls sees the coordinator back only when
//   gRPC's backup poller next runs, seconds late).
// - An overall budget (RetryPolicy::budget_ms) counted from the first try; a retry's deadline is
//   cut to the end of it. When the budget runs out the last informative error is returned (a
//   try cut short by the budget that timed out says nothing new, so the error before it).
// - Submits are retried with their request as it is: the caller sets request_id once (see
//   NewRequestId), and the coordinator never makes a second job for it.
//
// Streams and polls that must ride out an outage of their own (following logs, polling a
// pipeline, following the event history) use RetryLoop, the same policy one failure at a time.
//
// Thread-safe: one FarmClient may be used by many threads at once (the checker does). A
// RetryLoop belongs to one loop on one thread.
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/backoff.h"
#include "common/channel.h"
#include "common/grpc_status.h"
#include "common/text.h"
#include "farm/v1/farm.grpc.pb.h"

namespace farm::common {

struct RetryPolicy {
  int64_t call_timeout_ms = 10'000;  // deadline of one try
  // How long a retried call keeps trying, from its first try (a RetryLoop: from the first
  // failure after the last progress). 0: one try.
  int64_t budget_ms = 20'000;
  int64_t initial_backoff_ms = 200;  // first backoff; it doubles up to max_backoff_ms
  int64_t max_backoff_ms = 3'000;
  // Codes retried besides UNAVAILABLE.
  std::vector<absl::StatusCode> also_retry = {absl::StatusCode::kDeadlineExceeded};
  // Called (on the calling thread) with the error of each failed try that will be retried,
  // before the wait: lets a caller count or show them. May be empty.
  std::function<void(const absl::Status& status)> on_retry;

  // Whether `status` is a failure this policy retries.
  bool IsRetryable(const absl::Status& status) const;
};

// One retry loop under a RetryPolicy: call Failed() after each failed try; it waits before the
// next one (see the file comment), or says that the budget is spent. Progress() (a stream
// delivered data) starts the budget and the backoff over, from the next failure on.
class RetryLoop {
 public:
  // `budget_from_now`: the budget runs from now (a call's first try) rather than from the
  // first failure (a stream that may run for hours before its first outage).
  RetryLoop(const RetryPolicy& policy, grpc::Channel* channel, bool budget_from_now);

  // After a failed try with `status`: false at once when the policy does not retry it or the
  // budget is spent; otherwise waits before the next try and returns true. The wait ends by
  // `not_after` when given (the caller's own deadline; check it after the call).
  bool Failed(const absl::Status& status, std::optional<absl::Time> not_after = std::nullopt);
  void Progress();

  // True between the first failure after construction or Progress() and the next Progress():
  // lets a caller say "reconnecting" once per outage.
  bool in_outage() const { return give_up_.has_value(); }
  // The end of the budget; set once the budget runs.
  std::optional<absl::Time> give_up() const { return give_up_; }

 private:
  const RetryPolicy& policy_;
  grpc::Channel* channel_;
  Backoff backoff_;
  std::optional<absl::Time> give_up_;
};

// How a unary call went, for callers that judge more than its result (the checker: a call that
// failed after a retried try has an unknown outcome).
struct CallInfo {
  int tries = 0;
};

class FarmClient {
 public:
  // A client of the coordinator at `target` ("HOST:PORT"), secured as `security` says
  // (common/channel.h); INVALID_ARGUMENT on an empty target.
  static absl::StatusOr<std::unique_ptr<FarmClient>> Create(const std::string& target,
                                                            const ClientSecurity& security,
                                                            RetryPolicy policy = {});
  // The same over plaintext, for a coordinator started with --insecure.
  static absl::StatusOr<std::unique_ptr<FarmClient>> Create(const std::string& target,
                                                            RetryPolicy policy = {});
  FarmClient(std::shared_ptr<grpc::Channel> channel, RetryPolicy policy);

  // A fresh request id for a submit: 128 random bits in hex, which no other client chooses.
  static std::string NewRequestId();

  // Retried under the policy. Set request.request_id() before the call (NewRequestId).
  absl::StatusOr<farm::v1::SubmitJobResponse> Submit(const farm::v1::SubmitJobRequest& request,
                                                     CallInfo* info = nullptr);
  absl::StatusOr<farm::v1::SubmitPipelineResponse> SubmitPipeline(
      const farm::v1::SubmitPipelineRequest& request, CallInfo* info = nullptr);

  // Any JobService/AdminService unary call. `Call` retries it under the policy; `CallOnce` makes
  // one try with the policy's deadline (cut to `deadline` when given). A request whose strings
  // the coordinator would refuse (ValidateRequestText, common/text.h) is not sent: the result is
  // that INVALID_ARGUMENT naming the field. Usage:
  //   client.CallOnce(&farm::v1::JobService::Stub::Get, client.jobs(), request)
  template <typename Stub, typename Request, typename Response>
  using Method = grpc::Status (Stub::*)(grpc::ClientContext*, const Request&, Response*);

  template <typename Stub, typename Request, typename Response>
  absl::StatusOr<Response> Call(Method<Stub, Request, Response> method, Stub& stub,
                                const Request& request, CallInfo* info = nullptr) const {
    if (absl::Status s = ValidateRequestText(request); !s.ok()) return s;
    return Retrying<Response>(
        [&](grpc::ClientContext* context, Response* response) {
          return (stub.*method)(context, request, response);
        },
        info);
  }
  template <typename Stub, typename Request, typename Response>
  absl::StatusOr<Response> CallOnce(Method<Stub, Request, Response> method, Stub& stub,
                                    const Request& request,
                                    std::optional<absl::Time> deadline = std::nullopt) const {
    if (absl::Status s = ValidateRequestText(request); !s.ok()) return s;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(CallDeadline(deadline)));
    Response response;
    absl::Status status = FromGrpcStatus((stub.*method)(&context, request, &response));
    if (!status.ok()) return status;
    return response;
  }

  // A new retry loop under this client's policy.
  RetryLoop NewRetryLoop(bool budget_from_now) const {
    return RetryLoop(policy_, channel_.get(), budget_from_now);
  }

  // The stubs, for calls the helpers above do not cover (streams).
  farm::v1::JobService::Stub& jobs() const { return *jobs_; }
  farm::v1::AdminService::Stub& admin() const { return *admin_; }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  const RetryPolicy& policy() const { return policy_; }

 private:
  // One try's deadline: call_timeout_ms from now, no later than `cap`.
  absl::Time CallDeadline(std::optional<absl::Time> cap) const;

  template <typename Response>
  absl::StatusOr<Response> Retrying(
      const std::function<grpc::Status(grpc::ClientContext*, Response*)>& call,
      CallInfo* info) const {
    RetryLoop loop(policy_, channel_.get(), /*budget_from_now=*/true);
    absl::Status previous;  // the error of the try before, to report
    for (int tries = 1;; ++tries) {
      if (info != nullptr) info->tries = tries;
      const absl::Time uncut = CallDeadline(std::nullopt);
      const absl::Time deadline = tries > 1 ? std::min(uncut, *loop.give_up()) : uncut;
      const bool cut = deadline < uncut;
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(deadline));
      Response response;
      absl::Status status = FromGrpcStatus(call(&context, &response));
      if (status.ok()) return response;
      // A retry cut short by the end of the budget that times out says nothing new about the
      // coordinator: the error before it is the one that explains the failure.
      if (cut && status.code() == absl::StatusCode::kDeadlineExceeded && !previous.ok()) {
        status = previous;
      }
      previous = status;
      if (!loop.Failed(status)) return status;
    }
  }

  const RetryPolicy policy_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<farm::v1::JobService::Stub> jobs_;
  std::unique_ptr<farm::v1::AdminService::Stub> admin_;
};

}  // namespace farm::common
