#include "coordinator/scheduler/parked_calls.h"

namespace farm::coordinator {

void ParkedCalls::ParkLease(LeaseWaiter w, std::function<void(LeaseWaiter)> on_due) {
  const uint64_t id = w.call_id;
  w.timer = engine_->AddTimer(w.due_ms, [this, id, on_due = std::move(on_due)](Txn&) {
    if (std::optional<LeaseWaiter> taken = TakeLease(id)) on_due(std::move(*taken));
  });
  leases_.push_back(std::move(w));
  lease_index_[id] = std::prev(leases_.end());
}

void ParkedCalls::ParkHeartbeat(HeartbeatWaiter w, int64_t due_ms,
                                std::function<void(HeartbeatWaiter)> on_due) {
  const uint64_t id = w.call_id;
  w.timer = engine_->AddTimer(due_ms, [this, id, on_due = std::move(on_due)](Txn&) {
    if (std::optional<HeartbeatWaiter> taken = TakeHeartbeat(id)) on_due(std::move(*taken));
  });
  heartbeats_[id] = std::move(w);
}

std::optional<LeaseWaiter> ParkedCalls::TakeLease(uint64_t call_id) {
  auto it = lease_index_.find(call_id);
  if (it == lease_index_.end()) return std::nullopt;
  LeaseWaiter w = std::move(*it->second);
  leases_.erase(it->second);
  lease_index_.erase(it);
  engine_->CancelTimer(w.timer);  // a no-op when its own timer is what took it
  return w;
}

std::optional<HeartbeatWaiter> ParkedCalls::TakeHeartbeat(uint64_t call_id) {
  auto it = heartbeats_.find(call_id);
  if (it == heartbeats_.end()) return std::nullopt;
  HeartbeatWaiter w = std::move(it->second);
  heartbeats_.erase(it);
  engine_->CancelTimer(w.timer);
  return w;
}

void ParkedCalls::VisitLeases(const std::function<Visit(LeaseWaiter&)>& fn) {
  for (auto it = leases_.begin(); it != leases_.end();) {
    const Visit visit = fn(*it);
    if (visit == Visit::kStop) return;
    if (visit == Visit::kKeep) {
      ++it;
      continue;
    }
    engine_->CancelTimer(it->timer);
    lease_index_.erase(it->call_id);
    it = leases_.erase(it);
  }
}

std::vector<LeaseWaiter> ParkedCalls::TakeAllLeases() {
  std::vector<LeaseWaiter> out;
  while (!leases_.empty()) {
    std::optional<LeaseWaiter> w = TakeLease(leases_.front().call_id);
    out.push_back(std::move(*w));
  }
  return out;
}

std::vector<HeartbeatWaiter> ParkedCalls::TakeAllHeartbeats() {
  std::vector<uint64_t> ids;
  for (const auto& [id, w] : heartbeats_) ids.push_back(id);
  std::vector<HeartbeatWaiter> out;
  for (uint64_t id : ids) out.push_back(*TakeHeartbeat(id));
  return out;
}

}  // namespace farm::coordinator
