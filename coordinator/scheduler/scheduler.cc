#include "coordinator/scheduler/scheduler.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/backoff.h"
#include "common/features.h"
#include "common/grpc_status.h"
#include "common/job_limits.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/text.h"
#include "coordinator/store/keys.h"

namespace farm::coordinator {
namespace {

// A failure that is the store's (not the caller's) fails the whole group, so that nothing of a
// half-done change is committed.
bool StoreFailure(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsInternal(s) || absl::IsDataLoss(s) || absl::IsUnknown(s);
}

// Answers `done` with `r`'s error at once, or with its value after the commit.
template <typename T>
void Answer(Txn& txn, const Done<T>& done, absl::StatusOr<T> r) {
  if (r.ok()) return ReplyAfterCommit(txn, done, *std::move(r));
  if (StoreFailure(r.status()) && !txn.failed()) txn.Fail(r.status());
  done(r.status());
}

void AnswerAck(Txn& txn, const Done<farm::v1::Ack>& done, const absl::Status& s) {
  if (s.ok()) return Answer<farm::v1::Ack>(txn, done, farm::v1::Ack());
  Answer<farm::v1::Ack>(txn, done, s);
}

}  // namespace

Scheduler::Scheduler(Store* store, common::Clock* clock, FollowerHub* hub, SchedulerOptions options,
                     EngineOptions engine_options)
    : store_(store),
      clock_(clock),
      options_(options),
      engine_(store, clock, engine_options),
      flow_(options.flow.has_value() ? std::make_unique<FlowMetrics>(*options.flow, &label_sets_)
                                     : nullptr),
      queue_(&label_sets_, options.queue_window),
      leases_(clock, options.lease_ttl_ms),
      events_(clock, &label_sets_, hub, options.event_retention_ms),
      retention_(clock, options.retention, &job_counts_),
      agents_(clock, &events_, options.lease_ttl_ms, options.forget_agent_after_ms),
      parked_(&engine_),
      logs_(options.max_log_bytes_per_job, options.redaction),
      lifecycle_({clock, &queue_, &groups_, &pipelines_, &events_, hub, &retention_, &job_counts_,
                  flow_.get()}),
      request_ids_(clock, options.request_id_retention_ms),
      attempts_({clock, &leases_, &logs_, &lifecycle_, &events_, options.agent_loss_retries,
                 flow_.get()}),
      heartbeats_(clock, &leases_, &agents_, &parked_),
      dispatcher_({clock, &queue_, &leases_, &agents_, &parked_, &logs_, &lifecycle_, &events_}),
      intake_({clock, &request_ids_, &lifecycle_, &pipelines_, &attempts_, &heartbeats_, &events_}),
      reads_(store) {
  engine_.SetWriteFailureHandler([this](const absl::Status&) { RecoverAfterFailedWrite(); });
  engine_.SetCommandEpilogue([this](Txn& txn) { dispatcher_.DispatchNewWork(txn); });
}

Scheduler::~Scheduler() { Stop(); }

absl::Status Scheduler::Init() { return Recover(); }

absl::Status Scheduler::Recover() {
  FARM_RETURN_IF_ERROR(job_counts_.Load(store_));
  FARM_RETURN_IF_ERROR(label_sets_.Recover(store_));
  queue_.Reset();
  FARM_RETURN_IF_ERROR(queue_.RecoverPauses(store_));
  FARM_RETURN_IF_ERROR(groups_.Recover(store_));
  FARM_RETURN_IF_ERROR(pipelines_.Recover(store_));
  FARM_RETURN_IF_ERROR(intake_.Recover(store_));
  FARM_RETURN_IF_ERROR(leases_.Recover(store_));
  logs_.Clear();
  for (const auto& [holder, seqs] : leases_.ByHolder()) {
    for (uint64_t seq : seqs) {
      const ::farm::coordinator::Lease* lease = leases_.Find(seq);
      FARM_RETURN_IF_ERROR(logs_.RecoverJob(store_, seq, lease->attempt, lease->job.spec()));
    }
  }
  FARM_RETURN_IF_ERROR(agents_.Recover(store_));
  FARM_RETURN_IF_ERROR(retention_.Recover(store_));
  return events_.Recover(store_);
}

void Scheduler::RecoverAfterFailedWrite() {
  // Memory may hold changes of the failed group: rebuild it from what is durable. Reading can
  // fail too while the store reopens after a full disk; then retry (every command waits, which
  // is right: none could commit). Only corrupt records stop the coordinator.
  common::Backoff backoff(/*initial_ms=*/50, /*max_ms=*/5'000);
  for (int tries = 1;; ++tries) {
    absl::Status s = Recover();
    if (s.ok()) {
      if (tries > 1) FARM_LOG(INFO) << "state reloaded after " << tries << " tries";
      return;
    }
    FARM_CHECK(!absl::IsDataLoss(s)) << "cannot reload state after a failed write: " << s;
    FARM_LOG(WARNING) << "cannot reload state after a failed write (try " << tries << "): " << s;
    if (!engine_.SleepUnlessStopping(absl::Milliseconds(backoff.NextDelayMs()))) {
      FARM_LOG(ERROR) << "stopping without reloading state; nothing more will be written";
      engine_.StopWriting();
      return;
    }
  }
}

void Scheduler::Start() {
  started_ = true;
  engine_.Start();
  engine_.Post([this](Txn& txn) {
    if (absl::Status s = intake_.ResolveWaiting(txn); !s.ok()) {
      // Tried again at the next start; the jobs stay WAITING meanwhile.
      FARM_LOG(ERROR) << "cannot re-resolve waiting jobs: " << s;
      if (!txn.failed()) txn.Fail(s);
    }
    ArmSweep();
  });
}

void Scheduler::StopParking() {
  if (!started_) return;  // nothing can be parked, and no thread would run the command
  absl::Notification done;
  const bool posted = engine_.Post([this, &done](Txn&) {
    parking_stopped_ = true;
    for (LeaseWaiter& w : parked_.TakeAllLeases()) w.done(Stopping());
    for (HeartbeatWaiter& w : parked_.TakeAllHeartbeats()) {
      heartbeats_.Forget(w);
      w.done(Stopping());
    }
    done.Notify();
  });
  if (posted) done.WaitForNotification();
}

void Scheduler::Stop() {
  StopParking();
  engine_.Stop();
}

bool Scheduler::Post(Engine::Command cmd, const std::function<void(absl::Status)>& fail) {
  if (engine_.Post(std::move(cmd))) return true;
  fail(Stopping());
  return false;
}

// ---------------------------------------------------------------------------------------------
// Users

void Scheduler::Submit(farm::v1::JobSpec spec, std::string request_id,
                       Done<farm::v1::SubmitJobResponse> done, std::string by) {
  common::ApplyJobDefaults(spec);
  if (absl::Status s = common::ValidateJobSpec(spec); !s.ok()) return done(s);
  if (absl::Status s = RequestIds::Validate(request_id); !s.ok()) return done(s);
  Post(
      [this, spec = std::move(spec), request_id = std::move(request_id), done,
       by = std::move(by)](Txn& txn) mutable {
        bool existing = false;
        absl::StatusOr<std::string> id =
            intake_.Submit(txn, std::move(spec), request_id, &existing, by);
        if (!id.ok()) return Answer<farm::v1::SubmitJobResponse>(txn, done, id.status());
        farm::v1::SubmitJobResponse resp;
        resp.set_job_id(*id);
        resp.set_existing(existing);
        // Answered after the commit also when it existed: the original may be in this group.
        Answer<farm::v1::SubmitJobResponse>(txn, done, std::move(resp));
      },
      [&](absl::Status s) { done(s); });
}

void Scheduler::Cancel(std::string job_id, Done<farm::v1::Job> done) {
  const std::optional<uint64_t> seq = keys::ParseJobId(job_id);
  if (!seq.has_value()) {
    return done(absl::NotFoundError(absl::StrCat("job ", common::Quote(job_id), " not found")));
  }
  Post([this, seq = *seq, done](Txn& txn) { Answer(txn, done, intake_.Cancel(txn, seq)); },
       [&](absl::Status s) { done(s); });
}

void Scheduler::SubmitPipeline(farm::v1::PipelineSpec spec, std::string request_id,
                               Done<farm::v1::SubmitPipelineResponse> done, std::string by) {
  if (absl::Status s = RequestIds::Validate(request_id); !s.ok()) return done(s);
  absl::StatusOr<std::vector<common::ExpandedJob>> expanded = common::ExpandPipeline(spec);
  if (!expanded.ok()) return done(expanded.status());
  if (absl::Status s = PipelineGraph::CheckRecordSize(*expanded); !s.ok()) return done(s);
  Post(
      [this, name = spec.name(), jobs = std::move(*expanded), request_id, done,
       by = std::move(by)](Txn& txn) mutable {
        bool existing = false;
        absl::StatusOr<farm::v1::Pipeline> pipeline =
            intake_.SubmitPipeline(txn, name, std::move(jobs), request_id, &existing, by);
        if (!pipeline.ok()) {
          return Answer<farm::v1::SubmitPipelineResponse>(txn, done, pipeline.status());
        }
        farm::v1::SubmitPipelineResponse resp;
        *resp.mutable_pipeline() = *std::move(pipeline);
        resp.set_existing(existing);
        Answer<farm::v1::SubmitPipelineResponse>(txn, done, std::move(resp));
      },
      [&](absl::Status s) { done(s); });
}

void Scheduler::CancelPipeline(std::string pipeline_id, Done<farm::v1::Pipeline> done) {
  const std::optional<uint64_t> pseq = keys::ParsePipelineId(pipeline_id);
  if (!pseq.has_value()) {
    return done(
        absl::NotFoundError(absl::StrCat("pipeline ", common::Quote(pipeline_id), " not found")));
  }
  Post([this, pseq = *pseq,
        done](Txn& txn) { Answer(txn, done, intake_.CancelPipeline(txn, pseq)); },
       [&](absl::Status s) { done(s); });
}

absl::StatusOr<farm::v1::Job> Scheduler::GetJob(absl::string_view job_id) const {
  return reads_.GetJob(job_id);
}

absl::StatusOr<farm::v1::ListJobsResponse> Scheduler::ListJobs(
    const farm::v1::ListJobsRequest& req) const {
  return reads_.ListJobs(req);
}

absl::StatusOr<farm::v1::Pipeline> Scheduler::GetPipeline(absl::string_view pipeline_id) const {
  return reads_.GetPipeline(pipeline_id);
}

absl::StatusOr<farm::v1::ListPipelinesResponse> Scheduler::ListPipelines(
    const farm::v1::ListPipelinesRequest& req) const {
  return reads_.ListPipelines(req);
}

// ---------------------------------------------------------------------------------------------
// Agents

void Scheduler::Register(farm::v1::RegisterRequest req, Done<farm::v1::RegisterResponse> done) {
  if (req.name().empty() || req.name().size() > common::kMaxNameBytes) {
    return done(absl::InvalidArgumentError(
        absl::StrCat("agent name must be 1 to ", common::kMaxNameBytes, " bytes")));
  }
  if (req.slots() < 1 || req.slots() > 1024) {
    return done(absl::InvalidArgumentError(
        absl::StrCat("slots ", req.slots(), " is out of range [1, 1024]")));
  }
  if (req.labels_size() > common::kMaxLabels) {
    return done(absl::InvalidArgumentError(
        absl::StrCat("an agent may have at most ", common::kMaxLabels, " labels")));
  }
  Post([this, req = std::move(req), done](Txn& txn) mutable { RegisterNow(txn, req, done); },
       [&](absl::Status s) { done(s); });
}

void Scheduler::RegisterNow(Txn& txn, const farm::v1::RegisterRequest& req,
                            Done<farm::v1::RegisterResponse>& done) {
  bool superseded = false;
  agents_.Register(txn, req, &superseded);
  if (superseded) {
    // The agent restarted: whatever its old process was running is gone with it.
    for (uint64_t seq : leases_.HeldBy(req.name())) {
      FARM_LOG(WARNING) << "[job=" << seq << " agent=" << req.name()
                        << "] agent restarted; releasing its lease";
      absl::Status s = attempts_.EndAttempt(txn, seq, farm::v1::ATTEMPT_LOST,
                                            absl::StrCat("agent ", req.name(), " restarted"));
      if (!s.ok()) return done(s);
    }
    parked_.VisitLeases([&](LeaseWaiter& w) {
      if (w.agent != req.name()) return ParkedCalls::Visit::kKeep;
      w.done(
          common::WithReason(absl::FailedPreconditionError(absl::StrCat(
                                 "agent ", req.name(), " has registered again with a new session")),
                             common::kReasonAgentSessionSuperseded));
      return ParkedCalls::Visit::kTake;
    });
  }
  FARM_LOG(INFO) << "[agent=" << req.name() << "] registered with " << req.slots() << " slots";
  farm::v1::RegisterResponse resp;
  resp.set_lease_ttl_ms(options_.lease_ttl_ms);
  resp.set_heartbeat_interval_ms(std::max<int64_t>(options_.lease_ttl_ms / 3, 100));
  resp.add_features(std::string(common::kFeatureCompleteJobLastStep));
  resp.add_features(std::string(common::kFeatureCompleteJobNextLease));
  ReplyAfterCommit(txn, done, std::move(resp));
}

void Scheduler::Lease(farm::v1::LeaseRequest req, int64_t wait_ms, uint64_t call_id,
                      Done<farm::v1::LeaseResponse> done) {
  Post(
      [this, req = std::move(req), wait_ms, call_id, done](Txn& txn) mutable {
        dispatcher_.Lease(txn, req, wait_ms, call_id, std::move(done), !parking_stopped_);
      },
      [&](absl::Status s) { done(s); });
}

void Scheduler::Heartbeat(farm::v1::HeartbeatRequest req, int64_t wait_ms, uint64_t call_id,
                          Done<farm::v1::HeartbeatResponse> done) {
  Post(
      [this, req = std::move(req), wait_ms, call_id, done](Txn& txn) mutable {
        heartbeats_.Heartbeat(txn, std::move(req), wait_ms, call_id, std::move(done),
                              !parking_stopped_);
      },
      [&](absl::Status s) { done(s); });
}

void Scheduler::CancelWait(uint64_t call_id) {
  engine_.Post([this, call_id](Txn&) {
    if (std::optional<LeaseWaiter> w = parked_.TakeLease(call_id)) {
      return w->done(absl::CancelledError("lease call cancelled"));
    }
    if (std::optional<HeartbeatWaiter> w = parked_.TakeHeartbeat(call_id)) {
      heartbeats_.Forget(*w);
      w->done(absl::CancelledError("heartbeat call cancelled"));
    }
  });
}

void Scheduler::AppendLog(farm::v1::LogUploadChunk chunk, Done<int64_t> done, std::string holder) {
  Post([this, chunk = std::move(chunk), holder = std::move(holder),
        done](Txn& txn) { Answer(txn, done, attempts_.AppendLog(txn, chunk, holder)); },
       [&](absl::Status s) { done(s); });
}

void Scheduler::StepStarted(farm::v1::StepStartedRequest req, Done<farm::v1::Ack> done,
                            std::string holder) {
  Post([this, req = std::move(req), holder = std::move(holder),
        done](Txn& txn) { AnswerAck(txn, done, attempts_.StepStarted(txn, req, holder)); },
       [&](absl::Status s) { done(s); });
}

void Scheduler::StepFinished(farm::v1::StepFinishedRequest req, Done<farm::v1::Ack> done,
                             std::string holder) {
  Post([this, req = std::move(req), holder = std::move(holder),
        done](Txn& txn) { AnswerAck(txn, done, attempts_.StepFinished(txn, req, holder)); },
       [&](absl::Status s) { done(s); });
}

void Scheduler::CompleteJob(farm::v1::CompleteJobRequest req,
                            Done<farm::v1::CompleteJobResponse> done, std::string holder) {
  const auto outcome = req.outcome();
  if (outcome != farm::v1::ATTEMPT_SUCCEEDED && outcome != farm::v1::ATTEMPT_FAILED &&
      outcome != farm::v1::ATTEMPT_CANCELLED) {
    return done(absl::InvalidArgumentError(
        "outcome must be ATTEMPT_SUCCEEDED, ATTEMPT_FAILED or ATTEMPT_CANCELLED"));
  }
  // Artifacts come from agents: untrusted.
  if (absl::Status s = common::ValidateArtifacts(req.artifacts()); !s.ok()) return done(s);
  if (req.artifacts().empty() || !artifact_check_) {
    return PostCompletion(std::move(req), std::move(done), std::move(holder));
  }
  // Pinned first (off this thread and off the engine's), then completed: a completion that is
  // refused later (a stale lease) only kept its blobs a while longer.
  auto shared = std::make_shared<farm::v1::CompleteJobRequest>(std::move(req));
  artifact_check_(shared->artifacts(), [this, shared, done, holder](absl::Status s) {
    if (!s.ok()) return done(s);
    PostCompletion(std::move(*shared), done, holder);
  });
}

void Scheduler::PostCompletion(farm::v1::CompleteJobRequest req,
                               Done<farm::v1::CompleteJobResponse> done, std::string holder) {
  Post([this, req = std::move(req), holder = std::move(holder),
        done](Txn& txn) { CompleteNow(txn, req, holder, done); },
       [&](absl::Status s) { done(s); });
}

void Scheduler::CompleteNow(Txn& txn, const farm::v1::CompleteJobRequest& req,
                            const std::string& holder,
                            const Done<farm::v1::CompleteJobResponse>& done) {
  // Only the holder of the lease may take its next job with the completion.
  const std::optional<uint64_t> seq = keys::ParseJobId(req.lease().job_id());
  const coordinator::Lease* held = seq.has_value() ? leases_.Find(*seq) : nullptr;
  const bool is_holder = held != nullptr && held->holder == req.agent();
  absl::StatusOr<bool> ended = attempts_.Complete(txn, req, holder);
  if (!ended.ok()) return Answer<farm::v1::CompleteJobResponse>(txn, done, ended.status());
  farm::v1::CompleteJobResponse resp;
  if (req.lease_next() && !parking_stopped_ && (is_holder || !*ended)) {
    absl::StatusOr<std::optional<farm::v1::LeaseResponse>> next =
        dispatcher_.LeaseAfterCompletion(txn, req, *ended);
    if (!next.ok()) {
      // The completion stands (unless the group failed: then every answer is that error);
      // the agent's slot asks with Lease.
      FARM_LOG(WARNING) << "[agent=" << req.agent()
                        << "] no lease with the completion: " << next.status();
    } else if (next->has_value()) {
      *resp.mutable_next() = **std::move(next);
    }
  }
  ReplyAfterCommit(txn, done, std::move(resp));
}

// ---------------------------------------------------------------------------------------------
// Operators

void Scheduler::ListAgents(Done<farm::v1::ListAgentsResponse> done) {
  Post([this, done](Txn&) mutable { ListAgentsNow(done); }, [&](absl::Status s) { done(s); });
}

void Scheduler::ListAgentsNow(Done<farm::v1::ListAgentsResponse>& done) {
  const std::map<std::string, std::vector<uint64_t>> held = leases_.ByHolder();
  farm::v1::ListAgentsResponse resp;
  for (const auto& [name, agent] : agents_.all()) {
    auto jobs = held.find(name);
    *resp.add_agents() =
        agents_.Info(agent, jobs != held.end() ? jobs->second : std::vector<uint64_t>());
  }
  done(std::move(resp));
}

void Scheduler::SetAgentDrain(std::string name, bool drain, Done<farm::v1::Ack> done) {
  DrainAgent(std::move(name), drain, "", [done](absl::StatusOr<farm::v1::AgentInfo> info) {
    if (!info.ok()) return done(info.status());
    done(farm::v1::Ack());
  });
}

// ---------------------------------------------------------------------------------------------
// Sweeps

void Scheduler::ArmSweep() {
  const int64_t period = std::clamp<int64_t>(options_.lease_ttl_ms / 10, 50, 1000);
  engine_.AddTimer(clock_->MonotonicMs() + period, [this](Txn& txn) {
    Sweep(txn);
    ArmSweep();
  });
}

void Scheduler::Sweep(Txn& txn) {
  if (!attempts_.ExpireLeases(txn).ok()) return;  // the group failed; the next sweep retries
  if (absl::Status s = request_ids_.Sweep(txn); !s.ok()) {
    FARM_LOG(WARNING) << "expiring request ids: " << s;
  }
  std::set<std::string> holders;
  for (const auto& [holder, seqs] : leases_.ByHolder()) holders.insert(holder);
  agents_.Sweep(txn, holders);
  if (absl::Status s = events_.Sweep(txn); !s.ok()) FARM_LOG(WARNING) << "expiring events: " << s;
  if (absl::StatusOr<RetentionReport> r = retention_.Sweep(txn); !r.ok()) {
    // Part of the pass may be in the group: none of it is written; the next sweep retries.
    FARM_LOG(WARNING) << "removing finished jobs past their retention: " << r.status();
    if (!txn.failed()) txn.Fail(r.status());
  }
}

}  // namespace farm::coordinator
