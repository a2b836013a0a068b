// The parked calls: agents' Lease calls waiting for work and Heartbeat calls waiting for a
// cancel (long polls, no polling interval). Each is held with the engine timer that ends its
// wait, and leaves in exactly one way: Take*, which removes it from every index and cancels
// its timer, and hands it to the caller, who answers it. Whatever ends a wait (work, a cancel,
// the timer, the client going away, a new session, shutdown) goes through that.
//
// Lease waiters are served first come, first served. An agent has at most one parked heartbeat
// (a newer one answers the older).
//
// Engine thread only (timers are the engine's). No errors of its own.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "coordinator/scheduler/engine.h"
#include "coordinator/scheduler/replies.h"
#include "farm/v1/farm.pb.h"

namespace farm::coordinator {

struct LeaseWaiter {
  uint64_t call_id = 0;
  std::string agent;
  Done<farm::v1::LeaseResponse> done;
  int64_t due_ms = 0;  // monotonic; past it the client has stopped waiting for this answer
  Engine::TimerId timer = 0;
};

struct HeartbeatWaiter {
  uint64_t call_id = 0;
  farm::v1::HeartbeatRequest req;
  Done<farm::v1::HeartbeatResponse> done;
  Engine::TimerId timer = 0;
};

class ParkedCalls {
 public:
  explicit ParkedCalls(Engine* engine) : engine_(engine) {}

  // Parks `w` until w.due_ms; then `on_due` runs (after the waiter was taken).
  void ParkLease(LeaseWaiter w, std::function<void(LeaseWaiter)> on_due);
  void ParkHeartbeat(HeartbeatWaiter w, int64_t due_ms,
                     std::function<void(HeartbeatWaiter)> on_due);

  std::optional<LeaseWaiter> TakeLease(uint64_t call_id);
  std::optional<HeartbeatWaiter> TakeHeartbeat(uint64_t call_id);
  // Visits the lease waiters in arrival order. kTake removes the one visited (fn answers it:
  // it may move its `done` out first), kStop ends the visit.
  enum class Visit { kKeep, kTake, kStop };
  void VisitLeases(const std::function<Visit(LeaseWaiter&)>& fn);
  // Every parked call, taken (at shutdown).
  std::vector<LeaseWaiter> TakeAllLeases();
  std::vector<HeartbeatWaiter> TakeAllHeartbeats();

  bool empty() const { return leases_.empty() && heartbeats_.empty(); }

 private:
  Engine* const engine_;
  std::list<LeaseWaiter> leases_;  // FIFO
  absl::flat_hash_map<uint64_t, std::list<LeaseWaiter>::iterator> lease_index_;
  absl::flat_hash_map<uint64_t, HeartbeatWaiter> heartbeats_;
};

}  // namespace farm::coordinator
