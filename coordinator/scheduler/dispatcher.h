// The dispatcher: pairs queued work with agents. An agent's Lease call gets a lease at once
// when matching work is queued; otherwise it is parked (parked_calls.h) and answered the moment
// matching work is queued, in the same group as the submit that queued it, or with "no work"
// when its wait ends. A grant takes the job QUEUED → RUNNING with a fresh epoch (lease_table.h)
// and is answered only once that is durable.
//
// A queued key whose job has no readable record cannot run; it is removed, logged and recorded
// as a JOB_DROPPED event (and counted), never dropped silently.
//
// Engine thread only. Errors: those of AgentRegistry::Call; the store's read errors (the group
// is then failed, so that no queued key is taken without its job being leased).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "coordinator/logs/log_ingest.h"
#include "coordinator/scheduler/agent_registry.h"
#include "coordinator/scheduler/engine.h"
#include "coordinator/scheduler/event_recorder.h"
#include "coordinator/scheduler/job_lifecycle.h"
#include "coordinator/scheduler/lease_table.h"
#include "coordinator/scheduler/parked_calls.h"
#include "coordinator/scheduler/queue_index.h"
#include "farm/v1/farm.pb.h"

namespace farm::coordinator {

class Dispatcher {
 public:
  struct Parts {
    common::Clock* clock;
    QueueIndex* queue;
    LeaseTable* leases;
    AgentRegistry* agents;
    ParkedCalls* parked;
    LogIngest* logs;
    JobLifecycle* lifecycle;
    EventRecorder* events;
  };
  explicit Dispatcher(Parts parts) : p_(parts) {}

  // An agent's Lease call (see above). `parking` false: answer "no work" instead of parking
  // (the scheduler is stopping: UNAVAILABLE).
  void Lease(Txn& txn, const farm::v1::LeaseRequest& req, int64_t wait_ms, uint64_t call_id,
             Done<farm::v1::LeaseResponse> done, bool parking);
  // The next lease of the agent whose completion `req` (with lease_next) ended an attempt in
  // this group: a slot that finished asks for its next job without another round trip.
  // nullopt when there is none to give: the agent's session is not current, it drains, or no
  // work it may run is queued (its slot then calls Lease as usual). `ended` false: `req` is a
  // retry of a completion already accepted; the lease granted with that one is answered again
  // while its attempt has not begun (the first answer was lost).
  absl::StatusOr<std::optional<farm::v1::LeaseResponse>> LeaseAfterCompletion(
      Txn& txn, const farm::v1::CompleteJobRequest& req, bool ended);
  // Offers the work queued since the last call to parked agents. Run after every command.
  void DispatchNewWork(Txn& txn);
  // Offers queued work to the parked Lease calls of `agent`, whose labels or drain an operator
  // just changed (work queued before may match it now: no call waits out its wait for it).
  void OfferQueuedWork(Txn& txn, const std::string& agent);

  // Queued keys removed because their job had no readable record.
  int64_t dropped() const { return dropped_; }

 private:
  // The job of a queued key just taken; nullopt (reported) when it has no record. An error
  // fails the group.
  absl::StatusOr<std::optional<farm::v1::Job>> LoadQueued(Txn& txn, uint64_t seq);
  // QUEUED → RUNNING for `agent`, with a fresh epoch: the response to send after the commit.
  // `follows_epoch`: the epoch of the attempt whose completion carries it (Attempt).
  absl::StatusOr<farm::v1::LeaseResponse> Grant(Txn& txn, farm::v1::Job job,
                                                const std::string& agent,
                                                uint64_t follows_epoch = 0);
  // The first job `agent` may run, granted to it; nullopt when there is none.
  absl::StatusOr<std::optional<farm::v1::LeaseResponse>> GrantNext(Txn& txn,
                                                                   const AgentState& agent,
                                                                   uint64_t follows_epoch = 0);
  void DispatchTo(Txn& txn, uint64_t labelset);
  // `agent`'s lease granted with the completion of the attempt with `epoch`, while none of its
  // steps began (recorded in its attempt: it survives a restart).
  std::optional<farm::v1::LeaseResponse> GrantedWith(const std::string& agent, uint64_t epoch);

  Parts p_;
  int64_t dropped_ = 0;
};

}  // namespace farm::coordinator
