#include "coordinator/scheduler/agent_registry.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/grpc_status.h"
#include "common/job_limits.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/text.h"
#include "coordinator/store/keys.h"

namespace farm::coordinator {

Labels EffectiveLabels(const farm::internal::AgentRecord& record) {
  Labels labels = ToLabels(record.labels());
  for (const std::string& key : record.operator_removed()) labels.erase(key);
  for (const auto& [key, value] : record.operator_labels()) labels[key] = value;
  return labels;
}

std::string ByOperator(const std::string& by) {
  return by.empty() ? "by an operator" : absl::StrCat("by ", by);
}

absl::Status AgentRegistry::Recover(Store* store) {
  std::map<std::string, AgentState> old = std::move(agents_);
  agents_.clear();
  absl::Status parse_error;
  FARM_RETURN_IF_ERROR(
      store->Scan(Cf::kAgents, "", "", [&](absl::string_view key, absl::string_view value) {
        farm::internal::AgentRecord record;
        if (!record.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
          parse_error = absl::DataLossError(absl::StrCat("agent record ", key, " is corrupt"));
          return false;
        }
        AgentState agent;
        auto prev = old.find(record.name());
        if (prev != old.end()) {
          agent = std::move(prev->second);
        } else {
          agent.last_seen_ms = clock_->MonotonicMs();
          agent.last_seen_wall_ms = record.last_seen_ms();
        }
        agent.labels = EffectiveLabels(record);
        agent.record = std::move(record);
        agents_.emplace(std::string(key), std::move(agent));
        return true;
      }));
  return parse_error;
}

void AgentRegistry::Persist(Txn& txn, const AgentState& agent) {
  txn.Put(Cf::kAgents, agent.record.name(), agent.record.SerializeAsString());
}

void AgentRegistry::Record(Txn& txn, const std::string& name, farm::v1::EventKind kind,
                           const std::string& reason) {
  farm::v1::Event event;
  event.set_kind(kind);
  event.set_agent(name);
  event.set_reason(reason);
  events_->Append(txn, std::move(event));
}

AgentState& AgentRegistry::Register(Txn& txn, const farm::v1::RegisterRequest& req,
                                    bool* superseded) {
  AgentState& agent = agents_[req.name()];
  *superseded = !agent.record.session_id().empty() && agent.record.session_id() != req.session_id();
  agent.record.set_name(req.name());
  *agent.record.mutable_labels() = req.labels();
  agent.labels = EffectiveLabels(agent.record);
  agent.record.set_slots(req.slots());
  agent.record.set_session_id(req.session_id());
  agent.record.set_version(req.version());
  agent.record.set_isolation_kill(req.isolation().kill());
  agent.record.set_isolation_run_as(req.isolation().run_as());
  agent.record.set_isolation_sandbox(req.isolation().sandbox());
  agent.record.set_registered_ms(clock_->NowMs());
  agent.record.set_last_seen_ms(clock_->NowMs());
  agent.last_seen_ms = clock_->MonotonicMs();
  agent.last_seen_wall_ms = clock_->NowMs();
  agent.self_draining = false;
  agent.lost = false;
  Persist(txn, agent);
  Record(txn, req.name(), farm::v1::AGENT_REGISTERED,
         absl::StrCat(req.slots(), " slots, version ", req.version()));
  return agent;
}

absl::StatusOr<AgentState*> AgentRegistry::Call(Txn& txn, const std::string& name,
                                                const std::string& session_id) {
  auto it = agents_.find(name);
  if (it == agents_.end()) {
    // Agents register again on this reason (the coordinator forgot them).
    return common::WithReason(
        absl::NotFoundError(absl::StrCat("agent ", common::Quote(name), " not registered")),
        common::kReasonAgentNotRegistered);
  }
  AgentState& agent = it->second;
  if (agent.record.session_id() != session_id) {
    return common::WithReason(
        absl::FailedPreconditionError(absl::StrCat("agent ", common::Quote(name),
                                                   " has registered again with a new session")),
        common::kReasonAgentSessionSuperseded);
  }
  agent.last_seen_ms = clock_->MonotonicMs();
  agent.last_seen_wall_ms = clock_->NowMs();
  if (agent.lost) {
    agent.lost = false;
    FARM_LOG(INFO) << "[agent=" << name << "] is back";
    Record(txn, name, farm::v1::AGENT_RETURNED);
  }
  return &agent;
}

void AgentRegistry::SetSelfDraining(Txn& txn, AgentState& agent, bool draining) {
  if (agent.self_draining == draining) return;
  const bool was = agent.draining();
  agent.self_draining = draining;
  if (agent.draining() == was) return;
  Record(txn, agent.record.name(), draining ? farm::v1::AGENT_DRAINING : farm::v1::AGENT_RESUMED,
         "the agent is stopping");
}

absl::StatusOr<AgentState*> AgentRegistry::FindForOperator(const std::string& name) {
  AgentState* agent = Find(name);
  if (agent == nullptr) {
    return absl::NotFoundError(absl::StrCat("no agent named ", common::Quote(name)));
  }
  return agent;
}

absl::Status AgentRegistry::SetOperatorDrain(Txn& txn, const std::string& name, bool drain,
                                             const std::string& by) {
  FARM_ASSIGN_OR_RETURN(AgentState * agent, FindForOperator(name));
  if (agent->record.operator_drain() == drain) return absl::OkStatus();
  const bool was = agent->draining();
  agent->record.set_operator_drain(drain);
  Persist(txn, *agent);
  if (agent->draining() != was) {
    Record(txn, name, drain ? farm::v1::AGENT_DRAINING : farm::v1::AGENT_RESUMED,
           absl::StrCat(drain ? "drained " : "resumed ", ByOperator(by)));
  }
  return absl::OkStatus();
}

namespace {

// "k=v,k2=v2" (or "k,k2" with values = false), for an event's reason: at most 16 entries.
template <typename Container, typename Fn>
std::string ListForReason(const Container& items, Fn fn) {
  constexpr size_t kShown = 16;
  std::vector<std::string> parts;
  for (const auto& item : items) {
    if (parts.size() == kShown) break;
    parts.push_back(fn(item));
  }
  std::string text = absl::StrJoin(parts, ",");
  if (items.size() > kShown) absl::StrAppend(&text, " and ", items.size() - kShown, " more");
  return text;
}

}  // namespace

absl::Status AgentRegistry::SetOperatorLabels(Txn& txn, const std::string& name, const Labels& set,
                                              const std::vector<std::string>& remove,
                                              const std::string& by, bool* changed) {
  *changed = false;
  FARM_ASSIGN_OR_RETURN(AgentState * agent, FindForOperator(name));
  for (const std::string& key : remove) {
    if (set.count(key) > 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("the label ", common::Quote(key), " is both set and removed"));
    }
    if (agent->labels.count(key) == 0) {
      return absl::NotFoundError(absl::StrCat("agent ", common::Quote(name), " has no label ",
                                              common::Quote(key), " to remove"));
    }
  }
  Labels operator_labels = ToLabels(agent->record.operator_labels());
  std::set<std::string> removed(agent->record.operator_removed().begin(),
                                agent->record.operator_removed().end());
  for (const auto& [key, value] : set) {
    operator_labels[key] = value;
    removed.erase(key);
  }
  for (const std::string& key : remove) {
    operator_labels.erase(key);
    removed.insert(key);
  }
  farm::internal::AgentRecord record = agent->record;
  record.mutable_operator_labels()->clear();
  record.mutable_operator_labels()->insert(operator_labels.begin(), operator_labels.end());
  record.clear_operator_removed();
  for (const std::string& key : removed) record.add_operator_removed(key);
  Labels labels = EffectiveLabels(record);
  if (labels.size() > static_cast<size_t>(common::kMaxLabels)) {
    return absl::InvalidArgumentError(absl::StrCat("agent ", common::Quote(name), " would have ",
                                                   labels.size(), " labels; the limit is ",
                                                   common::kMaxLabels));
  }
  if (operator_labels == ToLabels(agent->record.operator_labels()) &&
      std::equal(removed.begin(), removed.end(), agent->record.operator_removed().begin(),
                 agent->record.operator_removed().end())) {
    return absl::OkStatus();  // as it was: no write, no event
  }
  agent->record = std::move(record);
  agent->labels = std::move(labels);
  Persist(txn, *agent);
  std::string reason;
  if (!set.empty()) {
    absl::StrAppend(
        &reason, "set ",
        ListForReason(set, [](const auto& kv) { return absl::StrCat(kv.first, "=", kv.second); }),
        "; ");
  }
  if (!remove.empty()) {
    absl::StrAppend(&reason, "removed ",
                    ListForReason(remove, [](const std::string& key) { return key; }), "; ");
  }
  Record(txn, name, farm::v1::AGENT_LABELED, absl::StrCat(reason, ByOperator(by)));
  *changed = true;
  return absl::OkStatus();
}

absl::StatusOr<farm::v1::AgentInfo> AgentRegistry::Remove(Txn& txn, const std::string& name,
                                                          const std::vector<uint64_t>& leases_held,
                                                          const std::string& by) {
  FARM_ASSIGN_OR_RETURN(AgentState * agent, FindForOperator(name));
  if (!leases_held.empty()) {
    std::vector<std::string> jobs;
    for (uint64_t seq : leases_held) jobs.push_back(keys::JobId(seq));
    return absl::FailedPreconditionError(absl::StrCat(
        "agent ", common::Quote(name), " holds leases (jobs ", absl::StrJoin(jobs, ", "),
        "): it can be removed once it is offline and they have ended"));
  }
  if (Online(*agent)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "agent ", common::Quote(name), " is online: stop it first (it counts as offline after ",
        ttl_ms_ / 1000.0, " s without a call)"));
  }
  farm::v1::AgentInfo info = Info(*agent, {});
  txn.Delete(Cf::kAgents, name);
  agents_.erase(name);
  FARM_LOG(INFO) << "[agent=" << name << "] removed " << ByOperator(by);
  Record(txn, name, farm::v1::AGENT_REMOVED, absl::StrCat("removed ", ByOperator(by)));
  return info;
}

void AgentRegistry::Sweep(Txn& txn, const std::set<std::string>& holders) {
  const int64_t now = clock_->MonotonicMs();
  for (auto it = agents_.begin(); it != agents_.end();) {
    AgentState& agent = it->second;
    const int64_t silent = now - agent.last_seen_ms;
    if (!agent.lost && silent > ttl_ms_) {
      agent.lost = true;
      FARM_LOG(WARNING) << "[agent=" << it->first << "] lost: silent for " << silent << " ms";
      Record(txn, it->first, farm::v1::AGENT_LOST,
             absl::StrCat("no call for ", silent, " ms (lease TTL ", ttl_ms_, " ms)"));
    }
    const bool by_operator = agent.record.operator_drain() ||
                             !agent.record.operator_labels().empty() ||
                             !agent.record.operator_removed().empty();
    const bool keep = by_operator || holders.count(it->first) > 0 || agent.heartbeat_call != 0 ||
                      silent <= forget_after_ms_;
    if (keep) {
      ++it;
      continue;
    }
    txn.Delete(Cf::kAgents, it->first);
    it = agents_.erase(it);
  }
}

AgentState* AgentRegistry::Find(const std::string& name) {
  auto it = agents_.find(name);
  return it == agents_.end() ? nullptr : &it->second;
}

bool AgentRegistry::Online(const AgentState& agent) const {
  return agent.heartbeat_call != 0 || clock_->MonotonicMs() - agent.last_seen_ms <= ttl_ms_;
}

std::string AgentRegistry::StateOf(const AgentState& agent, bool holds_leases) const {
  if (clock_->MonotonicMs() - agent.last_seen_ms > ttl_ms_) return "offline";
  if (agent.draining()) return "draining";
  return holds_leases ? "busy" : "idle";
}

farm::v1::AgentInfo AgentRegistry::Info(const AgentState& agent,
                                        const std::vector<uint64_t>& jobs) const {
  farm::v1::AgentInfo info;
  info.set_name(agent.record.name());
  info.mutable_labels()->insert(agent.labels.begin(), agent.labels.end());
  *info.mutable_operator_labels() = agent.record.operator_labels();
  *info.mutable_removed_labels() = agent.record.operator_removed();
  info.set_slots(agent.record.slots());
  info.set_version(agent.record.version());
  info.mutable_isolation()->set_kill(agent.record.isolation_kill());
  info.mutable_isolation()->set_run_as(agent.record.isolation_run_as());
  info.mutable_isolation()->set_sandbox(agent.record.isolation_sandbox());
  info.set_last_seen_ms(agent.last_seen_wall_ms);
  for (uint64_t seq : jobs) info.add_jobs(keys::JobId(seq));
  info.set_state(StateOf(agent, !jobs.empty()));
  return info;
}

}  // namespace farm::coordinator
