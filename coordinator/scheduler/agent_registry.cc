#include "coordinator/scheduler/agent_registry.h"

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/text.h"

namespace farm::coordinator {

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
        agent.labels = ToLabels(record.labels());
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
  agent.labels = ToLabels(req.labels());
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

absl::Status AgentRegistry::SetOperatorDrain(Txn& txn, const std::string& name, bool drain) {
  AgentState* agent = Find(name);
  if (agent == nullptr) {
    return absl::NotFoundError(absl::StrCat("agent ", common::Quote(name), " not found"));
  }
  if (agent->record.operator_drain() == drain) return absl::OkStatus();
  const bool was = agent->draining();
  agent->record.set_operator_drain(drain);
  Persist(txn, *agent);
  if (agent->draining() != was) {
    Record(txn, name, drain ? farm::v1::AGENT_DRAINING : farm::v1::AGENT_RESUMED,
           drain ? "drained by an operator" : "resumed by an operator");
  }
  return absl::OkStatus();
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
    const bool keep = agent.record.operator_drain() || holders.count(it->first) > 0 ||
                      agent.heartbeat_call != 0 || silent <= forget_after_ms_;
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

std::string AgentRegistry::StateOf(const AgentState& agent, bool holds_leases) const {
  if (clock_->MonotonicMs() - agent.last_seen_ms > ttl_ms_) return "offline";
  if (agent.draining()) return "draining";
  return holds_leases ? "busy" : "idle";
}

}  // namespace farm::coordinator
