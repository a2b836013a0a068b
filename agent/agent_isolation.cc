// Agent::InitIsolation: how this agent isolates its steps (agent/isolation.h), set up once at
// start; in a file of its own so that agent.cc keeps to the agent's loops.
#include "absl/strings/str_cat.h"
#include "agent/agent.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace farm::agent {

absl::Status Agent::InitIsolation() {
  absl::StatusOr<std::unique_ptr<Isolation>> isolation =
      Isolation::Create(options_.isolation, options_.work_dir);
  if (!isolation.ok()) return isolation.status();
  isolation_ = *std::move(isolation);
  // Only the job's own workspace is the steps' business: the cache, the spilled logs (and the
  // agent's credential, 0600) stay root's.
  FARM_RETURN_IF_ERROR(isolation_->SecureWorkDir({"cache", kLogSpillDirName}));
  attempt_context_.isolation = isolation_.get();
  // What left its process group dies with the agent too (step_supervisor.h).
  if (isolation_->cgroup_tree_fd() >= 0 &&
      !supervisor_->GuardCgroup(isolation_->cgroup_tree_fd())) {
    return absl::InternalError("cannot hand the step cgroups to the step supervisor");
  }
  FARM_LOG(INFO) << log_prefix_ << " steps run as " << isolation_->user().name << ", killed by "
                 << isolation_->kill_mechanism()
                 << (isolation_->kill_fallback_reason().empty()
                         ? ""
                         : absl::StrCat(" (no cgroup v2: ", isolation_->kill_fallback_reason(),
                                        ")"))
                 << (isolation_->sandbox_name().empty() ? "" : ", in the bwrap sandbox");
  return absl::OkStatus();
}

}  // namespace farm::agent
