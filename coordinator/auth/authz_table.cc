#include "coordinator/auth/authz_table.h"

#include "absl/container/flat_hash_map.h"

namespace farm::coordinator {
namespace {

// Who may do what, in groups (roles in the order of the Role enum: viewer, submitter, agent,
// admin).
struct Access {
  bool viewer, submitter, agent, admin;
};
constexpr Access kRead = {true, true, true, true};         // jobs, logs, artifacts, agents
constexpr Access kUserRead = {true, true, false, true};    // what only people read
constexpr Access kSubmit = {false, true, false, true};     // starts or stops work
constexpr Access kAgentOnly = {false, false, true, true};  // the agent protocol
constexpr Access kCasWrite = {false, true, true, true};    // uploads (agents, builds, Bazel)
constexpr Access kAdminOnly = {false, false, false, true};

AuthzEntry Entry(absl::string_view method, Access access, bool is_public = false) {
  AuthzEntry e;
  e.method = method;
  e.is_public = is_public;
  e.allowed[static_cast<int>(Role::kViewer)] = access.viewer;
  e.allowed[static_cast<int>(Role::kSubmitter)] = access.submitter;
  e.allowed[static_cast<int>(Role::kAgent)] = access.agent;
  e.allowed[static_cast<int>(Role::kAdmin)] = access.admin;
  return e;
}

std::vector<AuthzEntry> BuildTable() {
  return {
      // farm.v1: users.
      Entry("/farm.v1.JobService/Submit", kSubmit), Entry("/farm.v1.JobService/Get", kUserRead),
      Entry("/farm.v1.JobService/List", kUserRead), Entry("/farm.v1.JobService/Cancel", kSubmit),
      Entry("/farm.v1.JobService/WatchLogs", kUserRead),
      Entry("/farm.v1.JobService/SubmitPipeline", kSubmit),
      Entry("/farm.v1.JobService/GetPipeline", kUserRead),
      Entry("/farm.v1.JobService/ListPipelines", kUserRead),
      Entry("/farm.v1.JobService/CancelPipeline", kSubmit),
      Entry("/farm.v1.JobService/ListEvents", kUserRead),
      Entry("/farm.v1.JobService/GetFactoryReport", kUserRead),
      Entry("/farm.v1.JobService/GetProvenance", kUserRead),
      // farm.v1: agents (and, for each call about a lease, only the agent that holds it).
      Entry("/farm.v1.AgentService/Register", kAgentOnly),
      Entry("/farm.v1.AgentService/Lease", kAgentOnly),
      Entry("/farm.v1.AgentService/Heartbeat", kAgentOnly),
      Entry("/farm.v1.AgentService/UploadLogs", kAgentOnly),
      Entry("/farm.v1.AgentService/StepStarted", kAgentOnly),
      Entry("/farm.v1.AgentService/StepFinished", kAgentOnly),
      Entry("/farm.v1.AgentService/CompleteJob", kAgentOnly),
      // farm.v1: operators.
      Entry("/farm.v1.AdminService/ListAgents", kUserRead),
      Entry("/farm.v1.AdminService/CreateToken", kAdminOnly),
      Entry("/farm.v1.AdminService/ListTokens", kAdminOnly),
      Entry("/farm.v1.AdminService/RevokeToken", kAdminOnly),
      // Agent enrollment: admins make enrollment tokens; an agent without a credential yet
      // presents one in the Enroll request (it is the credential there, checked by the handler).
      Entry("/farm.v1.AdminService/CreateEnrollToken", kAdminOnly),
      Entry("/farm.v1.AgentService/Enroll", kRead, /*is_public=*/true),
      // farm.v1: secrets (values go in, never out).
      Entry("/farm.v1.AdminService/SetSecret", kAdminOnly),
      Entry("/farm.v1.AdminService/ListSecrets", kAdminOnly),
      Entry("/farm.v1.AdminService/DeleteSecret", kAdminOnly),
      // farm.v1: operators' agent commands (admin agents).
      Entry("/farm.v1.AdminService/DrainAgent", kAdminOnly),
      Entry("/farm.v1.AdminService/ResumeAgent", kAdminOnly),
      Entry("/farm.v1.AdminService/RemoveAgent", kAdminOnly),
      Entry("/farm.v1.AdminService/LabelAgent", kAdminOnly),
      // farm.v1: admin queues (pause, resume, queues, reprioritize, retry, bulk cancel).
      Entry("/farm.v1.AdminService/PauseQueue", kAdminOnly),
      Entry("/farm.v1.AdminService/ResumeQueue", kAdminOnly),
      Entry("/farm.v1.AdminService/ListQueues", kAdminOnly),
      Entry("/farm.v1.AdminService/ReprioritizeJob", kAdminOnly),
      // Retry: people who may submit may run finished work again (the web page's retry, too).
      Entry("/farm.v1.AdminService/Retry", kSubmit),
      Entry("/farm.v1.AdminService/BulkCancel", kAdminOnly),
      // Retention and GC (issue 13, part 3).
      Entry("/farm.v1.AdminService/CollectGarbage", kAdminOnly),
      // Issue 13: backup and status.
      Entry("/farm.v1.AdminService/Backup", kAdminOnly),
      Entry("/farm.v1.AdminService/GetStatus", kAdminOnly),
      // Issue 14: the factory report's targets, recorded by admins and read by every person.
      Entry("/farm.v1.AdminService/SetFactoryTarget", kAdminOnly),
      Entry("/farm.v1.AdminService/ListFactoryTargets", kUserRead),
      Entry("/farm.v1.AdminService/DeleteFactoryTarget", kAdminOnly),
      // The REAPI store: artifacts are read by people and agents, written by agents and builds.
      Entry("/build.bazel.remote.execution.v2.Capabilities/GetCapabilities", kRead),
      Entry("/build.bazel.remote.execution.v2.ContentAddressableStorage/FindMissingBlobs", kRead),
      Entry("/build.bazel.remote.execution.v2.ContentAddressableStorage/BatchReadBlobs", kRead),
      Entry("/build.bazel.remote.execution.v2.ContentAddressableStorage/GetTree", kRead),
      Entry("/build.bazel.remote.execution.v2.ContentAddressableStorage/BatchUpdateBlobs",
            kCasWrite),
      Entry("/build.bazel.remote.execution.v2.ActionCache/GetActionResult", kRead),
      Entry("/build.bazel.remote.execution.v2.ActionCache/UpdateActionResult", kCasWrite),
      Entry("/google.bytestream.ByteStream/Read", kRead),
      Entry("/google.bytestream.ByteStream/Write", kCasWrite),
      Entry("/google.bytestream.ByteStream/QueryWriteStatus", kCasWrite),
      // Health: probes carry no credential; it tells only whether the coordinator serves.
      Entry("/grpc.health.v1.Health/Check", kRead, /*is_public=*/true),
      Entry("/grpc.health.v1.Health/Watch", kRead, /*is_public=*/true),
      // The HTTP port (--http_listen; http/http_port.h), by method and path: Prometheus scrapes
      // with a token or certificate of any role; health is public, as the gRPC one is.
      Entry("GET /metrics", kRead), Entry("GET /healthz", kRead, /*is_public=*/true),
      // The web dashboard (http/web_app.h). Its pages are one public shell, script and style
      // (they hold no data: without a credential they show the sign-in form); the data comes
      // from the API, read by people; changes as the gRPC RPCs they make.
      Entry("GET /", kRead, /*is_public=*/true), Entry("GET /jobs", kRead, /*is_public=*/true),
      Entry("GET /jobs/*", kRead, /*is_public=*/true),
      Entry("GET /pipelines", kRead, /*is_public=*/true),
      Entry("GET /pipelines/*", kRead, /*is_public=*/true),
      Entry("GET /agents", kRead, /*is_public=*/true),
      Entry("GET /factory", kRead, /*is_public=*/true),
      Entry("GET /login", kRead, /*is_public=*/true),
      Entry("GET /static/*", kRead, /*is_public=*/true),
      Entry("POST /login", kRead, /*is_public=*/true), Entry("POST /logout", kUserRead),
      Entry("GET /api/whoami", kUserRead), Entry("GET /api/floor", kUserRead),
      Entry("GET /api/jobs", kUserRead), Entry("GET /api/jobs/*", kUserRead),
      Entry("GET /api/artifacts/*", kUserRead), Entry("GET /api/pipelines", kUserRead),
      Entry("GET /api/pipelines/*", kUserRead), Entry("GET /api/agents", kUserRead),
      Entry("GET /api/factory", kUserRead), Entry("POST /api/jobs/*", kSubmit),  // cancel, retry
      Entry("POST /api/pipelines/*", kSubmit),                                   // cancel, retry
      Entry("POST /api/agents/*", kAdminOnly),                                   // drain, resume
      Entry("POST /api/queues/*", kAdminOnly),                                   // pause, resume
  };
}

}  // namespace

const std::vector<AuthzEntry>& AuthzTable() {
  static const auto* table = new std::vector<AuthzEntry>(BuildTable());
  return *table;
}

const AuthzEntry* FindAuthz(absl::string_view method) {
  static const auto* index = [] {
    auto* m = new absl::flat_hash_map<absl::string_view, const AuthzEntry*>();
    for (const AuthzEntry& e : AuthzTable()) m->emplace(e.method, &e);
    return m;
  }();
  auto it = index->find(method);
  return it == index->end() ? nullptr : it->second;
}

bool Allowed(absl::string_view method, Role role) {
  const AuthzEntry* e = FindAuthz(method);
  return e != nullptr && e->allowed[static_cast<int>(role)];
}

}  // namespace farm::coordinator
