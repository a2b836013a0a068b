#include "coordinator/cli/pipeline_commands.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/duration.h"
#include "common/job_state.h"
#include "coordinator/cli/admin_queue_commands.h"
#include "coordinator/cli/format.h"
#include "coordinator/cli/pipeline_progress.h"

namespace farm::cli {
namespace {

using common::IsTerminal;
using farm::v1::Pipeline;

// The size of the terminal behind `fd`; false when it is not one.
bool TerminalSize(int fd, int* width, int* height) {
  if (fd < 0 || !::isatty(fd)) return false;
  struct winsize size = {};
  if (::ioctl(fd, TIOCGWINSZ, &size) == 0) {
    *width = size.ws_col;
    *height = size.ws_row;
  } else {
    *width = *height = 0;
  }
  return true;
}

absl::StatusOr<Pipeline> GetPipeline(Session& session, const std::string& id,
                                     std::optional<absl::Time> deadline) {
  farm::v1::GetPipelineRequest request;
  request.set_pipeline_id(id);
  return session.CallOnce(&farm::v1::JobService::Stub::GetPipeline, session.client().jobs(),
                          request, deadline);
}

// Asks for the pipeline every pipeline_poll_ms until it has ended, passing each answer to
// `on_snapshot` (may be empty; false from it: the output failed, DATA_LOSS). Unless `submitted`
// (the pipeline was just made), the first call's error is returned as it is (like `wait JOB`'s
// first Get); after that, while the coordinator is unreachable (UNAVAILABLE, or no answer in
// time), it says so once on stderr and keeps asking under a follow loop. Returns the ended
// pipeline; DEADLINE_EXCEEDED when `deadline` passes first (the first call is made in any case),
// with `*last` the latest answer; other errors as they come.
absl::StatusOr<Pipeline> PollPipeline(Session& session, const std::string& id,
                                      const std::function<bool(const Pipeline&)>& on_snapshot,
                                      std::optional<absl::Time> deadline, bool submitted,
                                      Pipeline* last) {
  common::RetryLoop loop = session.NewFollowLoop();
  const common::RetryPolicy& policy = session.client().policy();
  for (bool first = true;; first = false) {
    absl::StatusOr<Pipeline> pipeline = GetPipeline(session, id, first ? std::nullopt : deadline);
    if (first && !pipeline.ok() && !(submitted && policy.IsRetryable(pipeline.status()))) {
      return pipeline.status();
    }
    if (pipeline.ok()) {
      loop.Progress();
      *last = *pipeline;
      if (on_snapshot && !on_snapshot(*pipeline)) {
        return absl::DataLossError("cannot write the output");
      }
      if (IsTerminal(pipeline->state())) return pipeline;
    } else if (!policy.IsRetryable(pipeline.status())) {
      return pipeline.status();
    }
    if (deadline.has_value() && absl::Now() >= *deadline) {
      return absl::DeadlineExceededError(absl::StrCat("timed out waiting for ", id));
    }
    if (!pipeline.ok()) {
      if (!loop.in_outage()) session.SayReconnecting(pipeline.status());
      if (!loop.Failed(pipeline.status(), deadline)) return pipeline.status();
      continue;
    }
    absl::Duration delay = absl::Milliseconds(session.options().pipeline_poll_ms);
    if (deadline.has_value()) delay = std::min(delay, *deadline - absl::Now());
    absl::SleepFor(delay);
  }
}

// Pipeline progress for `submit --follow`, redrawn in place on a terminal.
class ProgressView {
 public:
  explicit ProgressView(Session& session)
      : session_(session),
        view_(session.json() ? session.io().err : session.io().out),
        fd_(session.json() ? session.io().err_fd : session.io().out_fd),
        progress_({TerminalSize(fd_, &width_, &height_), session.io().time_zone}) {}

  std::ostream& stream() { return view_; }

  bool Show(const Pipeline& pipeline) {
    const int64_t now_ms = session_.io().clock.NowMs();
    if (TerminalSize(fd_, &width_, &height_)) {  // the terminal may have been resized
      view_ << progress_.Update(pipeline, now_ms, width_, height_);
    } else {
      view_ << progress_.Update(pipeline, now_ms);
    }
    view_.flush();
    return view_.good();
  }

 private:
  Session& session_;
  // The progress goes where a job's followed output would: stdout, or stderr when stdout holds
  // the JSON document.
  std::ostream& view_;
  int fd_;
  int width_ = 0;
  int height_ = 0;
  PipelineProgress progress_;
};

}  // namespace

int SubmitPipelineCommand(Session& session, farm::v1::PipelineSpec spec) {
  const CliOptions& options = session.options();
  farm::v1::SubmitPipelineRequest request;
  *request.mutable_spec() = std::move(spec);
  request.set_request_id(common::FarmClient::NewRequestId());
  absl::StatusOr<farm::v1::SubmitPipelineResponse> response =
      session.client().SubmitPipeline(request);
  if (!response.ok()) return session.FailSubmit(response.status(), "pipeline");
  const std::string id = response->pipeline().id();
  if (!options.wait && !options.follow) {
    return session.Print(session.json() ? ToJson(response->pipeline()) : absl::StrCat(id, "\n"));
  }
  if (!session.json()) session.Print(absl::StrCat(id, "\n"));

  ProgressView view(session);
  Pipeline last = response->pipeline();
  std::function<bool(const Pipeline&)> on_snapshot;
  if (options.follow) on_snapshot = [&view](const Pipeline& p) { return view.Show(p); };
  absl::StatusOr<Pipeline> ended =
      PollPipeline(session, id, on_snapshot, std::nullopt, /*submitted=*/true, &last);
  if (!ended.ok()) return session.Fail(ended.status(), id);
  const std::string summary = FormatPipelineSummary(*ended, session.io().clock.NowMs());
  if (options.follow) {
    view.stream() << summary << "\n";
    view.stream().flush();
  } else if (!session.json()) {
    session.io().err << "==> " << summary << "\n";
    session.io().err.flush();
  }
  if (session.json()) session.Print(ToJson(*ended));
  return ExitCodeForState(ended->state());
}

int GetPipelineCommand(Session& session) {
  const std::string& id = session.options().job_id;
  absl::StatusOr<Pipeline> pipeline = GetPipeline(session, id, std::nullopt);
  if (!pipeline.ok()) return session.Fail(pipeline.status(), id);
  return session.Print(session.json() ? ToJson(*pipeline)
                                      : FormatPipelineText(*pipeline, session.Context()) +
                                            FormatPipelineRetryLines(*pipeline, session.Context()));
}

int ListPipelinesCommand(Session& session) {
  farm::v1::ListPipelinesRequest request;
  request.set_limit(session.options().limit);
  absl::StatusOr<farm::v1::ListPipelinesResponse> response = session.CallOnce(
      &farm::v1::JobService::Stub::ListPipelines, session.client().jobs(), request);
  if (!response.ok()) return session.Fail(response.status());
  return session.Print(session.json() ? ToJson(*response)
                                      : FormatPipelineListText(*response, session.Context()));
}

int CancelPipelineCommand(Session& session) {
  const std::string& id = session.options().job_id;
  farm::v1::CancelPipelineRequest request;
  request.set_pipeline_id(id);
  absl::StatusOr<Pipeline> pipeline = session.CallOnce(&farm::v1::JobService::Stub::CancelPipeline,
                                                       session.client().jobs(), request);
  if (!pipeline.ok()) return session.Fail(pipeline.status(), id);
  if (session.json()) return session.Print(ToJson(*pipeline));
  if (IsTerminal(pipeline->state())) {
    return session.Print(pipeline->state() == farm::v1::CANCELLED
                             ? absl::StrCat("pipeline ", id, " CANCELLED\n")
                             : absl::StrCat("pipeline ", id, " had already ended: ",
                                            JobStateName(pipeline->state()), "\n"));
  }
  const int running = pipeline->jobs_size() - CountDoneJobs(*pipeline);
  return session.Print(absl::StrCat("pipeline ", id, ": cancel requested (", running,
                                    running == 1 ? " job" : " jobs", " still ending)\n"));
}

int WaitPipelineCommand(Session& session, std::optional<absl::Time> deadline) {
  const CliOptions& options = session.options();
  const std::string& id = options.job_id;
  Pipeline last;
  absl::StatusOr<Pipeline> ended =
      PollPipeline(session, id, {}, deadline, /*submitted=*/false, &last);
  if (!ended.ok() && ended.status().code() == absl::StatusCode::kDeadlineExceeded &&
      deadline.has_value() && !last.id().empty()) {
    if (session.json()) session.Print(ToJson(last));
    session.io().err << "farmctl: pipeline " << id << " is still " << JobStateName(last.state())
                     << " after " << common::FormatDurationMs(*options.timeout_ms) << " ("
                     << CountDoneJobs(last) << "/" << last.jobs_size() << " jobs done)\n";
    return kExitWaitTimedOut;
  }
  if (!ended.ok()) return session.Fail(ended.status(), id);
  session.Print(
      session.json()
          ? ToJson(*ended)
          : absl::StrCat(FormatPipelineSummary(*ended, session.io().clock.NowMs()), "\n"));
  return ExitCodeForState(ended->state());
}

}  // namespace farm::cli
