#include "common/farm_client.h"

#include <algorithm>
#include <random>
#include <utility>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/channel.h"
#include "common/status_macros.h"

namespace farm::common {

bool RetryPolicy::IsRetryable(const absl::Status& status) const {
  if (status.code() == absl::StatusCode::kUnavailable) return true;
  return std::find(also_retry.begin(), also_retry.end(), status.code()) != also_retry.end();
}

RetryLoop::RetryLoop(const RetryPolicy& policy, grpc::Channel* channel, bool budget_from_now)
    : policy_(policy),
      channel_(channel),
      backoff_(policy.initial_backoff_ms, policy.max_backoff_ms) {
  if (budget_from_now) give_up_ = absl::Now() + absl::Milliseconds(policy.budget_ms);
}

void RetryLoop::Progress() {
  give_up_.reset();
  backoff_.Reset();
}

bool RetryLoop::Failed(const absl::Status& status, std::optional<absl::Time> not_after) {
  if (!policy_.IsRetryable(status)) return false;
  const absl::Time now = absl::Now();
  if (!give_up_.has_value()) give_up_ = now + absl::Milliseconds(policy_.budget_ms);
  if (now >= *give_up_) return false;
  const absl::Time wait_until = not_after.has_value() ? std::min(*give_up_, *not_after) : *give_up_;
  if (policy_.on_retry) policy_.on_retry(status);
  // GetState(true) also starts the reconnection of an idle channel.
  if (channel_->GetState(/*try_to_connect=*/true) == GRPC_CHANNEL_READY) {
    const absl::Duration delay = absl::Milliseconds(backoff_.NextDelayMs());
    // A try that would start at the very end of the budget could only time out.
    if (now + delay >= *give_up_) return false;
    absl::SleepFor(std::min(delay, wait_until - now));
    return true;
  }
  // The connection is down: try again the moment it is back.
  if (channel_->WaitForConnected(absl::ToChronoTime(wait_until))) return true;
  return absl::Now() < *give_up_;
}

absl::StatusOr<std::unique_ptr<FarmClient>> FarmClient::Create(const std::string& target,
                                                               const ClientSecurity& security,
                                                               RetryPolicy policy) {
  FARM_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel, MakeChannel(target, security));
  return std::make_unique<FarmClient>(std::move(channel), std::move(policy));
}

absl::StatusOr<std::unique_ptr<FarmClient>> FarmClient::Create(const std::string& target,
                                                               RetryPolicy policy) {
  FARM_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel, MakeChannel(target));
  return std::make_unique<FarmClient>(std::move(channel), std::move(policy));
}

FarmClient::FarmClient(std::shared_ptr<grpc::Channel> channel, RetryPolicy policy)
    : policy_(std::move(policy)),
      channel_(std::move(channel)),
      jobs_(farm::v1::JobService::NewStub(channel_)),
      admin_(farm::v1::AdminService::NewStub(channel_)) {}

std::string FarmClient::NewRequestId() {
  std::random_device device;
  std::uniform_int_distribution<uint64_t> dist;
  std::mt19937_64 rng((static_cast<uint64_t>(device()) << 32) ^ device());
  return absl::StrFormat("%016x%016x", dist(rng), dist(rng));
}

absl::StatusOr<farm::v1::SubmitJobResponse> FarmClient::Submit(
    const farm::v1::SubmitJobRequest& request, CallInfo* info) {
  return Call(&farm::v1::JobService::Stub::Submit, *jobs_, request, info);
}

absl::StatusOr<farm::v1::SubmitPipelineResponse> FarmClient::SubmitPipeline(
    const farm::v1::SubmitPipelineRequest& request, CallInfo* info) {
  return Call(&farm::v1::JobService::Stub::SubmitPipeline, *jobs_, request, info);
}

absl::Time FarmClient::CallDeadline(std::optional<absl::Time> cap) const {
  const absl::Time deadline = absl::Now() + absl::Milliseconds(policy_.call_timeout_ms);
  return cap.has_value() ? std::min(deadline, *cap) : deadline;
}

}  // namespace farm::common
