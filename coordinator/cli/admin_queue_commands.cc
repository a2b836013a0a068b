#include "coordinator/cli/admin_queue_commands.h"

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/farm_client.h"
#include "common/grpc_status.h"
#include "common/text.h"
#include "coordinator/cli/admin_queue_options.h"
#include "coordinator/cli/command_table.h"
#include "coordinator/cli/format.h"

namespace farm::cli {
namespace {

std::string Selector(const google::protobuf::Map<std::string, std::string>& labels) {
  std::map<std::string, std::string> sorted(labels.begin(), labels.end());
  std::vector<std::string> parts;
  for (const auto& [k, v] : sorted) parts.push_back(absl::StrCat(k, "=", v));
  return parts.empty() ? "(none)" : OneLine(absl::StrJoin(parts, ","));
}

int AdminPause(Session& session) {
  farm::v1::PauseQueueRequest req;
  req.mutable_labels()->insert(session.options().labels.begin(), session.options().labels.end());
  absl::StatusOr<farm::v1::PauseQueueResponse> resp =
      session.CallOnce(&farm::v1::AdminService::Stub::PauseQueue, session.client().admin(), req);
  if (!resp.ok()) return session.Fail(resp.status());
  if (session.json()) return session.Print(ToJson(*resp));
  return session.Print(absl::StrCat(
      resp->existing() ? "already paused: " : "paused: ", Selector(resp->pause().labels()),
      " (matching jobs queue but do not run)\n"));
}

int AdminQueues(Session& session) {
  absl::StatusOr<farm::v1::ListQueuesResponse> resp =
      session.CallOnce(&farm::v1::AdminService::Stub::ListQueues, session.client().admin(),
                       farm::v1::ListQueuesRequest());
  if (!resp.ok()) return session.Fail(resp.status());
  if (session.json()) return session.Print(ToJson(*resp));
  if (resp->queues().empty() && resp->pauses().empty()) return session.Print("no queued jobs\n");
  std::string text = absl::StrFormat("%-32s  %7s  %-8s  %-6s  %s\n", "LABELS", "DEPTH", "OLDEST",
                                     "PAUSED", "AGENTS");
  for (const farm::v1::QueueInfo& q : resp->queues()) {
    const std::string oldest =
        q.oldest_submitted_ms() > 0 ? FormatAge(resp->now_ms() - q.oldest_submitted_ms()) : "-";
    absl::StrAppend(&text,
                    absl::StrFormat("%-32s  %7d  %-8s  %-6s  %d\n", Selector(q.labels()), q.depth(),
                                    oldest, q.paused() ? "yes" : "no", q.agents()));
  }
  for (const farm::v1::QueuePause& p : resp->pauses()) {
    absl::StrAppend(&text, "paused: ", Selector(p.labels()), " (for ",
                    FormatAge(resp->now_ms() - p.paused_ms()), ")\n");
  }
  return session.Print(text);
}

int AdminReprioritize(Session& session) {
  farm::v1::ReprioritizeJobRequest req;
  req.set_job_id(session.options().job_id);
  req.set_priority(session.options().priority);
  absl::StatusOr<farm::v1::Job> job = session.CallOnce(
      &farm::v1::AdminService::Stub::ReprioritizeJob, session.client().admin(), req);
  if (!job.ok()) return session.Fail(job.status(), req.job_id());
  if (session.json()) return session.Print(ToJson(*job));
  return session.Print(
      absl::StrCat("job ", job->id(), " now has priority ", job->spec().priority(), "\n"));
}

int AdminRetry(Session& session) {
  farm::v1::RetryRequest req;
  req.set_id(session.options().job_id);
  req.set_request_id(common::FarmClient::NewRequestId());
  // Retried on UNAVAILABLE with the one request id: a retried call retries once.
  absl::StatusOr<farm::v1::RetryResponse> resp =
      session.client().Call(&farm::v1::AdminService::Stub::Retry, session.client().admin(), req);
  if (!resp.ok()) return session.Fail(resp.status(), req.id());
  if (session.json()) return session.Print(ToJson(*resp));
  if (resp->has_pipeline() && !resp->pipeline().id().empty()) {
    return session.Print(absl::StrCat("pipeline ", resp->pipeline().id(), " runs again: jobs ",
                                      absl::StrJoin(resp->job_ids(), ", "), "\n"));
  }
  return session.Print(
      absl::StrCat("job ", req.id(), " runs again as job ", resp->job().id(), "\n"));
}

// A bulk cancel answers once every batch is written: a deep backlog takes longer than one
// call's usual deadline, so it gets kBulkCancelDeadline.
constexpr absl::Duration kBulkCancelDeadline = absl::Minutes(10);

int AdminCancel(Session& session) {
  farm::v1::BulkCancelRequest req;
  req.mutable_labels()->insert(session.options().labels.begin(), session.options().labels.end());
  req.set_state(session.options().state);
  if (absl::Status s = common::ValidateRequestText(req); !s.ok()) return session.Fail(s);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + kBulkCancelDeadline));
  farm::v1::BulkCancelResponse resp;
  const absl::Status s =
      common::FromGrpcStatus(session.client().admin().BulkCancel(&context, req, &resp));
  if (!s.ok()) return session.Fail(s);
  if (session.json()) return session.Print(ToJson(resp));
  return session.Print(absl::StrCat("cancelled ", resp.cancelled(), " queued jobs matching ",
                                    Selector(req.labels()), "\n"));
}

}  // namespace

int AdminResumeQueue(Session& session) {
  farm::v1::ResumeQueueRequest req;
  req.mutable_labels()->insert(session.options().labels.begin(), session.options().labels.end());
  absl::StatusOr<farm::v1::ResumeQueueResponse> resp =
      session.CallOnce(&farm::v1::AdminService::Stub::ResumeQueue, session.client().admin(), req);
  if (!resp.ok()) return session.Fail(resp.status());
  if (session.json()) return session.Print(ToJson(*resp));
  return session.Print(absl::StrCat("resumed: ", Selector(resp->resumed().labels()), "\n"));
}

std::string FormatJobRetryLines(const farm::v1::Job& job) {
  std::string out;
  if (!job.retry_of().empty()) absl::StrAppend(&out, "retry of:  job ", job.retry_of(), "\n");
  if (!job.retried_by().empty()) {
    absl::StrAppend(&out, "retried:   as job ", job.retried_by(), "\n");
  }
  return out;
}

std::string FormatPipelineRetryLines(const farm::v1::Pipeline& pipeline,
                                     const TextContext& context) {
  if (pipeline.retries() == 0) return "";
  std::vector<std::string> replaced;
  for (const farm::v1::PipelineJob& job : pipeline.jobs()) {
    if (!job.retry_of().empty()) {
      replaced.push_back(
          absl::StrCat(OneLine(job.name()), " ", job.retry_of(), " -> ", job.job_id()));
    }
  }
  return absl::StrCat("\nretried ", pipeline.retries(),
                      pipeline.retries() == 1 ? " time" : " times", ", last ",
                      FormatAge(context.now_ms - pipeline.retried_ms()),
                      " ago; jobs run again: ", absl::StrJoin(replaced, ", "), "\n");
}

void RegisterAdminQueueCommands(std::vector<CommandDef>& table) {
  table.push_back({"admin pause",
                   Command::kAdminPause,
                   {"LABELS"},
                   false,
                   {},
                   "LABELS",
                   "stop dispatching queued jobs whose labels match (role admin)",
                   "LABELS is k=v[,k=v...]: a job matches when its required labels include every "
                   "one of them.\nSubmits are still accepted and queue; the pause survives a "
                   "coordinator restart.\n",
                   AdminPause});
  table.push_back({"admin queues",
                   Command::kAdminQueues,
                   {},
                   false,
                   {},
                   "",
                   "each label set with queued jobs: depth, oldest wait, paused, agents that "
                   "match (role admin)",
                   "AGENTS counts the agents online and not draining whose labels satisfy the "
                   "set.\n",
                   AdminQueues});
  table.push_back({"admin reprioritize",
                   Command::kAdminReprioritize,
                   {"JOB", "N"},
                   false,
                   {},
                   "JOB N",
                   "give a queued job priority N, -1000..1000 (role admin)",
                   "",
                   AdminReprioritize});
  table.push_back({"admin retry",
                   Command::kAdminRetry,
                   {"JOB|PIPELINE"},
                   false,
                   {},
                   "JOB|PIPELINE",
                   "run a finished job again as a new linked job; or a finished pipeline's "
                   "failed, cancelled and skipped jobs and all that need them (roles "
                   "submitter, admin)",
                   "A pipeline is reopened in place: `farmctl get pN` shows the new jobs' ids "
                   "and which jobs they replaced;\nits succeeded jobs keep their results and "
                   "artifacts. A job of a pipeline is retried with its pipeline.\n",
                   AdminRetry});
  table.push_back({"admin cancel",
                   Command::kAdminCancel,
                   {},
                   false,
                   {"labels", "state"},
                   "--labels=k=v,... --state=queued",
                   "cancel every queued job whose labels match, in writes of 1000 (role admin)",
                   "Only --state=queued is supported in this version.\n",
                   AdminCancel});
}

}  // namespace farm::cli
