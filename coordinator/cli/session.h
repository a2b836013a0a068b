// What every farmctl command works with: the parsed options, the streams, the retrying farm.v1
// client (common/farm_client.h) and the CAS client on the same channel, and the few steps that
// several command groups share (reporting an error in one line, printing a result, reading a
// job, following a job's output through reconnects).
//
// Retries: submits retry under the client's policy (CliOptions::submit_retry_ms, with one
// request id); other unary calls make one try with a deadline (CliOptions::rpc_timeout_ms), so
// that `get` on an unreachable coordinator answers at once; follow streams and polls ride out
// an outage with a RetryLoop of the same policy whose budget is
// CliOptions::reconnect_give_up_ms, saying "reconnecting" once per outage.
//
// One Session per command run, on one thread.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/cas_client.h"
#include "common/farm_client.h"
#include "coordinator/cli/commands.h"
#include "coordinator/cli/format.h"
#include "coordinator/cli/log_printer.h"
#include "coordinator/cli/options.h"
#include "farm/v1/farm.grpc.pb.h"

namespace farm::cli {

class Session {
 public:
  Session(const CliOptions& options, CliIo& io, std::shared_ptr<grpc::Channel> channel);

  const CliOptions& options() const { return options_; }
  CliIo& io() { return io_; }
  common::FarmClient& client() { return client_; }
  common::CasClient& cas() { return cas_; }
  bool json() const { return options_.output == OutputFormat::kJson; }
  TextContext Context() const { return {io_.clock.NowMs(), io_.time_zone}; }

  // Reports a failed call in one line on stderr (DescribeRpcError: NOT_FOUND names `id`);
  // returns kExitError.
  int Fail(const absl::Status& status, absl::string_view id = "");
  // Reports a failed submit of a job or a pipeline (`what`); returns kExitError.
  int FailSubmit(const absl::Status& status, absl::string_view what);
  // Writes `text` to stdout; returns kExitSucceeded.
  int Print(const std::string& text);

  // One try of a JobService or AdminService call, with the deadline of one call (cut to
  // `deadline` when given).
  template <typename Stub, typename Request, typename Response>
  absl::StatusOr<Response> CallOnce(common::FarmClient::Method<Stub, Request, Response> method,
                                    Stub& stub, const Request& request,
                                    std::optional<absl::Time> deadline = std::nullopt) {
    return client_.CallOnce(method, stub, request, deadline);
  }
  absl::StatusOr<farm::v1::Job> GetJob(const std::string& job_id);

  // A retry loop for a stream or a poll: the client's policy with the reconnect budget.
  common::RetryLoop NewFollowLoop() {
    return common::RetryLoop(follow_policy_, client_.channel().get(), /*budget_from_now=*/false);
  }
  // Says once per outage on stderr that the coordinator is unreachable (`status`) and that
  // farmctl reconnects.
  void SayReconnecting(const absl::Status& status);

  // Reads WatchLogs for `request`, passing every message to `on_message` (false from it: the
  // output failed, DATA_LOSS), until the stream ends. With request.follow, a stream broken by
  // UNAVAILABLE (or closed without a final state, e.g. by a coordinator shutting down) is
  // reopened under a follow loop (a stream that had run for a while at once and quietly: the
  // coordinator retires connections); the new stream starts over, so `on_message` sees old chunks
  // again (LogPrinter skips them). Returns the job's final state (UNSPECIFIED when not following
  // and the job has not ended); DEADLINE_EXCEEDED when `deadline` passes first; the stream's
  // error otherwise.
  absl::StatusOr<farm::v1::JobState> Watch(
      const farm::v1::WatchLogsRequest& request,
      const std::function<bool(const farm::v1::WatchLogsResponse&)>& on_message,
      std::optional<absl::Time> deadline);
  // Follows a job's output to the end, writing it through `printer` (null: discard).
  absl::StatusOr<farm::v1::JobState> FollowJob(const std::string& job_id, LogPrinter* printer,
                                               std::optional<absl::Time> deadline);

 private:
  static common::RetryPolicy PolicyOf(const CliOptions& options);

  const CliOptions& options_;
  CliIo& io_;
  common::FarmClient client_;
  common::RetryPolicy follow_policy_;
  common::CasClient cas_;
};

}  // namespace farm::cli
