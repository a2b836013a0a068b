#include "coordinator/scheduler/heartbeats.h"

#include "coordinator/store/keys.h"

namespace farm::coordinator {

farm::v1::HeartbeatResponse HeartbeatDesk::Status(const farm::v1::HeartbeatRequest& req, bool renew,
                                                  bool* urgent) {
  farm::v1::HeartbeatResponse resp;
  for (const auto& ref : req.leases()) {
    farm::v1::LeaseStatus* st = resp.add_leases();
    *st->mutable_lease() = ref;
    absl::StatusOr<Lease*> lease = leases_->Check(ref, &req.agent());
    if (!lease.ok()) {
      st->set_valid(false);
      *urgent = true;
      continue;
    }
    st->set_valid(true);
    if (renew) leases_->Renew(**lease);
    if ((*lease)->job.cancel_requested()) {
      st->set_cancel(true);
      if (!(*lease)->cancel_delivered) *urgent = true;
    }
  }
  return resp;
}

void HeartbeatDesk::Delivered(const farm::v1::HeartbeatResponse& resp) {
  for (const auto& st : resp.leases()) {
    if (!st.cancel()) continue;
    const std::optional<uint64_t> seq = keys::ParseJobId(st.lease().job_id());
    if (!seq.has_value()) continue;
    if (Lease* lease = leases_->Find(*seq)) lease->cancel_delivered = true;
  }
}

void HeartbeatDesk::Heartbeat(Txn& txn, farm::v1::HeartbeatRequest req, int64_t wait_ms,
                              uint64_t call_id, Done<farm::v1::HeartbeatResponse> done,
                              bool parking) {
  absl::StatusOr<AgentState*> seen = agents_->Call(txn, req.agent(), req.session_id());
  if (!seen.ok()) return done(seen.status());
  AgentState& agent = **seen;
  agents_->SetSelfDraining(txn, agent, req.draining());
  // One parked heartbeat per agent: a newer one answers the older.
  if (agent.heartbeat_call != 0) Wake(txn, req.agent());
  bool urgent = false;
  farm::v1::HeartbeatResponse resp = Status(req, /*renew=*/true, &urgent);
  if (!parking) return done(Stopping());
  if (urgent || wait_ms <= 0) {
    Delivered(resp);
    return done(std::move(resp));
  }
  HeartbeatWaiter w;
  w.call_id = call_id;
  w.req = std::move(req);
  w.done = std::move(done);
  parked_->ParkHeartbeat(std::move(w), clock_->MonotonicMs() + wait_ms,
                         [this](HeartbeatWaiter due) {
                           Forget(due);
                           bool ignored = false;
                           due.done(Status(due.req, /*renew=*/false, &ignored));
                         });
  agent.heartbeat_call = call_id;
}

void HeartbeatDesk::Forget(const HeartbeatWaiter& w) {
  AgentState* agent = agents_->Find(w.req.agent());
  if (agent != nullptr && agent->heartbeat_call == w.call_id) agent->heartbeat_call = 0;
}

void HeartbeatDesk::Wake(Txn& txn, const std::string& agent_name) {
  AgentState* agent = agents_->Find(agent_name);
  if (agent == nullptr || agent->heartbeat_call == 0) return;
  std::optional<HeartbeatWaiter> waiter = parked_->TakeHeartbeat(agent->heartbeat_call);
  agent->heartbeat_call = 0;
  if (!waiter.has_value()) return;
  // Answer after this group commits, so that the cancel the agent hears of is durable.
  txn.OnCommit([this, waiter = std::move(*waiter)](const absl::Status&) {
    bool ignored = false;
    farm::v1::HeartbeatResponse resp = Status(waiter.req, /*renew=*/false, &ignored);
    Delivered(resp);
    waiter.done(std::move(resp));
  });
}

}  // namespace farm::coordinator
