#include "coordinator/cli/session.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/duration.h"

namespace farm::cli {
namespace {

common::CasClientOptions CasOptions(const CliOptions& options) {
  common::CasClientOptions cas;
  cas.rpc_timeout_ms = options.rpc_timeout_ms;
  cas.attempts = options.cas_attempts;
  cas.initial_backoff_ms = options.retry_initial_backoff_ms;
  cas.max_backoff_ms = options.retry_max_backoff_ms;
  return cas;
}

// A following stream that breaks after running this long is reopened at once and without a
// word: most likely the coordinator retired its connection (--max_connection_age). Only when
// that fails too does farmctl say "reconnecting" and back off.
constexpr absl::Duration kQuietReopenAfter = absl::Seconds(3);

}  // namespace

common::RetryPolicy Session::PolicyOf(const CliOptions& options) {
  common::RetryPolicy policy;
  policy.call_timeout_ms = options.rpc_timeout_ms;
  policy.budget_ms = options.submit_retry_ms;
  policy.initial_backoff_ms = options.retry_initial_backoff_ms;
  policy.max_backoff_ms = options.retry_max_backoff_ms;
  policy.on_retry = options.on_retry;
  return policy;
}

Session::Session(const CliOptions& options, CliIo& io, std::shared_ptr<grpc::Channel> channel)
    : options_(options),
      io_(io),
      client_(channel, PolicyOf(options)),
      follow_policy_(PolicyOf(options)),
      cas_(channel, CasOptions(options)) {
  follow_policy_.budget_ms = options.reconnect_give_up_ms;
}

int Session::Fail(const absl::Status& status, absl::string_view id) {
  io_.err << "farmctl: " << DescribeRpcError(status, options_.coordinator, id) << "\n";
  io_.err.flush();
  return kExitError;
}

int Session::FailSubmit(const absl::Status& status, absl::string_view what) {
  if (status.code() == absl::StatusCode::kInvalidArgument) {
    io_.err << "farmctl: the coordinator refused the " << what << ": " << OneLine(status.message())
            << "\n";
    return kExitError;
  }
  if (client_.policy().IsRetryable(status)) {
    io_.err << "farmctl: " << DescribeRpcError(status, options_.coordinator)
            << "; gave up after retrying for " << common::FormatDurationMs(options_.submit_retry_ms)
            << "\n";
    return kExitError;
  }
  return Fail(status);
}

int Session::Print(const std::string& text) {
  io_.out << text;
  io_.out.flush();
  return kExitSucceeded;
}

absl::StatusOr<farm::v1::Job> Session::GetJob(const std::string& job_id) {
  farm::v1::GetJobRequest request;
  request.set_job_id(job_id);
  return CallOnce(&farm::v1::JobService::Stub::Get, client_.jobs(), request);
}

void Session::SayReconnecting(const absl::Status& status) {
  io_.err << "farmctl: " << DescribeRpcError(status, options_.coordinator) << "; reconnecting\n";
  io_.err.flush();
}

absl::StatusOr<farm::v1::JobState> Session::Watch(
    const farm::v1::WatchLogsRequest& request,
    const std::function<bool(const farm::v1::WatchLogsResponse&)>& on_message,
    std::optional<absl::Time> deadline) {
  common::RetryLoop loop = NewFollowLoop();
  for (;;) {
    const absl::Time opened = absl::Now();
    grpc::ClientContext context;
    if (deadline.has_value()) context.set_deadline(absl::ToChronoTime(*deadline));
    std::unique_ptr<grpc::ClientReader<farm::v1::WatchLogsResponse>> reader =
        client_.jobs().WatchLogs(&context, request);
    farm::v1::WatchLogsResponse message;
    farm::v1::JobState final_state = farm::v1::JOB_STATE_UNSPECIFIED;
    bool output_ok = true;
    while (reader->Read(&message)) {
      loop.Progress();
      if (!on_message(message)) {
        output_ok = false;
        context.TryCancel();
        break;
      }
      if (message.final_state() != farm::v1::JOB_STATE_UNSPECIFIED) {
        final_state = message.final_state();
      }
    }
    const absl::Status status = common::FromGrpcStatus(reader->Finish());
    if (!output_ok) return absl::DataLossError("cannot write the output");
    if (final_state != farm::v1::JOB_STATE_UNSPECIFIED) return final_state;
    if (status.ok() && !request.follow()) return final_state;
    if (deadline.has_value() && absl::Now() >= *deadline) {
      return absl::DeadlineExceededError("timed out waiting for the job");
    }
    const bool broken = status.ok() || status.code() == absl::StatusCode::kUnavailable;
    if (!request.follow() || !broken) return status;
    if (!loop.in_outage() && absl::Now() - opened >= kQuietReopenAfter) continue;

    if (!loop.in_outage()) {
      if (status.ok()) {
        io_.err << "farmctl: the coordinator at " << options_.coordinator
                << " closed the stream; reconnecting\n";
        io_.err.flush();
      } else {
        SayReconnecting(status);
      }
    }
    if (!loop.Failed(status.ok() ? absl::UnavailableError("closed") : status, deadline)) {
      return status.ok() ? absl::UnavailableError("the coordinator keeps closing the stream")
                         : status;
    }
  }
}

absl::StatusOr<farm::v1::JobState> Session::FollowJob(const std::string& job_id,
                                                      LogPrinter* printer,
                                                      std::optional<absl::Time> deadline) {
  farm::v1::WatchLogsRequest request;
  request.set_job_id(job_id);
  request.set_follow(true);
  return Watch(
      request,
      [printer](const farm::v1::WatchLogsResponse& message) {
        if (printer == nullptr) return true;
        for (const farm::v1::LogChunk& chunk : message.chunks()) {
          if (!printer->Write(chunk)) return false;
        }
        return true;
      },
      deadline);
}

}  // namespace farm::cli
