// The agent registry: every agent the coordinator knows, what it registered with (labels,
// slots, session), whether it is draining, and when it was last heard from. Persisted
// (Cf::kAgents), so that what an operator decided about an agent (a drain) survives a
// coordinator restart, and agents keep their sessions across one.
//
// An agent is "lost" once it has not called for a lease TTL (an AGENT_LOST event, once), and
// forgotten (its record deleted) after `forget_after_ms` of silence unless an operator drained
// or labelled it or it still holds leases. Liveness (last call, parked heartbeat) lives in
// memory only: a recovered agent counts as just seen, as a recovered lease gets a full TTL.
//
// Labels: the labels jobs match (AgentState::labels) are what the agent registered, less the
// keys an operator removed, plus the labels an operator set (which win over the agent's own).
// The operator's part is kept apart in the record, so that it outlives the agent's
// registrations and coordinator restarts; a key stays removed until an operator sets it. (An
// enrolled agent's pinned labels bound only what the agent itself may claim at registration:
// an operator may change any label.)
//
// Operators' changes (drain, resume, labels, remove) are each persisted with an event whose
// reason names the operator.
//
// Engine thread only. Errors: NOT_FOUND with reason AGENT_NOT_REGISTERED (common/grpc_status.h)
// for an unknown agent calling; NOT_FOUND "no agent named X" for an operator's command about
// an unknown one; FAILED_PRECONDITION for a superseded session; DATA_LOSS from Recover for a
// record that does not parse.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "coordinator/scheduler/engine.h"
#include "coordinator/scheduler/event_recorder.h"
#include "coordinator/scheduler/label_sets.h"
#include "farm/internal/records.pb.h"
#include "farm/v1/farm.pb.h"

namespace farm::coordinator {

struct AgentState {
  farm::internal::AgentRecord record;
  Labels labels;                  // what jobs match: EffectiveLabels(record)
  int64_t last_seen_ms = 0;       // monotonic
  int64_t last_seen_wall_ms = 0;  // for display
  bool self_draining = false;     // the agent said it is stopping (its heartbeat)
  bool lost = false;              // silent past the TTL, and recorded as lost
  uint64_t heartbeat_call = 0;    // its parked heartbeat, 0 if none

  bool draining() const { return self_draining || record.operator_drain(); }
};

// What jobs match for an agent: its registered labels, less the keys an operator removed, plus
// (overriding) the labels an operator set.
Labels EffectiveLabels(const farm::internal::AgentRecord& record);

// "by NAME" for an event's reason; "by an operator" for a caller without a name (a farm run
// without authentication).
std::string ByOperator(const std::string& by);

class AgentRegistry {
 public:
  AgentRegistry(common::Clock* clock, EventRecorder* events, int64_t ttl_ms,
                int64_t forget_after_ms)
      : clock_(clock), events_(events), ttl_ms_(ttl_ms), forget_after_ms_(forget_after_ms) {}

  // Loads the records; agents already in memory keep their liveness.
  absl::Status Recover(Store* store);

  // Records a registration (a validated request). Returns the agent and whether it replaced
  // another live session of the same name (whose leases are then the caller's to end).
  AgentState& Register(Txn& txn, const farm::v1::RegisterRequest& req, bool* superseded);
  // An agent's call: the agent, marked seen (an AGENT_RETURNED event if it was lost).
  absl::StatusOr<AgentState*> Call(Txn& txn, const std::string& name,
                                   const std::string& session_id);
  // The agent's own drain flag, as its heartbeat reports it (an event when it changes).
  void SetSelfDraining(Txn& txn, AgentState& agent, bool draining);
  // An operator's drain (or resume): persisted, with an AGENT_DRAINING (AGENT_RESUMED) event
  // when it changes whether the agent takes work. `by`: who (ByOperator).
  absl::Status SetOperatorDrain(Txn& txn, const std::string& name, bool drain,
                                const std::string& by = "");
  // An operator's label change: each of `set` overrides or adds a label, each key of `remove`
  // is taken out (whoever set it; it stays out until set). Persisted, with an AGENT_LABELED
  // event; *changed says whether anything changed (no event when nothing did). The labels must
  // be valid already (the scheduler checks their text). NOT_FOUND for an unknown agent or a key
  // to remove that the agent does not have; INVALID_ARGUMENT for a key both set and removed or
  // a result with more than common::kMaxLabels labels. Nothing changes on an error.
  absl::Status SetOperatorLabels(Txn& txn, const std::string& name, const Labels& set,
                                 const std::vector<std::string>& remove, const std::string& by,
                                 bool* changed);
  // Forgets an agent an operator removes: its record deleted, an AGENT_REMOVED event. Returns
  // what it was. NOT_FOUND for an unknown agent; FAILED_PRECONDITION while it is online (see
  // Online) or holds leases (`leases_held`), changing nothing.
  absl::StatusOr<farm::v1::AgentInfo> Remove(Txn& txn, const std::string& name,
                                             const std::vector<uint64_t>& leases_held,
                                             const std::string& by);

  // Marks agents silent past the TTL as lost, and forgets those silent past forget_after_ms
  // (except drained ones and those in `holders`).
  void Sweep(Txn& txn, const std::set<std::string>& holders);

  AgentState* Find(const std::string& name);
  const std::map<std::string, AgentState>& all() const { return agents_; }
  // Heard from within the lease TTL, or holding a parked heartbeat.
  bool Online(const AgentState& agent) const;
  // "offline", "draining", "busy" or "idle".
  std::string StateOf(const AgentState& agent, bool holds_leases) const;
  // The agent as ListAgents shows it, with the jobs it holds leases on.
  farm::v1::AgentInfo Info(const AgentState& agent, const std::vector<uint64_t>& jobs) const;

 private:
  void Persist(Txn& txn, const AgentState& agent);
  // NOT_FOUND "no agent named X" for an operator's command about an unknown agent.
  absl::StatusOr<AgentState*> FindForOperator(const std::string& name);
  void Record(Txn& txn, const std::string& name, farm::v1::EventKind kind,
              const std::string& reason = "");

  common::Clock* const clock_;
  EventRecorder* const events_;
  const int64_t ttl_ms_;
  const int64_t forget_after_ms_;
  std::map<std::string, AgentState> agents_;
};

}  // namespace farm::coordinator
