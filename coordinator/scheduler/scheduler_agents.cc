// Operators' agent commands (scheduler.h: DrainAgent, LabelAgent, RemoveAgent). The checks
// that need no state run on the caller's thread; the change runs on the engine thread, where
// the registry applies it (agent_registry.h) and the dispatcher offers queued work to the
// agent's parked Lease calls when the change may have made some match.
#include <set>

#include "absl/strings/str_cat.h"
#include "common/job_limits.h"
#include "common/status_macros.h"
#include "common/text.h"
#include "coordinator/scheduler/scheduler.h"

namespace farm::coordinator {
namespace {

absl::Status CheckAgentName(const std::string& name) {
  if (name.empty()) return absl::InvalidArgumentError("the agent name is empty");
  return absl::OkStatus();
}

absl::Status CheckLabelKey(const std::string& key) {
  if (key.empty() || key.size() > static_cast<size_t>(common::kMaxLabelBytes)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the label key ", common::Quote(key), " must be 1 to ", common::kMaxLabelBytes, " bytes"));
  }
  if (key.find_first_of("=,") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("the label key ", common::Quote(key), " may not contain '=' or ','"));
  }
  return absl::OkStatus();
}

// What an operator's label change must be, whatever the agent: labels as jobs take them.
absl::Status CheckLabelChange(const Labels& set, const std::vector<std::string>& remove) {
  if (set.empty() && remove.empty()) {
    return absl::InvalidArgumentError("nothing to change: give labels to set or keys to remove");
  }
  if (set.size() > static_cast<size_t>(common::kMaxLabels) ||
      remove.size() > static_cast<size_t>(common::kMaxLabels)) {
    return absl::InvalidArgumentError(absl::StrCat("at most ", common::kMaxLabels,
                                                   " labels to set and ", common::kMaxLabels,
                                                   " to remove at once"));
  }
  for (const auto& [key, value] : set) {
    FARM_RETURN_IF_ERROR(CheckLabelKey(key));
    if (value.size() > static_cast<size_t>(common::kMaxLabelBytes) ||
        value.find(',') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("the value of label ", common::Quote(key),
                                                     " must be at most ", common::kMaxLabelBytes,
                                                     " bytes, without ','"));
    }
  }
  std::set<std::string> seen;
  for (const std::string& key : remove) {
    FARM_RETURN_IF_ERROR(CheckLabelKey(key));
    if (!seen.insert(key).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("the label ", common::Quote(key), " is removed twice"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

farm::v1::AgentInfo Scheduler::AgentInfoOf(const std::string& name) {
  return agents_.Info(*agents_.Find(name), leases_.HeldBy(name));
}

void Scheduler::DrainAgent(std::string name, bool drain, std::string by,
                           Done<farm::v1::AgentInfo> done) {
  if (absl::Status s = CheckAgentName(name); !s.ok()) return done(s);
  Post(
      [this, name = std::move(name), drain, by = std::move(by), done](Txn& txn) {
        if (absl::Status s = agents_.SetOperatorDrain(txn, name, drain, by); !s.ok()) {
          return done(s);
        }
        if (!drain) dispatcher_.OfferQueuedWork(txn, name);
        ReplyAfterCommit(txn, done, AgentInfoOf(name));
      },
      [&](absl::Status s) { done(s); });
}

void Scheduler::LabelAgent(std::string name, Labels set, std::vector<std::string> remove,
                           std::string by, Done<farm::v1::AgentInfo> done) {
  if (absl::Status s = CheckAgentName(name); !s.ok()) return done(s);
  if (absl::Status s = CheckLabelChange(set, remove); !s.ok()) return done(s);
  Post(
      [this, name = std::move(name), set = std::move(set), remove = std::move(remove),
       by = std::move(by), done](Txn& txn) {
        bool changed = false;
        if (absl::Status s = agents_.SetOperatorLabels(txn, name, set, remove, by, &changed);
            !s.ok()) {
          return done(s);
        }
        if (changed) dispatcher_.OfferQueuedWork(txn, name);
        ReplyAfterCommit(txn, done, AgentInfoOf(name));
      },
      [&](absl::Status s) { done(s); });
}

void Scheduler::RemoveAgent(std::string name, std::string by, Done<farm::v1::AgentInfo> done) {
  if (absl::Status s = CheckAgentName(name); !s.ok()) return done(s);
  Post(
      [this, name = std::move(name), by = std::move(by), done](Txn& txn) {
        absl::StatusOr<farm::v1::AgentInfo> removed =
            agents_.Remove(txn, name, leases_.HeldBy(name), by);
        if (!removed.ok()) return done(removed.status());
        ReplyAfterCommit(txn, done, *std::move(removed));
      },
      [&](absl::Status s) { done(s); });
}

}  // namespace farm::coordinator
