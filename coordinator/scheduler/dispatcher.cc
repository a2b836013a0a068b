#include "coordinator/scheduler/dispatcher.h"

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "coordinator/scheduler/job_records.h"
#include "coordinator/scheduler/replies.h"
#include "coordinator/store/keys.h"

namespace farm::coordinator {

absl::StatusOr<std::optional<farm::v1::Job>> Dispatcher::LoadQueued(Txn& txn, uint64_t seq) {
  absl::StatusOr<std::optional<farm::v1::Job>> job = jobs::Load(txn, seq);
  if (!job.ok() && !absl::IsDataLoss(job.status())) {
    // The key is already taken out in this group: commit nothing of it.
    txn.Fail(absl::UnavailableError(
        absl::StrCat("cannot read queued job ", seq, ": ", job.status().message())));
    return job.status();
  }
  if (job.ok() && job->has_value() && (*job)->state() != farm::v1::QUEUED) {
    // A stale entry of a job that moved on (it is not lost: it has its state). Never granted.
    FARM_LOG(WARNING) << "[job=" << seq << "] a queue entry of a "
                      << farm::v1::JobState_Name((*job)->state()) << " job was removed";
    return std::nullopt;
  }
  if (job.ok() && job->has_value()) return job;
  const std::string why = job.ok() ? "it has no record" : std::string(job.status().message());
  ++dropped_;
  FARM_LOG(ERROR) << "[job=" << seq << "] queued but cannot run, removed from the queue: " << why;
  farm::v1::Event event;
  event.set_kind(farm::v1::JOB_DROPPED);
  event.set_job_id(keys::JobId(seq));
  event.set_reason(why);
  p_.events->Append(txn, std::move(event));
  return std::nullopt;
}

absl::StatusOr<farm::v1::LeaseResponse> Dispatcher::Grant(Txn& txn, farm::v1::Job job,
                                                          const std::string& agent,
                                                          uint64_t follows_epoch) {
  const uint64_t epoch = p_.leases->NextEpoch(txn);
  farm::v1::Attempt* at = job.add_attempts();
  at->set_number(static_cast<uint32_t>(job.attempts_size()));
  at->set_agent(agent);
  at->set_epoch(epoch);
  at->set_started_ms(p_.clock->NowMs());
  at->set_outcome(farm::v1::ATTEMPT_RUNNING);
  at->set_follows_epoch(follows_epoch);
  for (const auto& step : job.spec().steps()) {
    farm::v1::StepResult* r = at->add_steps();
    r->set_name(step.name());
    r->set_state(farm::v1::STEP_PENDING);
  }
  std::string reason = job.reason();
  FARM_RETURN_IF_ERROR(p_.lifecycle->Transition(txn, job, farm::v1::RUNNING, std::move(reason)));
  farm::v1::LeaseResponse resp;
  resp.mutable_lease()->set_job_id(job.id());
  resp.mutable_lease()->set_attempt(at->number());
  resp.mutable_lease()->set_epoch(epoch);
  *resp.mutable_job() = job;
  p_.logs->TrackJob(job.seq(), at->number(), job.spec());
  p_.leases->Add(txn, std::move(job), agent);
  return resp;
}

absl::StatusOr<std::optional<farm::v1::LeaseResponse>> Dispatcher::GrantNext(
    Txn& txn, const AgentState& agent, uint64_t follows_epoch) {
  while (true) {
    FARM_ASSIGN_OR_RETURN(std::optional<uint64_t> seq, p_.queue->PopFor(txn, agent.labels));
    if (!seq.has_value()) return std::nullopt;
    FARM_ASSIGN_OR_RETURN(std::optional<farm::v1::Job> job, LoadQueued(txn, *seq));
    if (!job.has_value()) continue;
    FARM_ASSIGN_OR_RETURN(farm::v1::LeaseResponse resp,
                          Grant(txn, *std::move(job), agent.record.name(), follows_epoch));
    return resp;
  }
}

absl::StatusOr<std::optional<farm::v1::LeaseResponse>> Dispatcher::LeaseAfterCompletion(
    Txn& txn, const farm::v1::CompleteJobRequest& req, bool ended) {
  absl::StatusOr<AgentState*> agent = p_.agents->Call(txn, req.agent(), req.session_id());
  if (!agent.ok() || (*agent)->draining()) return std::nullopt;
  if (!ended) return GrantedWith(req.agent(), req.lease().epoch());
  return GrantNext(txn, **agent, req.lease().epoch());
}

std::optional<farm::v1::LeaseResponse> Dispatcher::GrantedWith(const std::string& agent,
                                                               uint64_t epoch) {
  for (uint64_t held : p_.leases->HeldBy(agent)) {
    const coordinator::Lease* lease = p_.leases->Find(held);
    const farm::v1::Attempt& at = lease->job.attempts(lease->job.attempts_size() - 1);
    if (epoch == 0 || at.follows_epoch() != epoch) continue;
    for (const farm::v1::StepResult& step : at.steps()) {
      if (step.state() != farm::v1::STEP_PENDING) return std::nullopt;  // it runs: not lost
    }
    farm::v1::LeaseResponse resp;
    resp.mutable_lease()->set_job_id(lease->job.id());
    resp.mutable_lease()->set_attempt(lease->attempt);
    resp.mutable_lease()->set_epoch(lease->epoch);
    *resp.mutable_job() = lease->job;
    return resp;
  }
  return std::nullopt;
}

void Dispatcher::Lease(Txn& txn, const farm::v1::LeaseRequest& req, int64_t wait_ms,
                       uint64_t call_id, Done<farm::v1::LeaseResponse> done, bool parking) {
  absl::StatusOr<AgentState*> agent = p_.agents->Call(txn, req.agent(), req.session_id());
  if (!agent.ok()) return done(agent.status());
  if (!(*agent)->draining()) {
    absl::StatusOr<std::optional<farm::v1::LeaseResponse>> granted = GrantNext(txn, **agent);
    if (!granted.ok()) return done(granted.status());
    if (granted->has_value()) return ReplyAfterCommit(txn, done, **std::move(granted));
  }
  if (!parking) return done(Stopping());
  if (wait_ms <= 0) return done(farm::v1::LeaseResponse());
  LeaseWaiter w;
  w.call_id = call_id;
  w.agent = req.agent();
  w.done = std::move(done);
  w.due_ms = p_.clock->MonotonicMs() + wait_ms;
  p_.parked->ParkLease(std::move(w), [](LeaseWaiter due) { due.done(farm::v1::LeaseResponse()); });
}

void Dispatcher::DispatchNewWork(Txn& txn) {
  for (uint64_t labelset : p_.queue->TakeNewWork()) {
    if (txn.failed()) return;
    DispatchTo(txn, labelset);
  }
}

void Dispatcher::OfferQueuedWork(Txn& txn, const std::string& name) {
  const AgentState* agent = p_.agents->Find(name);
  if (txn.failed() || agent == nullptr || agent->draining()) return;
  const int64_t now = p_.clock->MonotonicMs();
  p_.parked->VisitLeases([&](LeaseWaiter& w) {
    if (w.agent != name) return ParkedCalls::Visit::kKeep;
    if (w.due_ms <= now) {
      w.done(farm::v1::LeaseResponse());  // its wait is over (see DispatchTo)
      return ParkedCalls::Visit::kTake;
    }
    absl::StatusOr<std::optional<farm::v1::LeaseResponse>> granted = GrantNext(txn, *agent);
    if (!granted.ok() || !granted->has_value()) return ParkedCalls::Visit::kStop;
    ReplyAfterCommit(txn, w.done, **std::move(granted));
    return ParkedCalls::Visit::kTake;
  });
}

void Dispatcher::DispatchTo(Txn& txn, uint64_t labelset) {
  const int64_t now = p_.clock->MonotonicMs();
  p_.parked->VisitLeases([&](LeaseWaiter& w) {
    if (w.due_ms <= now) {
      // Its wait is over (its timer has not run yet, e.g. after the process was paused): the
      // client may have given up, so it must not be handed a lease.
      w.done(farm::v1::LeaseResponse());
      return ParkedCalls::Visit::kTake;
    }
    AgentState* agent = p_.agents->Find(w.agent);
    if (agent == nullptr || agent->draining()) return ParkedCalls::Visit::kKeep;
    if (!p_.queue->Matches(labelset, agent->labels)) return ParkedCalls::Visit::kKeep;
    while (true) {
      absl::StatusOr<std::optional<uint64_t>> seq = p_.queue->PopHead(txn, labelset);
      if (!seq.ok() || !seq->has_value()) return ParkedCalls::Visit::kStop;  // waiters retry
      absl::StatusOr<std::optional<farm::v1::Job>> job = LoadQueued(txn, **seq);
      if (!job.ok()) return ParkedCalls::Visit::kStop;
      if (!job->has_value()) continue;
      absl::StatusOr<farm::v1::LeaseResponse> resp = Grant(txn, **std::move(job), w.agent);
      if (!resp.ok()) return ParkedCalls::Visit::kStop;
      ReplyAfterCommit(txn, w.done, *std::move(resp));
      return ParkedCalls::Visit::kTake;
    }
  });
}

}  // namespace farm::coordinator
