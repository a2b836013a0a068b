// How farmctl shows things: JSON documents, text tables, job summaries, and one-line error
// messages. Pure functions of their arguments (no I/O, no clock); thread-safe. The text formats
// show control characters in names, labels and reasons escaped (common::EscapeControls), so
// that what agents and users named things cannot drive the terminal.
#pragma once

#include <google/protobuf/message.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "farm/v1/farm.pb.h"

namespace farm::cli {

// What the text formats need besides the message: "now" (for ages and running durations) and
// the zone times are shown in.
struct TextContext {
  int64_t now_ms = 0;
  absl::TimeZone time_zone = absl::UTCTimeZone();
};

// Protobuf JSON with proto field names and every field present (so that `state` and zero
// values always appear); enums print by name ("SUCCEEDED"). Ends with a newline. `pretty`
// indents; otherwise the document is one line (for JSON Lines).
std::string ToJson(const google::protobuf::Message& message, bool pretty = true);

// "QUEUED", "RUNNING", ...; "UNKNOWN" for values this build does not know. (Whether a state is
// final is common::IsTerminal, common/job_state.h.)
std::string JobStateName(farm::v1::JobState state);

// The exit code of a job's or a pipeline's outcome: 0 SUCCEEDED, 1 FAILED or SKIPPED (a job it
// needed did not succeed), 2 CANCELLED; kExitError otherwise.
int ExitCodeForState(farm::v1::JobState state);

// `get`: the job's fields, its attempts, and a table of the latest attempt's steps.
std::string FormatJobText(const farm::v1::Job& job, const TextContext& context);
// `list`: a table of ID, STATE, NAME, PRIORITY, AGE and DURATION ("no jobs" when empty), with a
// PIPELINE column after NAME when any of the jobs belongs to one.
std::string FormatJobListText(const farm::v1::ListJobsResponse& response,
                              const TextContext& context);
// `get pN`: the pipeline's id, name, state, times and jobs done, then a table of its jobs: NAME,
// ID, STATE, ATTEMPTS, DURATION and NEEDS.
std::string FormatPipelineText(const farm::v1::Pipeline& pipeline, const TextContext& context);
// `list --pipelines`: a table of ID, NAME, STATE, JOBS (done/total) and SUBMITTED (an age), or
// "no pipelines".
std::string FormatPipelineListText(const farm::v1::ListPipelinesResponse& response,
                                   const TextContext& context);
// How many of a pipeline's jobs have ended (common::IsTerminal).
int CountDoneJobs(const farm::v1::Pipeline& pipeline);
// One line (no newline) on how a pipeline stands, with its state, done/total and its time so
// far (from submit to its end, or to now): "pipeline p3 release: SUCCEEDED 7/7 jobs in 12.3s";
// when jobs did not succeed, which ones: "... FAILED 4/4 jobs in 3.1s (failed: test; skipped:
// deploy, notify)"; while it runs "pipeline p3 release: RUNNING 3/7 jobs done after 4.2s".
std::string FormatPipelineSummary(const farm::v1::Pipeline& pipeline, int64_t now_ms);
// A compact duration for live views and tables: "0.4s", "12.3s", "4m05s", "1h02m".
std::string FormatElapsed(int64_t ms);
// How an agent isolates its steps, for `agents`: "cgroup-v2 user=nobody bwrap" (the kill
// mechanism, the step user, the sandbox when there is one); "-" for an agent that did not say.
std::string FormatIsolation(const farm::v1::StepIsolation& isolation);
// An agent's labels for `agents`: what jobs match, sorted, then what operators changed, when
// they did: "gpu=yes,os=linux (operator: gpu=yes,-pool)"; "-" for none.
std::string FormatAgentLabels(const farm::v1::AgentInfo& agent);
// `agents`: a table of NAME, STATE, SLOTS (busy/total), LABELS (FormatAgentLabels), JOBS, SEEN
// and ISOLATION (FormatIsolation; "no agents" when empty).
std::string FormatAgentsText(const farm::v1::ListAgentsResponse& response,
                             const TextContext& context);
// `artifacts`: a table of PATH, SIZE (bytes), EXEC ("x" or "-") and DIGEST (HASH/SIZE, as `cas
// get` takes it) with a total line; a sentence when the job has none (saying why when it has
// not ended or declared no globs).
std::string FormatArtifactsText(const farm::v1::Job& job);
// `artifacts --output=json`: {"job_id", "state", "artifacts": [farm.v1.Artifact JSON, ...]}.
std::string FormatArtifactsJson(const farm::v1::Job& job);
// A JSON document from already-encoded members: {"key": value_json, ...} in the given order,
// keys escaped. For the CAS commands, whose results are not farm.v1 messages.
std::string JsonObject(const std::vector<std::pair<std::string, std::string>>& members);
// `text` as a JSON string literal (quoted and escaped).
std::string JsonString(absl::string_view text);
// The protobuf JSON of `message` on one line, without the trailing newline.
std::string JsonValue(const google::protobuf::Message& message);
// "512 B", "4.0 KiB", "1.5 MiB", "2.0 GiB".
std::string FormatBytes(int64_t bytes);

// "job 17 SUCCEEDED", or "job 17 FAILED: step build exited with 2".
std::string FormatOutcomeLine(const farm::v1::Job& job);

// One line (no newline) telling a user what went wrong with a call to the coordinator at
// `coordinator`, without gRPC's debug text: "cannot reach the coordinator at HOST:PORT
// (connection refused)", "job 42 not found" or "pipeline p3 not found" (NOT_FOUND when `job_id`
// is set; IsPipelineId tells which), or the coordinator's own message.
std::string DescribeRpcError(const absl::Status& status, absl::string_view coordinator,
                             absl::string_view job_id = "");

// `text` with line breaks folded into "; ", cut to a sane length and its other control
// characters escaped (common::EscapeControls), for one-line messages.
std::string OneLine(absl::string_view text);

// Compact ages for tables: "45s", "12m", "3h", "2d".
std::string FormatAge(int64_t ms);

// What FormatJobText shows of an operator's retry ("retry of:", "retried:" lines; empty when
// none). In admin_queue_commands.cc.
std::string FormatJobRetryLines(const farm::v1::Job& job);

}  // namespace farm::cli
