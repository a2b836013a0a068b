#include "coordinator/cli/format.h"

#include <algorithm>
#include <csignal>
#include <cstring>
#include <iterator>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "common/duration.h"
#include "common/job_state.h"
#include "common/text.h"
#include "coordinator/cli/options.h"

namespace farm::cli {
namespace {

using common::IsTerminal;
using farm::v1::Job;
using farm::v1::JobState;
using farm::v1::StepResult;
using farm::v1::StepState;

// Left-aligned columns separated by two spaces, the last not padded; cells' controls escaped.
class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void AddRow(std::vector<std::string> row) {
    for (std::string& cell : row) cell = common::EscapeControls(cell);
    rows_.push_back(std::move(row));
  }

  std::string Render(absl::string_view indent = "") const {
    std::vector<size_t> widths;
    for (const auto& row : rows_) {
      widths.resize(std::max(widths.size(), row.size()), 0);
      for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
    }
    std::string out;
    for (const auto& row : rows_) {
      std::string line(indent);
      for (size_t i = 0; i < row.size(); ++i) {
        absl::StrAppend(&line, row[i]);
        if (i + 1 < row.size()) line.append(widths[i] - row[i].size() + 2, ' ');
      }
      absl::StripTrailingAsciiWhitespace(&line);
      absl::StrAppend(&out, line, "\n");
    }
    return out;
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

std::string OrDash(absl::string_view s) { return s.empty() ? "-" : std::string(s); }

std::string FormatTime(int64_t ms, const TextContext& context) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%S %Z", absl::FromUnixMillis(ms), context.time_zone);
}

// Sorted "k=v,k=v": proto maps iterate in no particular order.
std::string FormatLabels(const google::protobuf::Map<std::string, std::string>& labels) {
  std::map<std::string, std::string> sorted(labels.begin(), labels.end());
  return OrDash(absl::StrJoin(sorted, ",", absl::PairFormatter("=")));
}

std::string StepStateName(StepState state) {
  if (!farm::v1::StepState_IsValid(state) || state == farm::v1::STEP_STATE_UNSPECIFIED) {
    return "-";
  }
  return std::string(absl::StripPrefix(farm::v1::StepState_Name(state), "STEP_"));
}

std::string OutcomeName(farm::v1::AttemptOutcome outcome) {
  if (!farm::v1::AttemptOutcome_IsValid(outcome) ||
      outcome == farm::v1::ATTEMPT_OUTCOME_UNSPECIFIED) {
    return "-";
  }
  return std::string(absl::StripPrefix(farm::v1::AttemptOutcome_Name(outcome), "ATTEMPT_"));
}

std::string SignalName(int signal) {
  const char* abbrev = sigabbrev_np(signal);
  if (abbrev == nullptr) return absl::StrCat("signal ", signal);
  return absl::StrCat("SIG", abbrev);
}

// How a step ended: its exit code, or the signal that killed it; "-" if it did not end.
std::string FormatExit(const StepResult& step) {
  switch (step.state()) {
    case farm::v1::STEP_SUCCEEDED:
    case farm::v1::STEP_FAILED:
    case farm::v1::STEP_TIMED_OUT:
    case farm::v1::STEP_CANCELLED:
      if (step.signal() != 0) return SignalName(step.signal());
      return absl::StrCat(step.exit_code());
    default:
      return "-";
  }
}

std::string FormatStepDuration(const StepResult& step, const TextContext& context) {
  switch (step.state()) {
    case farm::v1::STEP_RUNNING:
      if (step.started_ms() <= 0) return "-";
      return common::FormatDurationMs(std::max<int64_t>(0, context.now_ms - step.started_ms()));
    case farm::v1::STEP_SUCCEEDED:
    case farm::v1::STEP_FAILED:
    case farm::v1::STEP_TIMED_OUT:
    case farm::v1::STEP_CANCELLED:
      return common::FormatDurationMs(step.duration_ms());
    default:
      return "-";
  }
}

// The job's run time so far: from its first lease to its end, or to now while it runs.
std::string FormatRunTime(const Job& job, const TextContext& context) {
  if (job.started_ms() <= 0) return "-";
  const int64_t end = job.finished_ms() > 0 ? job.finished_ms() : context.now_ms;
  return common::FormatDurationMs(std::max<int64_t>(0, end - job.started_ms()));
}

// Matches the latest attempt's results to the spec's steps: by name, which the coordinator
// copies from the spec, else by position.
const StepResult* FindResult(const farm::v1::Attempt& attempt, const farm::v1::StepSpec& spec,
                             int index) {
  for (const StepResult& result : attempt.steps()) {
    if (result.name() == spec.name()) return &result;
  }
  if (index < attempt.steps_size() && attempt.steps(index).name().empty()) {
    return &attempt.steps(index);
  }
  return nullptr;
}

}  // namespace

std::string JobStateName(JobState state) {
  if (!farm::v1::JobState_IsValid(state)) return "UNKNOWN";
  return farm::v1::JobState_Name(state);
}

int ExitCodeForState(JobState state) {
  switch (state) {
    case farm::v1::SUCCEEDED:
      return kExitSucceeded;
    case farm::v1::FAILED:
    case farm::v1::SKIPPED:
      return kExitJobFailed;
    case farm::v1::CANCELLED:
      return kExitJobCancelled;
    default:
      return kExitError;
  }
}

namespace {

// `get`'s tables: every attempt, and the latest attempt's steps.
void AppendAttemptsAndSteps(const Job& job, const TextContext& context, std::string& out) {
  if (job.attempts_size() > 0) {
    Table attempts({"ATTEMPT", "AGENT", "EPOCH", "OUTCOME", "DURATION", "REASON"});
    for (const farm::v1::Attempt& attempt : job.attempts()) {
      std::string duration = "-";
      if (attempt.started_ms() > 0) {
        const int64_t end = attempt.ended_ms() > 0 ? attempt.ended_ms() : context.now_ms;
        duration = common::FormatDurationMs(std::max<int64_t>(0, end - attempt.started_ms()));
      }
      attempts.AddRow({absl::StrCat(attempt.number()), OrDash(attempt.agent()),
                       absl::StrCat(attempt.epoch()), OutcomeName(attempt.outcome()), duration,
                       OneLine(attempt.reason())});
    }
    absl::StrAppend(&out, "\nattempts:\n", attempts.Render("  "));
  }

  const farm::v1::Attempt* latest =
      job.attempts_size() > 0 ? &job.attempts(job.attempts_size() - 1) : nullptr;
  Table steps({"STEP", "STATE", "EXIT", "DURATION", "NOTE"});
  for (int i = 0; i < job.spec().steps_size(); ++i) {
    const farm::v1::StepSpec& spec = job.spec().steps(i);
    const StepResult* result = latest == nullptr ? nullptr : FindResult(*latest, spec, i);
    if (result == nullptr) {
      steps.AddRow({spec.name(), "PENDING", "-", "-", ""});
      continue;
    }
    steps.AddRow({spec.name(), StepStateName(result->state()), FormatExit(*result),
                  FormatStepDuration(*result, context), OneLine(result->message())});
  }
  if (job.spec().steps_size() > 0) {
    absl::StrAppend(&out, "\nsteps",
                    latest == nullptr ? "" : absl::StrCat(" (attempt ", latest->number(), ")"),
                    ":\n", steps.Render("  "));
  }
}

}  // namespace

std::string FormatJobText(const Job& job, const TextContext& context) {
  std::vector<std::pair<std::string, std::string>> fields;
  fields.emplace_back("id", job.id());
  fields.emplace_back("name", OrDash(job.spec().name()));
  std::string state = JobStateName(job.state());
  if (job.cancel_requested() && !IsTerminal(job.state())) state += " (cancel requested)";
  fields.emplace_back("state", state);
  if (!job.reason().empty()) fields.emplace_back("reason", job.reason());
  if (!job.pipeline_id().empty()) {
    fields.emplace_back(
        "pipeline", absl::StrCat(job.pipeline_id(), " (as \"", OneLine(job.pipeline_job()), "\")"));
  }
  if (!job.needs().empty()) fields.emplace_back("needs", absl::StrJoin(job.needs(), ", "));
  fields.emplace_back("priority", absl::StrCat(job.spec().priority()));
  fields.emplace_back("labels", FormatLabels(job.spec().labels()));
  if (job.submitted_ms() > 0)
    fields.emplace_back("submitted", FormatTime(job.submitted_ms(), context));
  if (!job.submitted_by().empty()) fields.emplace_back("submitted by", OneLine(job.submitted_by()));
  if (job.started_ms() > 0) {
    std::string started = FormatTime(job.started_ms(), context);
    if (job.submitted_ms() > 0) {
      absl::StrAppend(
          &started, " (queued ",
          common::FormatDurationMs(std::max<int64_t>(0, job.started_ms() - job.submitted_ms())),
          ")");
    }
    fields.emplace_back("started", started);
  }
  if (!job.artifacts().empty()) {
    int64_t total = 0;
    for (const farm::v1::Artifact& artifact : job.artifacts()) total += artifact.size();
    fields.emplace_back(
        "artifacts",
        absl::StrCat(job.artifacts_size(), job.artifacts_size() == 1 ? " file, " : " files, ",
                     FormatBytes(total), " (farmctl artifacts ", job.id(), ")"));
  } else if (!job.spec().artifacts().empty()) {
    fields.emplace_back(
        "artifacts",
        absl::StrCat(absl::StrJoin(job.spec().artifacts(), ", "),
                     job.spec().artifacts_when() == farm::v1::ARTIFACTS_ALWAYS ? " (always)"
                                                                               : " (on success)"));
  }
  if (job.finished_ms() > 0) {
    fields.emplace_back("finished", absl::StrCat(FormatTime(job.finished_ms(), context), " (ran ",
                                                 FormatRunTime(job, context), ")"));
  }
  std::string out;
  for (const auto& [key, value] : fields) {
    std::string label = absl::StrCat(key, ":");
    label.resize(11, ' ');
    absl::StrAppend(&out, label, common::EscapeControls(value), "\n");
  }
  absl::StrAppend(&out, FormatJobRetryLines(job));
  AppendAttemptsAndSteps(job, context, out);
  return out;
}

std::string FormatJobListText(const farm::v1::ListJobsResponse& response,
                              const TextContext& context) {
  if (response.jobs().empty()) return "no jobs\n";
  const bool pipelines = std::any_of(response.jobs().begin(), response.jobs().end(),
                                     [](const Job& job) { return !job.pipeline_id().empty(); });
  std::vector<std::string> header = {"ID", "STATE", "NAME"};
  if (pipelines) header.push_back("PIPELINE");
  for (const char* column : {"PRIORITY", "AGE", "DURATION"}) header.push_back(column);
  Table table(std::move(header));
  for (const Job& job : response.jobs()) {
    const std::string age =
        job.submitted_ms() > 0 ? FormatAge(context.now_ms - job.submitted_ms()) : "-";
    std::vector<std::string> row = {job.id(), JobStateName(job.state()),
                                    OrDash(OneLine(job.spec().name()))};
    if (pipelines) row.push_back(OrDash(job.pipeline_id()));
    for (std::string cell :
         {absl::StrCat(job.spec().priority()), age, FormatRunTime(job, context)}) {
      row.push_back(std::move(cell));
    }
    table.AddRow(std::move(row));
  }
  return table.Render();
}

int CountDoneJobs(const farm::v1::Pipeline& pipeline) {
  return static_cast<int>(
      std::count_if(pipeline.jobs().begin(), pipeline.jobs().end(),
                    [](const farm::v1::PipelineJob& job) { return IsTerminal(job.state()); }));
}

std::string FormatElapsed(int64_t ms) {
  ms = std::max<int64_t>(0, ms);
  if (ms < 60'000) return absl::StrFormat("%d.%ds", ms / 1000, ms % 1000 / 100);
  const int64_t s = ms / 1000;
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%dh%02dm", s / 3600, s % 3600 / 60);
}

std::string FormatPipelineSummary(const farm::v1::Pipeline& pipeline, int64_t now_ms) {
  const bool ended = IsTerminal(pipeline.state());
  const int64_t end = ended && pipeline.finished_ms() > 0 ? pipeline.finished_ms() : now_ms;
  const std::string elapsed =
      pipeline.submitted_ms() > 0 ? FormatElapsed(end - pipeline.submitted_ms()) : "";
  std::string line = absl::StrCat("pipeline ", pipeline.id(), pipeline.name().empty() ? "" : " ",
                                  OneLine(pipeline.name()), ": ", JobStateName(pipeline.state()),
                                  " ", CountDoneJobs(pipeline), "/", pipeline.jobs_size(), " jobs");
  if (!ended) {
    absl::StrAppend(&line, " done");
    if (!elapsed.empty()) absl::StrAppend(&line, " after ", elapsed);
    return line;
  }
  if (!elapsed.empty()) absl::StrAppend(&line, " in ", elapsed);
  // Which jobs did not succeed, a few names of each kind.
  constexpr int kNamesShown = 5;
  std::vector<std::string> parts;
  for (const JobState state : {farm::v1::FAILED, farm::v1::CANCELLED, farm::v1::SKIPPED}) {
    std::vector<std::string> names;
    int count = 0;
    for (const farm::v1::PipelineJob& job : pipeline.jobs()) {
      if (job.state() != state) continue;
      if (++count <= kNamesShown) names.push_back(job.name());
    }
    if (count == 0) continue;
    std::string part =
        absl::StrCat(absl::AsciiStrToLower(JobStateName(state)), ": ", absl::StrJoin(names, ", "));
    if (count > kNamesShown) absl::StrAppend(&part, " and ", count - kNamesShown, " more");
    parts.push_back(std::move(part));
  }
  if (!parts.empty()) absl::StrAppend(&line, " (", OneLine(absl::StrJoin(parts, "; ")), ")");
  return line;
}

std::string FormatPipelineText(const farm::v1::Pipeline& pipeline, const TextContext& context) {
  std::vector<std::pair<std::string, std::string>> fields;
  fields.emplace_back("id", pipeline.id());
  fields.emplace_back("name", OrDash(OneLine(pipeline.name())));
  std::string state = JobStateName(pipeline.state());
  if (pipeline.cancel_requested() && !IsTerminal(pipeline.state())) {
    state += " (cancel requested)";
  }
  fields.emplace_back("state", state);
  if (pipeline.submitted_ms() > 0) {
    fields.emplace_back("submitted", FormatTime(pipeline.submitted_ms(), context));
    if (!pipeline.submitted_by().empty()) {
      fields.emplace_back("submitted by", OneLine(pipeline.submitted_by()));
    }
  }
  if (pipeline.finished_ms() > 0 && IsTerminal(pipeline.state())) {
    std::string finished = FormatTime(pipeline.finished_ms(), context);
    if (pipeline.submitted_ms() > 0) {
      absl::StrAppend(&finished, " (took ",
                      FormatElapsed(pipeline.finished_ms() - pipeline.submitted_ms()), ")");
    }
    fields.emplace_back("finished", finished);
  }
  fields.emplace_back("jobs",
                      absl::StrCat(CountDoneJobs(pipeline), "/", pipeline.jobs_size(), " done"));
  std::string out;
  for (const auto& [key, value] : fields) {
    std::string label = absl::StrCat(key, ":");
    label.resize(11, ' ');
    absl::StrAppend(&out, label, common::EscapeControls(value), "\n");
  }
  if (pipeline.jobs().empty()) return out;
  Table jobs({"NAME", "ID", "STATE", "ATTEMPTS", "DURATION", "NEEDS"});
  for (const farm::v1::PipelineJob& job : pipeline.jobs()) {
    std::string duration = "-";
    if (job.started_ms() > 0) {
      const int64_t end = job.finished_ms() > 0 ? job.finished_ms() : context.now_ms;
      duration = FormatElapsed(end - job.started_ms());
    }
    jobs.AddRow({OneLine(job.name()), OrDash(job.job_id()), JobStateName(job.state()),
                 absl::StrCat(job.attempts()), duration,
                 OrDash(OneLine(absl::StrJoin(job.needs(), ", ")))});
  }
  absl::StrAppend(&out, "\n", jobs.Render());
  return out;
}

std::string FormatPipelineListText(const farm::v1::ListPipelinesResponse& response,
                                   const TextContext& context) {
  if (response.pipelines().empty()) return "no pipelines\n";
  Table table({"ID", "NAME", "STATE", "JOBS", "SUBMITTED"});
  for (const farm::v1::Pipeline& pipeline : response.pipelines()) {
    const std::string age =
        pipeline.submitted_ms() > 0
            ? absl::StrCat(FormatAge(context.now_ms - pipeline.submitted_ms()), " ago")
            : "-";
    table.AddRow({pipeline.id(), OrDash(OneLine(pipeline.name())), JobStateName(pipeline.state()),
                  absl::StrCat(CountDoneJobs(pipeline), "/", pipeline.jobs_size()), age});
  }
  return table.Render();
}

std::string FormatAgentsText(const farm::v1::ListAgentsResponse& response,
                             const TextContext& context) {
  if (response.agents().empty()) return "no agents\n";
  std::vector<const farm::v1::AgentInfo*> agents;
  for (const auto& agent : response.agents()) agents.push_back(&agent);
  std::sort(agents.begin(), agents.end(),
            [](const auto* a, const auto* b) { return a->name() < b->name(); });
  Table table({"NAME", "STATE", "SLOTS", "LABELS", "JOBS", "SEEN", "ISOLATION"});
  for (const farm::v1::AgentInfo* agent : agents) {
    const std::string seen =
        agent->last_seen_ms() > 0
            ? absl::StrCat(FormatAge(context.now_ms - agent->last_seen_ms()), " ago")
            : "-";
    table.AddRow({agent->name(), OrDash(agent->state()),
                  absl::StrCat(agent->jobs_size(), "/", agent->slots()), FormatAgentLabels(*agent),
                  OrDash(absl::StrJoin(agent->jobs(), ",")), seen,
                  FormatIsolation(agent->isolation())});
  }
  return table.Render();
}

std::string FormatBytes(int64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  static constexpr absl::string_view kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  double value = static_cast<double>(bytes) / 1024;
  size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(kUnits)) {
    value /= 1024;
    ++unit;
  }
  return absl::StrFormat("%.1f %s", value, kUnits[unit]);
}

std::string FormatArtifactsText(const Job& job) {
  if (job.artifacts().empty()) {
    if (job.spec().artifacts().empty()) {
      return absl::StrCat("job ", job.id(), " declares no artifacts\n");
    }
    if (!IsTerminal(job.state())) {
      return absl::StrCat("job ", job.id(), " is ", JobStateName(job.state()),
                          "; its artifacts are recorded when it ends\n");
    }
    return absl::StrCat("job ", job.id(), " has no artifacts (", JobStateName(job.state()),
                        "; globs: ", absl::StrJoin(job.spec().artifacts(), ", "), ")\n");
  }
  Table table({"PATH", "SIZE", "EXEC", "DIGEST"});
  int64_t total = 0;
  for (const farm::v1::Artifact& artifact : job.artifacts()) {
    table.AddRow({artifact.path(), absl::StrCat(artifact.size()), artifact.executable() ? "x" : "-",
                  absl::StrCat(artifact.hash(), "/", artifact.size())});
    total += artifact.size();
  }
  return absl::StrCat(table.Render(), job.artifacts_size(),
                      job.artifacts_size() == 1 ? " file, " : " files, ", FormatBytes(total), "\n");
}

std::string FormatOutcomeLine(const Job& job) {
  std::string line = absl::StrCat("job ", job.id(), " ", JobStateName(job.state()));
  if (!job.reason().empty()) absl::StrAppend(&line, ": ", OneLine(job.reason()));
  return line;
}

std::string DescribeRpcError(const absl::Status& status, absl::string_view coordinator,
                             absl::string_view job_id) {
  const std::string lower = absl::AsciiStrToLower(status.message());
  switch (status.code()) {
    case absl::StatusCode::kUnavailable: {
      // gRPC's connect failures carry the OS error deep in a long message; name the cause.
      static constexpr std::pair<absl::string_view, absl::string_view> kCauses[] = {
          {"connection refused", "connection refused"},
          {"dns resolution failed", "cannot resolve the host name"},
          {"name resolution", "cannot resolve the host name"},
          {"domain name not found", "cannot resolve the host name"},
          {"no route to host", "no route to host"},
          {"network is unreachable", "network is unreachable"},
          {"connection timed out", "connection timed out"},
          {"connection reset", "connection reset"},
          {"broken pipe", "connection lost"},
          {"socket closed", "connection lost"},
          {"goaway", "the coordinator closed the connection"},
          {"keepalive", "no answer to keepalive pings"},
          {"failed to connect", "connection failed"},
      };
      absl::string_view cause;
      for (const auto& [needle, text] : kCauses) {
        if (absl::StrContains(lower, needle)) {
          cause = text;
          break;
        }
      }
      const std::string detail =
          !cause.empty() ? std::string(cause)
                         : (status.message().empty() ? "unavailable" : OneLine(status.message()));
      return absl::StrCat("cannot reach the coordinator at ", coordinator, " (", detail, ")");
    }
    case absl::StatusCode::kDeadlineExceeded:
      return absl::StrCat("the coordinator at ", coordinator, " did not answer in time");
    case absl::StatusCode::kNotFound:
      if (!job_id.empty()) {
        return absl::StrCat(IsPipelineId(job_id) ? "pipeline " : "job ", OneLine(job_id),
                            " not found");
      }
      break;
    case absl::StatusCode::kUnimplemented:
      return absl::StrCat("the coordinator at ", coordinator,
                          " does not support this request (is it an older version?)");
    default:
      break;
  }
  if (status.message().empty()) {
    return absl::StrCat("the coordinator answered ", absl::StatusCodeToString(status.code()));
  }
  return OneLine(status.message());
}

std::string OneLine(absl::string_view text) {
  std::string line = absl::StrReplaceAll(absl::StripAsciiWhitespace(text),
                                         {{"\r\n", "; "}, {"\n", "; "}, {"\r", "; "}});
  constexpr size_t kMaxLine = 300;
  if (line.size() > kMaxLine) {
    line.resize(kMaxLine - 3);
    line += "...";
  }
  return common::EscapeControls(line);
}

std::string FormatAge(int64_t ms) {
  const int64_t s = std::max<int64_t>(0, ms) / 1000;
  if (s < 60) return absl::StrCat(s, "s");
  if (s < 3600) return absl::StrCat(s / 60, "m");
  if (s < 86400) return absl::StrCat(s / 3600, "h");
  return absl::StrCat(s / 86400, "d");
}

}  // namespace farm::cli
