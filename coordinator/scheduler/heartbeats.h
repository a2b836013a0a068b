// Agents' heartbeats: each renews the leases it lists (lease_table.h) and is itself a parked
// call (parked_calls.h), answered at once when one of its leases is stale or newly cancelled,
// else when its wait ends, or earlier when a cancel for the agent arrives (Wake), so that a
// cancel reaches the agent without polling. An agent has at most one parked heartbeat.
//
// Engine thread only. Errors: those of AgentRegistry::Call.
#pragma once

#include <cstdint>
#include <string>

#include "common/clock.h"
#include "coordinator/scheduler/agent_registry.h"
#include "coordinator/scheduler/engine.h"
#include "coordinator/scheduler/lease_table.h"
#include "coordinator/scheduler/parked_calls.h"
#include "farm/v1/farm.pb.h"

namespace farm::coordinator {

class HeartbeatDesk {
 public:
  HeartbeatDesk(common::Clock* clock, LeaseTable* leases, AgentRegistry* agents,
                ParkedCalls* parked)
      : clock_(clock), leases_(leases), agents_(agents), parked_(parked) {}

  // `parking` false: the scheduler is stopping (a call that would park gets UNAVAILABLE).
  void Heartbeat(Txn& txn, farm::v1::HeartbeatRequest req, int64_t wait_ms, uint64_t call_id,
                 Done<farm::v1::HeartbeatResponse> done, bool parking);
  // Answers `agent`'s parked heartbeat once this group commits (what it hears is durable).
  void Wake(Txn& txn, const std::string& agent);
  // Forgets a parked heartbeat taken by someone else (the client went away, shutdown).
  void Forget(const HeartbeatWaiter& w);

 private:
  // The status of each lease the agent listed; renews the valid ones when `renew`. *urgent
  // when one is stale or newly cancelled.
  farm::v1::HeartbeatResponse Status(const farm::v1::HeartbeatRequest& req, bool renew,
                                     bool* urgent);
  // Marks the cancels in `resp` as delivered.
  void Delivered(const farm::v1::HeartbeatResponse& resp);

  common::Clock* const clock_;
  LeaseTable* const leases_;
  AgentRegistry* const agents_;
  ParkedCalls* const parked_;
};

}  // namespace farm::coordinator
