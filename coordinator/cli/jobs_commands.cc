// The jobs group: submit, get, list, logs, wait, cancel. get, list --pipelines, wait, cancel and
// submit of a pipeline file go on in pipeline_commands.cc.
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/duration.h"
#include "common/job_state.h"
#include "common/text.h"
#include "coordinator/cli/command_table.h"
#include "coordinator/cli/format.h"
#include "coordinator/cli/log_printer.h"
#include "coordinator/cli/pipeline_commands.h"
#include "coordinator/cli/session.h"
#include "coordinator/cli/submit_file.h"

namespace farm::cli {
namespace {

using common::IsTerminal;
using farm::v1::Job;
using farm::v1::JobState;

// Whether output written to `fd` lands on a terminal, which a job's escape sequences would drive.
bool OnTerminal(int fd) { return fd >= 0 && ::isatty(fd) == 1; }

// Reports a job that has ended: the Job as JSON, or a summary line on stderr (stdout of
// `submit` holds the job id and the job's output only). Returns the outcome's exit code.
int Finish(Session& session, const std::string& job_id, JobState final_state) {
  absl::StatusOr<Job> job = session.GetJob(job_id);
  if (!job.ok()) {
    if (session.json()) return session.Fail(job.status(), job_id);
    job = Job();
    job->set_id(job_id);
    job->set_state(final_state);
  }
  if (session.json()) {
    session.Print(ToJson(*job));
  } else {
    session.io().err << "==> " << FormatOutcomeLine(*job) << "\n";
    session.io().err.flush();
  }
  return ExitCodeForState(job->state());
}

int Submit(Session& session) {
  const CliOptions& options = session.options();
  CliIo& io = session.io();
  absl::StatusOr<SubmitSpec> spec =
      options.file == "-" ? ReadSpecFromStream(io.in, "<stdin>") : LoadSpec(options.file);
  if (!spec.ok()) {
    // The parser's "FILE:LINE:COLUMN: ..." is the whole message, as compilers print it.
    io.err << OneLine(spec.status().message()) << "\n";
    return kExitError;
  }
  if (spec->pipeline.has_value()) {
    return SubmitPipelineCommand(session, *std::move(spec->pipeline));
  }
  const int step_count = spec->job->steps_size();
  farm::v1::SubmitJobRequest request;
  *request.mutable_spec() = *std::move(spec->job);
  request.set_request_id(common::FarmClient::NewRequestId());
  absl::StatusOr<farm::v1::SubmitJobResponse> response = session.client().Submit(request);
  if (!response.ok()) return session.FailSubmit(response.status(), "job");
  const std::string& job_id = response->job_id();
  if (!options.wait && !options.follow) {
    return session.Print(session.json() ? ToJson(*response) : absl::StrCat(job_id, "\n"));
  }
  if (!session.json()) session.Print(absl::StrCat(job_id, "\n"));

  // With JSON output stdout holds one document, so followed output goes to stderr.
  std::optional<LogPrinter> printer;
  if (options.follow) {
    std::ostream& logs = session.json() ? io.err : io.out;
    printer.emplace(&logs, &io.err, /*step_headers=*/step_count > 1,
                    /*escape_controls=*/OnTerminal(session.json() ? io.err_fd : io.out_fd));
  }
  absl::StatusOr<JobState> final_state =
      session.FollowJob(job_id, printer.has_value() ? &*printer : nullptr, std::nullopt);
  if (!final_state.ok()) return session.Fail(final_state.status(), job_id);
  return Finish(session, job_id, *final_state);
}

int Get(Session& session) {
  const std::string& id = session.options().job_id;
  if (IsPipelineId(id)) return GetPipelineCommand(session);
  absl::StatusOr<Job> job = session.GetJob(id);
  if (!job.ok()) return session.Fail(job.status(), id);
  return session.Print(session.json() ? ToJson(*job) : FormatJobText(*job, session.Context()));
}

int List(Session& session) {
  if (session.options().pipelines) return ListPipelinesCommand(session);
  farm::v1::ListJobsRequest request;
  request.set_state(session.options().state);
  request.set_limit(session.options().limit);
  absl::StatusOr<farm::v1::ListJobsResponse> response =
      session.CallOnce(&farm::v1::JobService::Stub::List, session.client().jobs(), request);
  if (!response.ok()) return session.Fail(response.status());
  return session.Print(session.json() ? ToJson(*response)
                                      : FormatJobListText(*response, session.Context()));
}

int Cancel(Session& session) {
  const std::string& id = session.options().job_id;
  if (IsPipelineId(id)) return CancelPipelineCommand(session);
  farm::v1::CancelJobRequest request;
  request.set_job_id(id);
  absl::StatusOr<farm::v1::CancelJobResponse> response =
      session.CallOnce(&farm::v1::JobService::Stub::Cancel, session.client().jobs(), request);
  if (!response.ok()) return session.Fail(response.status(), id);
  const Job& job = response->job();
  if (session.json()) return session.Print(ToJson(job));
  if (IsTerminal(job.state())) {
    return session.Print(
        job.state() == farm::v1::CANCELLED
            ? absl::StrCat("job ", id, " CANCELLED\n")
            : absl::StrCat("job ", id, " had already ended: ", JobStateName(job.state()), "\n"));
  }
  return session.Print(
      absl::StrCat("job ", id, ": cancel requested (it was ", JobStateName(job.state()), ")\n"));
}

// What `logs --output=json` writes: the new part of each message; without --follow merged into
// one document at the end, with --follow one message per line as it arrives.
class JsonLogWriter {
 public:
  JsonLogWriter(Session& session, LogPrinter& printer) : session_(session), printer_(printer) {}

  bool Write(const farm::v1::WatchLogsResponse& message) {
    farm::v1::WatchLogsResponse fresh;
    fresh.set_final_state(message.final_state());
    for (const farm::v1::LogChunk& chunk : message.chunks()) {
      farm::v1::LogChunk part = printer_.Fresh(chunk);
      if (!part.data().empty()) *fresh.add_chunks() = std::move(part);
    }
    if (!session_.options().follow) {
      merged_.MergeFrom(fresh);
      return true;
    }
    if (fresh.chunks().empty() && fresh.final_state() == farm::v1::JOB_STATE_UNSPECIFIED) {
      return true;
    }
    std::ostream& out = session_.io().out;
    out << ToJson(fresh, /*pretty=*/false);
    out.flush();
    return out.good();
  }

  // Without --follow: the one document.
  void Finish(JobState final_state) {
    if (session_.options().follow) return;
    merged_.set_final_state(final_state);
    session_.Print(ToJson(merged_));
  }

 private:
  Session& session_;
  LogPrinter& printer_;
  farm::v1::WatchLogsResponse merged_;
};

int Logs(Session& session) {
  const CliOptions& options = session.options();
  CliIo& io = session.io();
  absl::StatusOr<Job> job = session.GetJob(options.job_id);
  if (!job.ok()) return session.Fail(job.status(), options.job_id);
  std::vector<std::string> names;
  for (const auto& step : job->spec().steps()) names.push_back(step.name());
  if (!options.step.empty() && std::find(names.begin(), names.end(), options.step) == names.end()) {
    io.err << "farmctl: job " << options.job_id << " has no step named "
           << common::Quote(options.step)
           << " (its steps: " << common::EscapeControls(absl::StrJoin(names, ", ")) << ")\n";
    return kExitError;
  }

  farm::v1::WatchLogsRequest request;
  request.set_job_id(options.job_id);
  request.set_follow(options.follow);
  request.set_step(options.step);
  LogPrinter printer(&io.out, session.json() ? nullptr : &io.err,
                     /*step_headers=*/options.step.empty() && names.size() > 1,
                     /*escape_controls=*/!session.json() && !options.raw && OnTerminal(io.out_fd));
  JsonLogWriter json_writer(session, printer);
  absl::StatusOr<JobState> final_state = session.Watch(
      request,
      [&](const farm::v1::WatchLogsResponse& message) {
        if (session.json()) return json_writer.Write(message);
        for (const farm::v1::LogChunk& chunk : message.chunks()) {
          if (!printer.Write(chunk)) return false;
        }
        return true;
      },
      std::nullopt);
  if (!final_state.ok()) return session.Fail(final_state.status(), options.job_id);
  if (session.json()) json_writer.Finish(*final_state);
  return options.follow ? ExitCodeForState(*final_state) : kExitSucceeded;
}

int Wait(Session& session) {
  const CliOptions& options = session.options();
  const std::string& id = options.job_id;
  std::optional<absl::Time> deadline;
  if (options.timeout_ms.has_value()) {
    deadline = absl::Now() + absl::Milliseconds(*options.timeout_ms);
  }
  if (IsPipelineId(id)) return WaitPipelineCommand(session, deadline);
  absl::StatusOr<Job> job = session.GetJob(id);
  if (!job.ok()) return session.Fail(job.status(), id);
  if (!IsTerminal(job->state())) {
    absl::StatusOr<JobState> final_state = session.FollowJob(id, /*printer=*/nullptr, deadline);
    if (!final_state.ok() && final_state.status().code() == absl::StatusCode::kDeadlineExceeded &&
        deadline.has_value()) {
      if (absl::StatusOr<Job> now = session.GetJob(id); now.ok()) job = std::move(now);
      if (session.json()) session.Print(ToJson(*job));
      session.io().err << "farmctl: job " << id << " is still " << JobStateName(job->state())
                       << " after " << common::FormatDurationMs(*options.timeout_ms) << "\n";
      return kExitWaitTimedOut;
    }
    if (!final_state.ok()) return session.Fail(final_state.status(), id);
    absl::StatusOr<Job> ended = session.GetJob(id);
    if (!ended.ok()) return session.Fail(ended.status(), id);
    job = std::move(ended);
  }
  session.Print(session.json() ? ToJson(*job) : absl::StrCat(FormatOutcomeLine(*job), "\n"));
  return ExitCodeForState(job->state());
}

}  // namespace

void RegisterJobCommands(std::vector<CommandDef>& table) {
  table.push_back(
      {"submit",
       Command::kSubmit,
       {"FILE"},
       false,
       {"wait", "follow"},
       "FILE [--wait] [--follow]",
       "submit a job or pipeline file (YAML or JSON; \"-\": stdin); prints the job id, or the "
       "pipeline id (pN)",
       "A pipeline file (one with a top-level `jobs:`) is checked completely, cycles and\n"
       "unknown needs included, before anything is sent; submit prints the pipeline's id,\n"
       "pN (with --output=json, the farm.v1.Pipeline). Any other file is a job file; submit\n"
       "prints the job's id.\n\n"
       "For a pipeline, --follow shows each job's state until the pipeline ends: redrawn in\n"
       "place on a terminal (a line per job and a done/total bar), else one line per change\n"
       "and a summary line. --wait waits silently and prints the summary on stderr. Either\n"
       "way the exit code is the pipeline's outcome.\n",
       Submit});
  table.push_back({"get",
                   Command::kGet,
                   {"JOB|PIPELINE"},
                   false,
                   {},
                   "JOB|PIPELINE",
                   "a job's state, attempts and steps; a pipeline's state and jobs",
                   "For a pipeline (pN): its name, state and times, and a table of its jobs with "
                   "their\nids (for logs, artifacts and download), states, attempts, durations "
                   "and needs.\n",
                   Get});
  table.push_back({"list",
                   Command::kList,
                   {},
                   false,
                   {"state", "limit", "pipelines"},
                   "[--state=S] [--limit=N] [--pipelines]",
                   "recent jobs (or pipelines), newest first",
                   "--pipelines lists pipelines: id, name, state, jobs done/total and age.\n",
                   List});
  table.push_back({"logs",
                   Command::kLogs,
                   {"JOB"},
                   false,
                   {"follow", "step", "raw"},
                   "JOB [--follow] [--step=NAME] [--raw]",
                   "a job's output; --follow streams it until the job ends",
                   "JOB is a job's id; `farmctl get pN` shows the ids of a pipeline's jobs.\n"
                   "On a terminal, escape sequences and other control characters in the output\n"
                   "are shown escaped (\\x1b); --raw writes them as they are. Output to a pipe\n"
                   "or a file is the job's bytes, unchanged.\n",
                   Logs});
  table.push_back({"wait",
                   Command::kWait,
                   {"JOB|PIPELINE"},
                   false,
                   {"timeout"},
                   "JOB|PIPELINE [--timeout=D]",
                   "block until the job or pipeline ends; the exit code is its outcome",
                   "For a pipeline (pN) the exit code is the pipeline's outcome: SUCCEEDED once "
                   "every\njob has, else FAILED or CANCELLED once every job has ended.\n",
                   Wait});
  table.push_back({"cancel",
                   Command::kCancel,
                   {"JOB|PIPELINE"},
                   false,
                   {},
                   "JOB|PIPELINE",
                   "cancel a queued or running job, or every job of a pipeline that has not ended",
                   "For a pipeline (pN), every job of it that has not ended is cancelled.\n",
                   Cancel});
}

}  // namespace farm::cli
