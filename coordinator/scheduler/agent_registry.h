// The agent registry: every agent the coordinator knows, what it registered with (labels,
// slots, session), whether it is draining, and when it was last heard from. Persisted
// (Cf::kAgents), so that what an operator decided about an agent (a drain) survives a
// coordinator restart, and agents keep their sessions across one.
//
// An agent is "lost" once it has not called for a lease TTL (an AGENT_LOST event, once), and
// forgotten (its record deleted) after `forget_after_ms` of silence unless an operator drained
// it or it still holds leases. Liveness (last call, parked heartbeat) lives in memory only: a
// recovered agent counts as just seen, as a recovered lease gets a full TTL.
//
// Engine thread only. Errors: NOT_FOUND with reason AGENT_NOT_REGISTERED (common/grpc_status.h)
// for an unknown agent; FAILED_PRECONDITION for a superseded session; DATA_LOSS from Recover
// for a record that does not parse.
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
  Labels labels;                  // record.labels, as a map for matching
  int64_t last_seen_ms = 0;       // monotonic
  int64_t last_seen_wall_ms = 0;  // for display
  bool self_draining = false;     // the agent said it is stopping (its heartbeat)
  bool lost = false;              // silent past the TTL, and recorded as lost
  uint64_t heartbeat_call = 0;    // its parked heartbeat, 0 if none

  bool draining() const { return self_draining || record.operator_drain(); }
};

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
  // An operator's drain (or resume): persisted. NOT_FOUND for an unknown agent.
  absl::Status SetOperatorDrain(Txn& txn, const std::string& name, bool drain);

  // Marks agents silent past the TTL as lost, and forgets those silent past forget_after_ms
  // (except drained ones and those in `holders`).
  void Sweep(Txn& txn, const std::set<std::string>& holders);

  AgentState* Find(const std::string& name);
  const std::map<std::string, AgentState>& all() const { return agents_; }
  // "offline", "draining", "busy" or "idle".
  std::string StateOf(const AgentState& agent, bool holds_leases) const;

 private:
  void Persist(Txn& txn, const AgentState& agent);
  void Record(Txn& txn, const std::string& name, farm::v1::EventKind kind,
              const std::string& reason = "");

  common::Clock* const clock_;
  EventRecorder* const events_;
  const int64_t ttl_ms_;
  const int64_t forget_after_ms_;
  std::map<std::string, AgentState> agents_;
};

}  // namespace farm::coordinator
