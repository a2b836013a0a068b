#include "coordinator/cli/events_commands.h"

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "coordinator/cli/command_table.h"
#include "coordinator/cli/format.h"
#include "coordinator/cli/session.h"

namespace farm::cli {
namespace {

using farm::v1::Event;
using farm::v1::EventKind;

// The fields an event kind shows, besides its time, kind and job.
enum Field : unsigned {
  kAgent = 1 << 0,
  kAttempt = 1 << 1,
  kEpoch = 1 << 2,
  kStep = 1 << 3,
  kExitCode = 1 << 4,
  kOutcome = 1 << 5,
  kState = 1 << 6,
  kReason = 1 << 7,
  kName = 1 << 8,
};

unsigned FieldsOf(EventKind kind) {
  switch (kind) {
    case farm::v1::JOB_SUBMITTED:
      return kName | kState;
    case farm::v1::JOB_QUEUED:
    case farm::v1::JOB_WAITING:
    case farm::v1::JOB_DROPPED:
      return kReason;
    case farm::v1::JOB_LEASED:
      return kAgent | kAttempt | kEpoch;
    case farm::v1::STEP_STARTED:
      return kAttempt | kStep;
    case farm::v1::STEP_FINISHED:
      return kAttempt | kStep | kExitCode;
    case farm::v1::ATTEMPT_ENDED:
      return kAgent | kAttempt | kOutcome | kReason;
    case farm::v1::JOB_ENDED:
    case farm::v1::JOB_CANCEL_REQUESTED:
      return kState | kReason;
    case farm::v1::AGENT_REGISTERED:
    case farm::v1::AGENT_LOST:
    case farm::v1::AGENT_DRAINING:
    case farm::v1::AGENT_RESUMED:
    case farm::v1::AGENT_LABELED:
    case farm::v1::AGENT_REMOVED:
      return kAgent | kReason;
    default:  // a kind this build does not know: whatever is set
      return kAgent | kAttempt | kEpoch | kStep | kExitCode | kOutcome | kState | kReason;
  }
}

// `text` as a value: bare when it has no spaces or quotes, else quoted.
std::string Quoted(absl::string_view text) {
  if (!text.empty() && text.find_first_of(" \"\t\n") == absl::string_view::npos) {
    return std::string(text);
  }
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') quoted += '\\';
    quoted += c == '\n' ? ' ' : c;
  }
  return quoted + "\"";
}

std::string KindName(EventKind kind) {
  const std::string& name = farm::v1::EventKind_Name(kind);
  return name.empty() ? absl::StrCat("KIND_", static_cast<int>(kind)) : name;
}

// " step=build(1) exit=0 SUCCEEDED" parts of a step event.
void AppendStep(const Event& event, unsigned fields, std::string& line) {
  absl::StrAppend(&line, " step=", Quoted(event.step()), "#", event.step_index());
  if ((fields & kExitCode) == 0) return;
  const std::string& state = farm::v1::StepState_Name(event.step_state());
  absl::StrAppend(&line, " ", absl::StripPrefix(state, "STEP_"), " exit=", event.exit_code());
}

}  // namespace

std::string FormatEventLine(const Event& event, absl::TimeZone time_zone) {
  std::string line = absl::StrCat(
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3S%Ez", absl::FromUnixMillis(event.time_ms()), time_zone),
      " ", KindName(event.kind()));
  if (!event.job_id().empty()) absl::StrAppend(&line, " ", event.job_id());
  if (!event.pipeline_id().empty()) {
    absl::StrAppend(&line, " (", event.pipeline_id(), "/", event.pipeline_job(), ")");
  }
  const unsigned fields = FieldsOf(event.kind());
  if ((fields & kName) && !event.job_name().empty()) {
    absl::StrAppend(&line, " name=", Quoted(event.job_name()));
  }
  if ((fields & kAgent) && !event.agent().empty()) {
    absl::StrAppend(&line, " agent=", Quoted(event.agent()));
  }
  if ((fields & kAttempt) && event.attempt() > 0)
    absl::StrAppend(&line, " attempt=", event.attempt());
  if ((fields & kEpoch) && event.epoch() > 0) absl::StrAppend(&line, " epoch=", event.epoch());
  if (fields & kStep) AppendStep(event, fields, line);
  if ((fields & kOutcome) && event.outcome() != farm::v1::ATTEMPT_OUTCOME_UNSPECIFIED) {
    const std::string& outcome = farm::v1::AttemptOutcome_Name(event.outcome());
    absl::StrAppend(&line, " outcome=", absl::StripPrefix(outcome, "ATTEMPT_"));
  }
  if ((fields & kState) && event.state() != farm::v1::JOB_STATE_UNSPECIFIED) {
    absl::StrAppend(&line, " state=", JobStateName(event.state()));
  }
  if ((fields & kReason) && !event.reason().empty()) {
    absl::StrAppend(&line, " reason=", Quoted(event.reason()));
  }
  return line + "\n";
}

namespace {

// Pages through ListEvents for one `events` command and writes what it reads.
class EventsCommand {
 public:
  explicit EventsCommand(Session& session) : session_(session), options_(session.options()) {}

  int Run() {
    farm::v1::ListEventsRequest request = FirstRequest();
    common::RetryLoop loop = session_.NewFollowLoop();
    for (bool first = true;; first = false) {
      absl::StatusOr<farm::v1::ListEventsResponse> page = Fetch(request);
      if (!page.ok()) {
        // The first call's error is the answer (like `wait JOB`'s first Get); a follow rides
        // out the outages after it.
        if (first || !options_.follow || !session_.client().policy().IsRetryable(page.status())) {
          return session_.Fail(page.status());
        }
        if (!loop.in_outage()) session_.SayReconnecting(page.status());
        if (!loop.Failed(page.status())) return session_.Fail(page.status());
        continue;
      }
      loop.Progress();
      for (const Event& event : page->events()) {
        if (!Write(event)) return session_.Fail(absl::DataLossError("cannot write the output"));
        if (Done()) return Finish();
      }
      if (page->next_page_token().empty()) return Finish();
      // Not following, an empty page is the end even if the coordinator offers to go on.
      if (!options_.follow && page->events().empty()) return Finish();
      request.set_page_token(page->next_page_token());
    }
  }

 private:
  farm::v1::ListEventsRequest FirstRequest() const {
    const int64_t now_ms = session_.io().clock.NowMs();
    farm::v1::ListEventsRequest request;
    request.set_job_id(options_.job_id);
    if (options_.since.has_value()) request.set_since_ms(options_.since->Resolve(now_ms));
    if (options_.until.has_value()) {
      request.set_until_ms(options_.until->Resolve(now_ms));
    } else if (!options_.follow) {
      request.set_until_ms(now_ms + 1);  // the history up to now, not what comes after
    }
    if (options_.limit > 0) request.set_limit(std::min(options_.limit, kMaxPage));
    if (options_.follow) request.set_wait_ms(options_.events_wait_ms);
    return request;
  }

  absl::StatusOr<farm::v1::ListEventsResponse> Fetch(const farm::v1::ListEventsRequest& request) {
    // A long poll is held up to wait_ms before it answers.
    const absl::Time deadline =
        absl::Now() + absl::Milliseconds(options_.rpc_timeout_ms + request.wait_ms());
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(deadline));
    farm::v1::ListEventsResponse response;
    FARM_RETURN_IF_ERROR(
        common::FromGrpcStatus(session_.client().jobs().ListEvents(&context, request, &response)));
    return response;
  }

  bool Write(const Event& event) {
    ++written_;
    if (event.kind() == farm::v1::JOB_ENDED && !options_.job_id.empty()) ended_ = event.state();
    std::ostream& out = session_.io().out;
    if (!session_.json()) {
      out << FormatEventLine(event, session_.io().time_zone);
    } else if (options_.follow) {
      out << ToJson(event, /*pretty=*/false);  // JSON Lines
    } else {
      *all_.add_events() = event;
      return true;
    }
    out.flush();
    return out.good();
  }

  // Enough: --limit events, or (following one job) the job has ended.
  bool Done() const {
    if (options_.limit > 0 && written_ >= options_.limit) return true;
    return options_.follow && ended_.has_value();
  }

  int Finish() {
    if (session_.json() && !options_.follow) session_.Print(ToJson(all_));
    if (options_.follow && ended_.has_value()) return ExitCodeForState(*ended_);
    return kExitSucceeded;
  }

  static constexpr int kMaxPage = 1000;

  Session& session_;
  const CliOptions& options_;
  int written_ = 0;
  std::optional<farm::v1::JobState> ended_;  // the JOB_ENDED state of --job's job
  farm::v1::ListEventsResponse all_;         // --output=json without --follow
};

int Events(Session& session) { return EventsCommand(session).Run(); }

}  // namespace

void RegisterEventCommands(std::vector<CommandDef>& table) {
  table.push_back(
      {"events",
       Command::kEvents,
       {},
       false,
       {"job", "since", "until", "follow", "limit"},
       "[--job=ID] [--since=T] [--until=T] [--follow] [--limit=N]",
       "the event history (submits, leases, steps, attempts, agents), oldest first",
       "One line per event: the time, the kind, the job (pipeline/name), then what matters\n"
       "for the kind: agent, attempt, epoch, step, exit code, outcome, state, reason.\n"
       "T is a duration back from now (1h, 30m) or a time (2026-11-29T10:00:00Z); by default\n"
       "the whole history kept, up to now. --follow goes on with new events as they happen\n"
       "until interrupted; with --job it ends with the job and exits with its outcome.\n"
       "--output=json: one ListEventsResponse; with --follow one Event per line.\n",
       Events});
}

}  // namespace farm::cli
