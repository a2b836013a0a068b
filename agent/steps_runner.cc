#include "agent/steps_runner.h"

#include <future>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/duration.h"
#include "common/job_limits.h"
#include "common/logging.h"

namespace farm::agent {
namespace {

// How long a step runs before the coordinator is told it started (see RunStep). Short enough
// that a person never sees a running step as pending for long.
constexpr int64_t kStartedReportDelayMs = 100;

std::string StepName(const farm::v1::JobSpec& spec, int index) {
  const std::string& name = spec.steps(index).name();
  return name.empty() ? absl::StrCat("step-", index + 1) : name;
}

// Whether a step with `when` runs, given whether an earlier step failed or timed out. An
// unknown value (a newer coordinator) is the default, WHEN_ON_SUCCESS.
bool ShouldRun(farm::v1::StepWhen when, bool failed) {
  switch (when) {
    case farm::v1::WHEN_ALWAYS:
      return true;
    case farm::v1::WHEN_ON_FAILURE:
      return failed;
    default:
      return !failed;
  }
}

std::string JobTimedOut(const farm::v1::JobSpec& spec) {
  return absl::StrCat("job timed out after ", common::FormatDurationMs(spec.timeout_ms()));
}

}  // namespace

StepsRunner::StepsRunner(const AttemptContext& context)
    : context_(context), process_(context.supervisor, context.isolation) {}

WorkResult StepsRunner::Run(Attempt& attempt, const WorkSite& site) {
  const farm::v1::JobSpec& spec = attempt.job().spec();
  WorkResult work;
  if (context_.isolation != nullptr) {
    // The steps' user gets the workspace (and the inputs staged in it) before anything runs.
    if (absl::Status handed = context_.isolation->HandOver(site.workspace); !handed.ok()) {
      FARM_LOG(ERROR) << attempt.log_prefix() << " " << handed;
      work.outcome = farm::v1::ATTEMPT_FAILED;
      work.reason = std::string(handed.message());
      return work;
    }
  }
  bool failed = false;  // a step failed or timed out: WHEN_ON_FAILURE steps run from now on
  for (int i = 0; i < spec.steps_size(); ++i) {
    // After a cancel or once the lease is gone nothing runs, not even WHEN_ALWAYS steps: the
    // user (or the agent's drain timeout) asked for the job to stop, and a lost lease is no
    // longer ours to run anything under.
    if (attempt.abandoned()) break;
    if (std::optional<std::string> cancelled = attempt.cancel_reason()) {
      work.outcome = farm::v1::ATTEMPT_CANCELLED;
      work.reason = *std::move(cancelled);
      break;
    }
    const std::string name = StepName(spec, i);
    if (!ShouldRun(spec.steps(i).when(), failed)) {
      // Reported STEP_SKIPPED by the coordinator when the attempt completes.
      FARM_LOG(INFO) << attempt.log_prefix() << " step " << name << ": skipped ("
                     << farm::v1::StepWhen_Name(spec.steps(i).when()) << ", "
                     << (failed ? "a step failed" : "no step failed") << ")";
      continue;
    }
    const Budget budget = BudgetFor(spec, i, site.job_started_ms);
    if (budget.expired) {
      // The job's timeout bounds everything, cleanup steps too: a WHEN_ALWAYS or
      // WHEN_ON_FAILURE step does not run once it has expired (it would have no time to).
      work.outcome = farm::v1::ATTEMPT_FAILED;
      if (!failed) work.reason = JobTimedOut(spec);
      break;
    }
    const std::optional<StepVerdict> verdict = RunStep(attempt, site, i, name, budget, &work);
    if (!verdict.has_value()) break;
    if (verdict->state == farm::v1::STEP_CANCELLED) {
      work.outcome = farm::v1::ATTEMPT_CANCELLED;
      work.reason = verdict->reason;
      break;
    }
    if (verdict->state != farm::v1::STEP_SUCCEEDED) {
      // The first failure is the attempt's: later steps (cleanup) cannot make it succeed, and
      // their own failures are on their step results.
      work.outcome = farm::v1::ATTEMPT_FAILED;
      if (!failed) work.reason = verdict->reason;
      failed = true;
      // Nothing runs after the job's timeout (see above).
      if (verdict->state == farm::v1::STEP_TIMED_OUT && budget.job_bound) break;
    }
  }
  return work;
}

StepsRunner::Budget StepsRunner::BudgetFor(const farm::v1::JobSpec& spec, int index,
                                           int64_t job_started_ms) const {
  Budget budget;
  budget.timeout_ms = spec.steps(index).timeout_ms();
  if (spec.timeout_ms() <= 0) return budget;
  const int64_t left = job_started_ms + spec.timeout_ms() - context_.clock->MonotonicMs();
  if (left <= 0) {
    budget.expired = true;
  } else if (budget.timeout_ms == 0 || left < budget.timeout_ms) {
    budget.timeout_ms = left;
    budget.job_bound = true;
  }
  return budget;
}

std::optional<StepsRunner::StepVerdict> StepsRunner::RunStep(Attempt& attempt, const WorkSite& site,
                                                             int index, const std::string& name,
                                                             const Budget& budget,
                                                             WorkResult* work) {
  const farm::v1::JobSpec& spec = attempt.job().spec();
  farm::v1::StepResult result;
  result.set_name(name);
  result.set_started_ms(context_.clock->NowMs());
  farm::v1::StepStartedRequest started;
  *started.mutable_lease() = attempt.lease();
  started.set_step_index(index);
  started.set_started_ms(result.started_ms());
  // The step starts without waiting for the coordinator to record that it did (a durable
  // write): the report is sent once the program has run for kStartedReportDelayMs (so that it
  // does not compete with starting it), alongside the step; a refusal abandons the attempt,
  // which kills the step. A step that ends before then is not reported started at all: its
  // result carries started_ms, and one call and one durable write per short job are saved.
  // The report is joined before the step's result is reported, so reports stay in order.
  absl::Notification step_ended;
  auto report_started = [&] {
    if (step_ended.WaitForNotificationWithTimeout(absl::Milliseconds(kStartedReportDelayMs))) {
      return absl::OkStatus();
    }
    return attempt.Report("StepStarted", [&](CoordinatorClient& client, CallCanceller* canceller) {
      return client.StepStarted(started, canceller);
    });
  };
  std::future<absl::Status> started_report;
  StepOutput output(site.logs, static_cast<uint32_t>(index), site.secrets);
  const StepOutcome step = process_.Run(
      MakeCommand(attempt, index, name, site, budget.timeout_ms),
      [&](int64_t offset, absl::string_view data) { output.Write(offset, data); },
      [&] { started_report = std::async(std::launch::async, report_started); });
  const int64_t log_bytes = output.Finish(step.output_bytes);
  step_ended.Notify();
  if (started_report.valid() && !started_report.get().ok()) return std::nullopt;
  StepVerdict verdict = Judge(attempt, name, step, budget);
  FARM_LOG(INFO) << attempt.log_prefix() << " step " << name << ": "
                 << (verdict.message.empty() ? "succeeded" : verdict.message) << " in "
                 << common::FormatDurationMs(step.duration_ms) << ", " << step.output_bytes
                 << " output bytes";
  if (attempt.abandoned()) return std::nullopt;

  // The step's report must not overtake its output.
  if (absl::Status flushed = site.logs->Flush(index); !flushed.ok()) {
    if (flushed.code() == absl::StatusCode::kFailedPrecondition) {
      attempt.Abandon(absl::StrCat("log upload refused, the lease is stale: ", flushed.message()));
    }
    return std::nullopt;
  }

  result.set_state(verdict.state);
  result.set_exit_code(step.exit_code);
  result.set_signal(step.signal);
  result.set_duration_ms(step.duration_ms);
  result.set_log_bytes(log_bytes);
  result.set_message(verdict.message);
  if (index + 1 == spec.steps_size() && spec.artifacts_size() == 0 &&
      context_.complete_with_last_step) {
    // Nothing happens between the last step and the completion: its result goes with
    // CompleteJob, a round trip (and a durable write) fewer.
    farm::v1::StepReport& last = work->last_step.emplace();
    last.set_step_index(index);
    *last.mutable_result() = std::move(result);
    return verdict;
  }
  farm::v1::StepFinishedRequest finished;
  *finished.mutable_lease() = attempt.lease();
  finished.set_step_index(index);
  *finished.mutable_result() = std::move(result);
  const absl::Status reported =
      attempt.Report("StepFinished", [&](CoordinatorClient& client, CallCanceller* canceller) {
        return client.StepFinished(finished, canceller);
      });
  if (!reported.ok()) return std::nullopt;
  return verdict;
}

StepCommand StepsRunner::MakeCommand(const Attempt& attempt, int index,
                                     const std::string& step_name, const WorkSite& site,
                                     int64_t timeout_ms) const {
  const std::string& workspace = site.workspace;
  const farm::v1::JobSpec& spec = attempt.job().spec();
  const farm::v1::StepSpec& step = spec.steps(index);
  StepCommand command;
  if (spec.shell_size() > 0) {
    command.argv.assign(spec.shell().begin(), spec.shell().end());
  } else {
    command.argv = {"/bin/sh", "-e", "-c"};
  }
  command.argv.push_back(step.run());
  if (context_.isolation != nullptr) {
    command.argv = context_.isolation->Wrap(std::move(command.argv), workspace, !spec.no_network());
  }

  // Later layers win: agent environment < job env < step env < FARM_* variables.
  std::map<std::string, std::string> env;
  for (const std::string& kv : context_.base_env) {
    const size_t eq = kv.find('=');
    if (eq != std::string::npos && eq > 0) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  if (context_.isolation != nullptr && context_.isolation->user().change) {
    const StepUser& user = context_.isolation->user();
    env["USER"] = env["LOGNAME"] = user.name;
    env["HOME"] = user.home.empty() ? "/" : user.home;
  }
  for (const auto& [key, value] : spec.env()) env[key] = value;
  for (const auto& [key, value] : step.env()) env[key] = value;
  if (site.secrets != nullptr) site.secrets->AddToEnv(env);
  env["FARM_JOB_ID"] = attempt.lease().job_id();
  env["FARM_ATTEMPT"] = absl::StrCat(attempt.lease().attempt());
  env["FARM_WORKSPACE"] = workspace;
  env["FARM_STEP"] = step_name;
  for (const auto& [key, value] : env) command.env.push_back(absl::StrCat(key, "=", value));

  command.cwd = workspace;
  command.timeout_ms = timeout_ms;
  command.kill_grace_ms =
      spec.kill_grace_ms() > 0 ? spec.kill_grace_ms() : common::kDefaultKillGraceMs;
  return command;
}

StepsRunner::StepVerdict StepsRunner::Judge(const Attempt& attempt, const std::string& name,
                                            const StepOutcome& outcome,
                                            const Budget& budget) const {
  StepVerdict v;
  switch (outcome.kind) {
    case StepOutcome::Kind::kExited:
      if (outcome.exit_code == 0) {
        v.state = farm::v1::STEP_SUCCEEDED;
      } else {
        v.state = farm::v1::STEP_FAILED;
        v.message = absl::StrCat("exited with code ", outcome.exit_code);
      }
      break;
    case StepOutcome::Kind::kSignaled:
      v.state = farm::v1::STEP_FAILED;
      v.message = absl::StrCat("killed by signal ", outcome.signal);
      break;
    case StepOutcome::Kind::kTimedOut:
      v.state = farm::v1::STEP_TIMED_OUT;
      if (budget.job_bound) {
        v.message = JobTimedOut(attempt.job().spec());
        v.reason = v.message;
      } else {
        v.message = absl::StrCat("timed out after ", common::FormatDurationMs(budget.timeout_ms));
      }
      break;
    case StepOutcome::Kind::kCancelled: {
      v.state = farm::v1::STEP_CANCELLED;
      v.message = attempt.cancel_reason().value_or("");
      if (v.message.empty()) v.message = "cancelled";
      v.reason = v.message;
      break;
    }
    case StepOutcome::Kind::kFailedToStart:
      v.state = farm::v1::STEP_FAILED;
      v.message = absl::StrCat("failed to start: ", outcome.message);
      break;
  }
  if (v.state != farm::v1::STEP_SUCCEEDED && v.reason.empty()) {
    v.reason = absl::StrCat("step ", name, " ", v.message);
  }
  return v;
}

}  // namespace farm::agent
