#include "coordinator/scheduler/scheduler.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/backoff.h"
#include "common/features.h"
#include "common/job_limits.h"
#include "common/job_state.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "coordinator/logs/log_reader.h"
#include "coordinator/scheduler/internal.h"

namespace farm::coordinator {
namespace {

using farm::v1::Attempt;
using farm::v1::Job;
using farm::v1::JobState;
using farm::v1::StepState;
using internal::ReplyAfterCommit;
using internal::Stopping;
using internal::ToMap;

using common::IsTerminal;
using common::StepDone;

bool LabelsMatch(const std::map<std::string, std::string>& agent,
                 const std::map<std::string, std::string>& required) {
  for (const auto& [k, v] : required) {
    auto it = agent.find(k);
    if (it == agent.end() || it->second != v) return false;
  }
  return true;
}

std::string LeaseName(const farm::v1::LeaseRef& ref) {
  return absl::StrCat("job ", ref.job_id(), " attempt ", ref.attempt(), " (epoch ", ref.epoch(),
                      ")");
}

}  // namespace

Scheduler::Scheduler(Store* store, common::Clock* clock, LogHub* hub, SchedulerOptions options,
                     EngineOptions engine_options)
    : store_(store),
      clock_(clock),
      hub_(hub),
      options_(options),
      engine_(store, clock, engine_options) {
  engine_.SetWriteFailureHandler([this](const absl::Status&) { RecoverAfterFailedWrite(); });
}

Scheduler::~Scheduler() { Stop(); }

absl::Status Scheduler::Init() { return Recover(); }

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
  engine_.Post([this](Txn&) { ArmSweep(); });
}

void Scheduler::StopParking() {
  if (!started_) return;  // nothing can be parked, and no thread would run the command
  absl::Notification done;
  const bool posted = engine_.Post([this, &done](Txn&) {
    parking_stopped_ = true;
    while (!lease_waiters_.empty()) {
      LeaseWaiter w = std::move(lease_waiters_.front());
      lease_waiters_.pop_front();
      lease_waiter_index_.erase(w.call_id);
      engine_.CancelTimer(w.timer);
      w.done(Stopping());
    }
    for (auto& [id, w] : heartbeat_waiters_) {
      engine_.CancelTimer(w.timer);
      auto agent = agents_.find(w.req.agent());
      if (agent != agents_.end()) agent->second.heartbeat_call = 0;
      w.done(Stopping());
    }
    heartbeat_waiters_.clear();
    done.Notify();
  });
  if (posted) done.WaitForNotification();
}

void Scheduler::Stop() {
  StopParking();
  engine_.Stop();
}

uint64_t Scheduler::NewCallId() { return next_call_id_.fetch_add(1); }

bool Scheduler::PostOrFail(Engine::Command cmd, const std::function<void(absl::Status)>& fail) {
  if (engine_.Post(std::move(cmd))) return true;
  fail(Stopping());
  return false;
}

// ---------------------------------------------------------------------------------------------
// Recovery

absl::Status Scheduler::Recover() {
  auto read_counter = [this](absl::string_view key) -> absl::StatusOr<uint64_t> {
    FARM_ASSIGN_OR_RETURN(auto v, store_->Get(Cf::kMeta, key));
    if (!v.has_value()) return 0;
    if (v->size() != 8) return absl::DataLossError(absl::StrCat("meta ", key, " is malformed"));
    return keys::ReadU64(*v, 0);
  };
  FARM_ASSIGN_OR_RETURN(next_seq_, read_counter(keys::kNextSeq));
  FARM_ASSIGN_OR_RETURN(next_epoch_, read_counter(keys::kNextEpoch));
  FARM_ASSIGN_OR_RETURN(next_pipeline_seq_, read_counter(keys::kNextPipelineSeq));
  FARM_RETURN_IF_ERROR(RecoverGroups());

  labelsets_.clear();
  const std::string ls_prefix(keys::kLabelSetPrefix);
  FARM_RETURN_IF_ERROR(store_->Scan(Cf::kMeta, ls_prefix, keys::PrefixEnd(ls_prefix),
                                    [&](absl::string_view key, absl::string_view value) {
                                      if (key.size() != ls_prefix.size() + 8) return true;
                                      LabelSet& ls =
                                          labelsets_[keys::ReadU64(key, ls_prefix.size())];
                                      ls.labels = keys::ParseCanonicalLabels(value);
                                      return true;
                                    }));

  std::map<uint64_t, ActiveLease> old = std::move(active_);
  active_.clear();
  for (auto& [name, agent] : agents_) agent.jobs.clear();
  std::vector<uint64_t> seqs;
  FARM_RETURN_IF_ERROR(
      store_->Scan(Cf::kActive, "", "", [&](absl::string_view key, absl::string_view) {
        if (key.size() == 8) seqs.push_back(keys::ReadU64(key, 0));
        return true;
      }));
  const int64_t now = clock_->MonotonicMs();
  for (uint64_t seq : seqs) {
    FARM_ASSIGN_OR_RETURN(auto raw, store_->Get(Cf::kJobs, keys::JobKey(seq)));
    Job job;
    if (!raw.has_value() || !job.ParseFromString(*raw) || job.attempts().empty()) {
      return absl::DataLossError(absl::StrCat("active job ", seq, " has no valid record"));
    }
    const Attempt& at = job.attempts(job.attempts_size() - 1);
    ActiveLease lease;
    lease.attempt = at.number();
    lease.epoch = at.epoch();
    lease.agent = at.agent();
    // A restart must not cost a healthy agent its lease: give it a full TTL to reconnect.
    auto prev = old.find(seq);
    lease.expires_ms = prev != old.end() && prev->second.epoch == lease.epoch
                           ? std::max(prev->second.expires_ms, now)
                           : now + options_.lease_ttl_ms;
    lease.cancel_delivered = prev != old.end() && prev->second.cancel_delivered;
    lease.log_len.assign(job.spec().steps_size(), 0);
    for (int i = 0; i < job.spec().steps_size(); ++i) {
      FARM_ASSIGN_OR_RETURN(lease.log_len[i], CommittedLogLength(store_, seq, lease.attempt,
                                                                 static_cast<uint32_t>(i)));
      lease.log_total += lease.log_len[i];
    }
    lease.job = std::move(job);
    auto agent = agents_.find(lease.agent);
    if (agent != agents_.end()) agent->second.jobs.insert(seq);
    active_.emplace(seq, std::move(lease));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<Job>> Scheduler::LoadJob(Txn& txn, uint64_t seq) {
  FARM_ASSIGN_OR_RETURN(auto raw, txn.Get(Cf::kJobs, keys::JobKey(seq)));
  if (!raw.has_value()) return std::nullopt;
  Job job;
  if (!job.ParseFromString(*raw)) {
    return absl::DataLossError(absl::StrCat("job ", seq, " record is corrupt"));
  }
  return job;
}

void Scheduler::PutJob(Txn& txn, const Job& job) {
  txn.Put(Cf::kJobs, keys::JobKey(job.seq()), job.SerializeAsString());
}

void Scheduler::NotifyAfterCommit(Txn& txn, uint64_t seq) {
  txn.OnCommit([this, seq](const absl::Status& s) {
    if (s.ok()) hub_->Notify(seq);
  });
}

// ---------------------------------------------------------------------------------------------
// The queue

Scheduler::LabelSet& Scheduler::LabelSetFor(Txn& txn, const farm::v1::JobSpec& spec, uint64_t* id) {
  const std::string canonical = keys::CanonicalLabels(ToMap(spec.labels()));
  *id = keys::LabelSetId(canonical);
  auto it = labelsets_.find(*id);
  if (it != labelsets_.end()) return it->second;
  std::string key(keys::kLabelSetPrefix);
  keys::AppendU64(key, *id);
  txn.Put(Cf::kMeta, key, canonical);
  LabelSet& ls = labelsets_[*id];
  ls.labels = ToMap(spec.labels());
  // A brand-new set has nothing queued yet, so an empty window is the whole set.
  ls.complete = true;
  return ls;
}

keys::QueueKey Scheduler::QueueKeyFor(const Job& job, uint64_t labelset) const {
  keys::QueueKey k;
  k.labelset = labelset;
  k.priority = job.spec().priority();
  k.pos = job.attempts().empty()
              ? keys::NewJobPosition(job.seq())
              : keys::RequeuePosition(job.attempts(job.attempts_size() - 1).epoch());
  return k;
}

absl::Status Scheduler::Enqueue(Txn& txn, Job& job) {
  uint64_t id = 0;
  LabelSet& ls = LabelSetFor(txn, job.spec(), &id);
  const keys::QueueKey key = QueueKeyFor(job, id);
  job.set_state(farm::v1::QUEUED);
  PutJob(txn, job);
  std::string encoded = key.Encode();
  // A key below the refill bound (a higher priority) moves the bound down to it.
  if (!ls.scan_from.empty() && encoded < ls.scan_from) ls.scan_from = encoded;
  txn.Put(Cf::kQueue, std::move(encoded), keys::U64(job.seq()));
  if (ls.window.empty() && !ls.complete) FARM_RETURN_IF_ERROR(RefillWindow(txn, id, ls));
  // Keep the window a prefix of the set's dispatch order.
  if (ls.complete || (!ls.window.empty() && key < ls.window.rbegin()->first)) {
    ls.window.emplace(key, job.seq());
    if (ls.window.size() > 2 * options_.queue_window) {
      ls.window.erase(std::prev(ls.window.end()));
      ls.complete = false;
    }
  }
  DispatchToWaiters(txn, id);
  return absl::OkStatus();
}

absl::Status Scheduler::RefillWindow(Txn& txn, uint64_t id, LabelSet& ls) {
  ls.window.clear();
  const std::string prefix = keys::QueuePrefix(id);
  const std::string& start = ls.scan_from.empty() ? prefix : ls.scan_from;
  size_t seen = 0;
  FARM_RETURN_IF_ERROR(txn.Scan(Cf::kQueue, start, keys::PrefixEnd(prefix),
                                [&](absl::string_view key, absl::string_view value) {
                                  if (key.size() != 20 || value.size() != 8) return true;
                                  ++seen;
                                  if (seen > options_.queue_window) return false;
                                  ls.window.emplace(keys::QueueKey::Decode(key),
                                                    keys::ReadU64(value, 0));
                                  return true;
                                }));
  ls.complete = seen <= options_.queue_window;
  return absl::OkStatus();
}

absl::StatusOr<std::optional<uint64_t>> Scheduler::PopFor(Txn& txn, const Agent& agent) {
  LabelSet* best = nullptr;
  for (auto& [id, ls] : labelsets_) {
    if (!LabelsMatch(agent.labels, ls.labels)) continue;
    if (ls.window.empty() && !ls.complete) FARM_RETURN_IF_ERROR(RefillWindow(txn, id, ls));
    if (ls.window.empty()) continue;
    if (best == nullptr || ls.window.begin()->first < best->window.begin()->first) best = &ls;
  }
  if (best == nullptr) return std::nullopt;
  auto head = best->window.begin();
  const uint64_t seq = head->second;
  // The window is a prefix of the set's order, so the head is its smallest queued key.
  best->scan_from = head->first.Encode();
  txn.Delete(Cf::kQueue, best->scan_from);
  best->window.erase(head);
  return seq;
}

void Scheduler::RemoveFromQueue(Txn& txn, const Job& job) {
  const std::string canonical = keys::CanonicalLabels(ToMap(job.spec().labels()));
  const uint64_t id = keys::LabelSetId(canonical);
  const keys::QueueKey key = QueueKeyFor(job, id);
  txn.Delete(Cf::kQueue, key.Encode());
  auto it = labelsets_.find(id);
  if (it != labelsets_.end()) it->second.window.erase(key);
}

// ---------------------------------------------------------------------------------------------
// Leases

farm::v1::LeaseResponse Scheduler::GrantLease(Txn& txn, Job job, const std::string& agent_name) {
  const uint64_t epoch = ++next_epoch_;
  txn.Put(Cf::kMeta, std::string(keys::kNextEpoch), keys::U64(next_epoch_));
  const int64_t now = clock_->NowMs();
  Attempt* at = job.add_attempts();
  at->set_number(static_cast<uint32_t>(job.attempts_size()));
  at->set_agent(agent_name);
  at->set_epoch(epoch);
  at->set_started_ms(now);
  at->set_outcome(farm::v1::ATTEMPT_RUNNING);
  for (const auto& step : job.spec().steps()) {
    farm::v1::StepResult* r = at->add_steps();
    r->set_name(step.name());
    r->set_state(farm::v1::STEP_PENDING);
  }
  job.set_state(farm::v1::RUNNING);
  if (job.started_ms() == 0) job.set_started_ms(now);
  PutJob(txn, job);
  txn.Put(Cf::kActive, keys::JobKey(job.seq()), "");

  ActiveLease lease;
  lease.attempt = at->number();
  lease.epoch = epoch;
  lease.agent = agent_name;
  lease.expires_ms = clock_->MonotonicMs() + options_.lease_ttl_ms;
  lease.log_len.assign(job.spec().steps_size(), 0);

  farm::v1::LeaseResponse resp;
  resp.mutable_lease()->set_job_id(job.id());
  resp.mutable_lease()->set_attempt(lease.attempt);
  resp.mutable_lease()->set_epoch(epoch);
  *resp.mutable_job() = job;
  NotifyAfterCommit(txn, job.seq());

  agents_[agent_name].jobs.insert(job.seq());
  lease.job = std::move(job);
  active_[lease.job.seq()] = std::move(lease);
  return resp;
}

void Scheduler::AnswerLeaseWaiter(Txn& txn, LeaseWaiter waiter, farm::v1::LeaseResponse resp) {
  engine_.CancelTimer(waiter.timer);
  ReplyAfterCommit(txn, waiter.done, std::move(resp));
}

void Scheduler::DispatchToWaiters(Txn& txn, uint64_t labelset) {
  auto ls_it = labelsets_.find(labelset);
  if (ls_it == labelsets_.end()) return;
  LabelSet& ls = ls_it->second;
  const int64_t now = clock_->MonotonicMs();
  for (auto it = lease_waiters_.begin(); it != lease_waiters_.end();) {
    if (it->due_ms <= now) {
      // Its wait is over (its timer has not run yet, e.g. after the process was paused):
      // the client may have given up, so it must not be handed a lease.
      LeaseWaiter expired = std::move(*it);
      lease_waiter_index_.erase(expired.call_id);
      it = lease_waiters_.erase(it);
      engine_.CancelTimer(expired.timer);
      expired.done(farm::v1::LeaseResponse());
      continue;
    }
    if (ls.window.empty() && !ls.complete) {
      if (!RefillWindow(txn, labelset, ls).ok()) return;  // the waiters retry on their own
    }
    if (ls.window.empty()) return;
    auto agent = agents_.find(it->agent);
    if (agent == agents_.end() || !LabelsMatch(agent->second.labels, ls.labels)) {
      ++it;
      continue;
    }
    auto head = ls.window.begin();
    const uint64_t seq = head->second;
    auto job = LoadJob(txn, seq);
    txn.Delete(Cf::kQueue, head->first.Encode());
    ls.window.erase(head);
    if (!job.ok() || !job->has_value()) {
      FARM_LOG(ERROR) << "queued job " << seq << " has no readable record; dropped from queue";
      continue;
    }
    LeaseWaiter waiter = std::move(*it);
    lease_waiter_index_.erase(waiter.call_id);
    it = lease_waiters_.erase(it);
    farm::v1::LeaseResponse resp = GrantLease(txn, std::move(**job), waiter.agent);
    AnswerLeaseWaiter(txn, std::move(waiter), std::move(resp));
  }
}

absl::StatusOr<Scheduler::ActiveLease*> Scheduler::CheckLease(const farm::v1::LeaseRef& ref) {
  auto seq = keys::ParseJobId(ref.job_id());
  if (!seq.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat("\"", ref.job_id(), "\" is not a job id"));
  }
  auto it = active_.find(*seq);
  if (it == active_.end() || it->second.epoch != ref.epoch() ||
      it->second.attempt != ref.attempt()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the lease of ", LeaseName(ref), " is no longer valid"));
  }
  return &it->second;
}

void Scheduler::EndAttempt(
    Txn& txn, uint64_t seq, farm::v1::AttemptOutcome outcome, const std::string& reason,
    const google::protobuf::RepeatedPtrField<farm::v1::Artifact>* artifacts) {
  auto it = active_.find(seq);
  FARM_CHECK(it != active_.end());
  Job job = std::move(it->second.job);
  const std::string agent_name = it->second.agent;
  active_.erase(it);
  auto agent = agents_.find(agent_name);
  if (agent != agents_.end()) agent->second.jobs.erase(seq);
  txn.Delete(Cf::kActive, keys::JobKey(seq));

  const int64_t now = clock_->NowMs();
  Attempt* at = job.mutable_attempts(job.attempts_size() - 1);
  at->set_outcome(outcome);
  at->set_ended_ms(now);
  at->set_reason(reason);
  if (artifacts != nullptr) *at->mutable_artifacts() = *artifacts;
  for (auto& step : *at->mutable_steps()) {
    if (step.state() == farm::v1::STEP_RUNNING) {
      step.set_state(outcome == farm::v1::ATTEMPT_CANCELLED ? farm::v1::STEP_CANCELLED
                                                            : farm::v1::STEP_FAILED);
      if (step.started_ms() > 0) step.set_duration_ms(now - step.started_ms());
    } else if (!StepDone(step.state())) {
      step.set_state(farm::v1::STEP_SKIPPED);
    }
  }

  JobState final_state = farm::v1::JOB_STATE_UNSPECIFIED;
  std::string job_reason = reason;
  switch (outcome) {
    case farm::v1::ATTEMPT_SUCCEEDED:
      final_state = farm::v1::SUCCEEDED;
      break;
    case farm::v1::ATTEMPT_CANCELLED:
      final_state = farm::v1::CANCELLED;
      break;
    case farm::v1::ATTEMPT_LOST: {
      if (job.cancel_requested()) {
        final_state = farm::v1::CANCELLED;
        job_reason = "cancelled by user";
        break;
      }
      int lost = 0;
      for (const auto& a : job.attempts()) lost += a.outcome() == farm::v1::ATTEMPT_LOST;
      if (lost <= options_.agent_loss_retries) {
        job.set_reason(absl::StrCat("requeued: ", reason));
        absl::Status s = Enqueue(txn, job);
        if (s.ok()) {
          NotifyAfterCommit(txn, seq);
          return;
        }
        FARM_LOG(ERROR) << "[job=" << seq << "] cannot requeue: " << s;
      }
      final_state = farm::v1::FAILED;
      job_reason = absl::StrCat("agent_lost: ", reason);
      break;
    }
    default:
      if (RetriesAfterFailure(job)) {
        job.set_reason(absl::StrCat("retrying: ", reason));
        absl::Status s = Enqueue(txn, job);
        if (s.ok()) {
          NotifyAfterCommit(txn, seq);
          return;
        }
        FARM_LOG(ERROR) << "[job=" << seq << "] cannot requeue for a retry: " << s;
      }
      final_state = farm::v1::FAILED;
      break;
  }
  job.set_state(final_state);
  job.set_reason(job_reason);
  job.set_finished_ms(now);
  *job.mutable_artifacts() = at->artifacts();
  PutJob(txn, job);
  NotifyAfterCommit(txn, seq);
  JobEnded(txn, job);
}

// ---------------------------------------------------------------------------------------------
// Users

void Scheduler::Submit(farm::v1::JobSpec spec, std::string request_id,
                       Done<farm::v1::SubmitJobResponse> done) {
  common::ApplyJobDefaults(spec);
  if (absl::Status s = common::ValidateJobSpec(spec); !s.ok()) return done(s);
  if (absl::Status s = internal::ValidateRequestId(request_id); !s.ok()) return done(s);
  PostOrFail(
      [this, spec = std::move(spec), request_id = std::move(request_id), done](Txn& txn) mutable {
        farm::v1::SubmitJobResponse resp;
        if (!request_id.empty()) {
          auto existing = txn.Get(Cf::kRequests, keys::RequestKey(request_id));
          if (!existing.ok()) return done(existing.status());
          if (existing->has_value() && (*existing)->size() >= 8) {
            resp.set_job_id(keys::JobId(keys::ReadU64(**existing, 0)));
            resp.set_existing(true);
            // Answer after the group commits: the original submit may be in this same group.
            ReplyAfterCommit(txn, done, resp);
            return;
          }
        }
        const uint64_t seq = ++next_seq_;
        txn.Put(Cf::kMeta, std::string(keys::kNextSeq), keys::U64(next_seq_));
        Job job;
        job.set_id(keys::JobId(seq));
        job.set_seq(seq);
        *job.mutable_spec() = std::move(spec);
        job.set_submitted_ms(clock_->NowMs());
        job.set_request_id(request_id);
        if (!request_id.empty()) {
          std::string v = keys::U64(seq);
          keys::AppendU64(v, static_cast<uint64_t>(job.submitted_ms()));
          txn.Put(Cf::kRequests, keys::RequestKey(request_id), v);
          txn.Put(Cf::kRequests, keys::RequestTimeKey(job.submitted_ms(), request_id), "");
        }
        if (absl::Status s = MakeReady(txn, job); !s.ok()) return done(s);
        resp.set_job_id(job.id());
        NotifyAfterCommit(txn, seq);
        ReplyAfterCommit(txn, done, resp);
      },
      [&](absl::Status s) { done(s); });
}

void Scheduler::Cancel(std::string job_id, Done<Job> done) {
  auto seq = keys::ParseJobId(job_id);
  if (!seq.has_value())
    return done(absl::NotFoundError(absl::StrCat("job ", job_id, " not found")));
  PostOrFail(
      [this, seq = *seq, job_id, done](Txn& txn) {
        auto loaded = LoadJob(txn, seq);
        if (!loaded.ok()) return done(loaded.status());
        if (!loaded->has_value()) {
          return done(absl::NotFoundError(absl::StrCat("job ", job_id, " not found")));
        }
        Job job = std::move(**loaded);
        if (job.state() == farm::v1::CANCELLED) return done(job);
        if (absl::Status s = CancelInTxn(txn, job); !s.ok()) return done(s);
        ReplyAfterCommit(txn, done, job);
      },
      [&](absl::Status s) { done(s); });
}

absl::StatusOr<Job> Scheduler::GetJob(absl::string_view job_id) const {
  auto seq = keys::ParseJobId(job_id);
  if (!seq.has_value()) return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  FARM_ASSIGN_OR_RETURN(auto raw, store_->Get(Cf::kJobs, keys::JobKey(*seq)));
  if (!raw.has_value()) return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  Job job;
  if (!job.ParseFromString(*raw)) {
    return absl::DataLossError(absl::StrCat("job ", job_id, " record is corrupt"));
  }
  return job;
}

absl::StatusOr<farm::v1::ListJobsResponse> Scheduler::ListJobs(
    const farm::v1::ListJobsRequest& req) const {
  // Bounds the work of one call when a state filter matches little.
  constexpr int kMaxScanned = 100'000;
  FARM_ASSIGN_OR_RETURN(internal::Page page,
                        internal::ParsePage(req.limit(), req.page_token(), keys::ParseJobId));
  const int limit = page.limit;
  farm::v1::ListJobsResponse resp;
  int scanned = 0;
  uint64_t last_seq = 0;  // the last job scanned (returned or filtered out)
  bool full = false;      // stopped at the limit, the byte budget or the scan bound
  size_t page_bytes = 0;
  absl::Status parse_error;
  FARM_RETURN_IF_ERROR(store_->Scan(
      Cf::kJobs, "", page.upper,
      [&](absl::string_view key, absl::string_view value) {
        const uint64_t seq = keys::ReadU64(key, 0);
        if (++scanned > kMaxScanned) return !(full = true);
        Job job;
        if (!job.ParseFromString(std::string(value))) {
          parse_error = absl::DataLossError(absl::StrCat("job ", seq, " record is corrupt"));
          return false;
        }
        if (req.state() == farm::v1::JOB_STATE_UNSPECIFIED || job.state() == req.state()) {
          // A page stays far below the gRPC message limit however big the jobs are; one job
          // always fits (a job's spec and artifact list are bounded by job_limits.h).
          if (resp.jobs_size() > 0 && page_bytes + value.size() > internal::Page::kMaxBytes) {
            return !(full = true);
          }
          page_bytes += value.size();
          *resp.add_jobs() = std::move(job);
        }
        last_seq = seq;
        return !(full = resp.jobs_size() >= limit);
      },
      /*reverse=*/true));
  FARM_RETURN_IF_ERROR(parse_error);
  if (full && last_seq > 1) resp.set_next_page_token(keys::JobId(last_seq));
  return resp;
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
  PostOrFail(
      [this, req = std::move(req), done](Txn& txn) {
        Agent& agent = agents_[req.name()];
        if (!agent.session_id.empty() && agent.session_id != req.session_id()) {
          // The agent restarted: whatever its old process was running is gone with it.
          std::vector<uint64_t> old(agent.jobs.begin(), agent.jobs.end());
          for (uint64_t seq : old) {
            FARM_LOG(WARNING) << "[job=" << seq << " agent=" << req.name()
                              << "] agent restarted; releasing its lease";
            EndAttempt(txn, seq, farm::v1::ATTEMPT_LOST,
                       absl::StrCat("agent ", req.name(), " restarted"));
          }
          for (auto it = lease_waiters_.begin(); it != lease_waiters_.end();) {
            if (it->agent != req.name()) {
              ++it;
              continue;
            }
            LeaseWaiter w = std::move(*it);
            lease_waiter_index_.erase(w.call_id);
            it = lease_waiters_.erase(it);
            engine_.CancelTimer(w.timer);
            w.done(absl::FailedPreconditionError("agent session superseded"));
          }
        }
        agent.labels = ToMap(req.labels());
        agent.slots = req.slots();
        agent.session_id = req.session_id();
        agent.version = req.version();
        agent.last_seen_ms = clock_->MonotonicMs();
        agent.last_seen_wall_ms = clock_->NowMs();
        agent.draining = false;
        FARM_LOG(INFO) << "[agent=" << req.name() << "] registered with " << req.slots()
                       << " slots";
        farm::v1::RegisterResponse resp;
        resp.set_lease_ttl_ms(options_.lease_ttl_ms);
        resp.set_heartbeat_interval_ms(std::max<int64_t>(options_.lease_ttl_ms / 3, 100));
        resp.add_features(std::string(common::kFeatureCompleteJobLastStep));
        ReplyAfterCommit(txn, done, resp);
      },
      [&](absl::Status s) { done(s); });
}

absl::StatusOr<Scheduler::Agent*> Scheduler::AgentCall(const std::string& name,
                                                       const std::string& session_id) {
  auto it = agents_.find(name);
  if (it == agents_.end()) {
    // Agents re-register on this message (the coordinator restarted and forgot them).
    return absl::NotFoundError(absl::StrCat("agent ", name, " not registered"));
  }
  Agent& agent = it->second;
  if (agent.session_id != session_id) {
    return absl::FailedPreconditionError(
        absl::StrCat("agent ", name, " has registered again with a new session"));
  }
  agent.last_seen_ms = clock_->MonotonicMs();
  agent.last_seen_wall_ms = clock_->NowMs();
  return &agent;
}

void Scheduler::Lease(farm::v1::LeaseRequest req, int64_t wait_ms, uint64_t call_id,
                      Done<farm::v1::LeaseResponse> done) {
  PostOrFail(
      [this, req = std::move(req), wait_ms, call_id, done](Txn& txn) mutable {
        auto seen = AgentCall(req.agent(), req.session_id());
        if (!seen.ok()) return done(seen.status());
        Agent& agent = **seen;
        if (!agent.draining) {
          auto seq = PopFor(txn, agent);
          if (!seq.ok()) return done(seq.status());
          while (seq->has_value()) {
            auto job = LoadJob(txn, **seq);
            if (!job.ok()) return done(job.status());
            if (job->has_value()) {
              LeaseWaiter w{call_id, req.agent(), std::move(done), 0, 0};
              farm::v1::LeaseResponse resp = GrantLease(txn, std::move(**job), req.agent());
              AnswerLeaseWaiter(txn, std::move(w), std::move(resp));
              return;
            }
            FARM_LOG(ERROR) << "queued job " << **seq << " has no record; dropped from queue";
            seq = PopFor(txn, agent);
            if (!seq.ok()) return done(seq.status());
          }
        }
        if (parking_stopped_) return done(Stopping());
        if (wait_ms <= 0) return done(farm::v1::LeaseResponse());
        LeaseWaiter w{call_id, req.agent(), std::move(done), 0, clock_->MonotonicMs() + wait_ms};
        w.timer = engine_.AddTimer(w.due_ms, [this, call_id](Txn&) {
          auto it = lease_waiter_index_.find(call_id);
          if (it == lease_waiter_index_.end()) return;
          LeaseWaiter waiter = std::move(*it->second);
          lease_waiters_.erase(it->second);
          lease_waiter_index_.erase(it);
          waiter.done(farm::v1::LeaseResponse());
        });
        lease_waiters_.push_back(std::move(w));
        lease_waiter_index_[call_id] = std::prev(lease_waiters_.end());
      },
      [&](absl::Status s) { done(s); });
}

farm::v1::HeartbeatResponse Scheduler::HeartbeatStatus(const farm::v1::HeartbeatRequest& req,
                                                       bool renew, bool* urgent) {
  farm::v1::HeartbeatResponse resp;
  const int64_t now = clock_->MonotonicMs();
  for (const auto& ref : req.leases()) {
    farm::v1::LeaseStatus* st = resp.add_leases();
    *st->mutable_lease() = ref;
    auto lease = CheckLease(ref);
    if (!lease.ok() || (*lease)->agent != req.agent()) {
      st->set_valid(false);
      *urgent = true;
      continue;
    }
    st->set_valid(true);
    if (renew) (*lease)->expires_ms = now + options_.lease_ttl_ms;
    if ((*lease)->job.cancel_requested()) {
      st->set_cancel(true);
      if (!(*lease)->cancel_delivered) *urgent = true;
    }
  }
  return resp;
}

void Scheduler::Heartbeat(farm::v1::HeartbeatRequest req, int64_t wait_ms, uint64_t call_id,
                          Done<farm::v1::HeartbeatResponse> done) {
  PostOrFail(
      [this, req = std::move(req), wait_ms, call_id, done](Txn& txn) mutable {
        auto seen = AgentCall(req.agent(), req.session_id());
        if (!seen.ok()) return done(seen.status());
        Agent& agent = **seen;
        agent.draining = req.draining();
        // One parked heartbeat per agent: a newer one answers the older.
        if (agent.heartbeat_call != 0) WakeHeartbeat(txn, req.agent());
        bool urgent = false;
        farm::v1::HeartbeatResponse resp = HeartbeatStatus(req, /*renew=*/true, &urgent);
        if (parking_stopped_) return done(Stopping());
        if (urgent || wait_ms <= 0) {
          for (const auto& st : resp.leases()) {
            if (st.cancel()) {
              auto seq = keys::ParseJobId(st.lease().job_id());
              if (seq.has_value() && active_.count(*seq)) active_[*seq].cancel_delivered = true;
            }
          }
          return done(resp);
        }
        HeartbeatWaiter w{std::move(req), std::move(done), 0};
        w.timer = engine_.AddTimer(clock_->MonotonicMs() + wait_ms, [this, call_id](Txn&) {
          auto it = heartbeat_waiters_.find(call_id);
          if (it == heartbeat_waiters_.end()) return;
          HeartbeatWaiter waiter = std::move(it->second);
          heartbeat_waiters_.erase(it);
          auto agent = agents_.find(waiter.req.agent());
          if (agent != agents_.end() && agent->second.heartbeat_call == call_id) {
            agent->second.heartbeat_call = 0;
          }
          bool ignored = false;
          waiter.done(HeartbeatStatus(waiter.req, /*renew=*/false, &ignored));
        });
        heartbeat_waiters_[call_id] = std::move(w);
        agent.heartbeat_call = call_id;
      },
      [&](absl::Status s) { done(s); });
}

void Scheduler::WakeHeartbeat(Txn& txn, const std::string& agent_name) {
  auto agent = agents_.find(agent_name);
  if (agent == agents_.end() || agent->second.heartbeat_call == 0) return;
  const uint64_t call_id = agent->second.heartbeat_call;
  agent->second.heartbeat_call = 0;
  auto it = heartbeat_waiters_.find(call_id);
  if (it == heartbeat_waiters_.end()) return;
  HeartbeatWaiter waiter = std::move(it->second);
  heartbeat_waiters_.erase(it);
  engine_.CancelTimer(waiter.timer);
  // Answer after this group commits, so that the cancel the agent hears of is durable.
  txn.OnCommit([this, waiter = std::move(waiter)](const absl::Status& s) {
    bool ignored = false;
    farm::v1::HeartbeatResponse resp = HeartbeatStatus(waiter.req, /*renew=*/false, &ignored);
    for (const auto& st : resp.leases()) {
      if (!st.cancel()) continue;
      auto seq = keys::ParseJobId(st.lease().job_id());
      if (seq.has_value() && active_.count(*seq)) active_[*seq].cancel_delivered = true;
    }
    waiter.done(resp);
  });
}

void Scheduler::CancelWait(uint64_t call_id) {
  engine_.Post([this, call_id](Txn&) {
    if (auto it = lease_waiter_index_.find(call_id); it != lease_waiter_index_.end()) {
      LeaseWaiter w = std::move(*it->second);
      lease_waiters_.erase(it->second);
      lease_waiter_index_.erase(it);
      engine_.CancelTimer(w.timer);
      w.done(absl::CancelledError("lease call cancelled"));
      return;
    }
    if (auto it = heartbeat_waiters_.find(call_id); it != heartbeat_waiters_.end()) {
      HeartbeatWaiter w = std::move(it->second);
      heartbeat_waiters_.erase(it);
      engine_.CancelTimer(w.timer);
      auto agent = agents_.find(w.req.agent());
      if (agent != agents_.end() && agent->second.heartbeat_call == call_id) {
        agent->second.heartbeat_call = 0;
      }
      w.done(absl::CancelledError("heartbeat call cancelled"));
    }
  });
}

void Scheduler::AppendLog(farm::v1::LogUploadChunk chunk, Done<int64_t> done) {
  PostOrFail(
      [this, chunk = std::move(chunk), done](Txn& txn) {
        auto lease = CheckLease(chunk.lease());
        if (!lease.ok()) return done(lease.status());
        ActiveLease& l = **lease;
        if (chunk.step_index() >= l.log_len.size()) {
          return done(absl::InvalidArgumentError(absl::StrCat("step_index ", chunk.step_index(),
                                                              " is out of range: the job has ",
                                                              l.log_len.size(), " steps")));
        }
        if (chunk.offset() < 0) return done(absl::InvalidArgumentError("offset is negative"));
        int64_t& committed = l.log_len[chunk.step_index()];
        const int64_t end = chunk.offset() + static_cast<int64_t>(chunk.data().size());
        if (l.log_total >= options_.max_log_bytes_per_job) {
          // Past the limit: accept and drop, so that the agent moves on.
          committed = std::max(committed, end);
          return done(committed);
        }
        if (chunk.offset() > committed) {
          return done(absl::OutOfRangeError(
              absl::StrCat("output of step ", chunk.step_index(), " has a gap: ", committed,
                           " bytes are committed but the chunk starts at ", chunk.offset())));
        }
        if (end <= committed) return done(committed);  // already have all of it
        std::string data = chunk.data().substr(static_cast<size_t>(committed - chunk.offset()));
        const int64_t room = options_.max_log_bytes_per_job - l.log_total;
        const int64_t at = committed;
        if (static_cast<int64_t>(data.size()) > room) {
          data.resize(static_cast<size_t>(room));
          absl::StrAppend(&data, "\n[farm: output truncated: the job reached its limit of ",
                          options_.max_log_bytes_per_job, " bytes]\n");
          l.log_total = options_.max_log_bytes_per_job;
          committed = end;
        } else {
          l.log_total += static_cast<int64_t>(data.size());
          committed = end;
        }
        txn.Put(Cf::kLogs,
                keys::LogKey(l.job.seq(), l.attempt, chunk.step_index(), static_cast<uint64_t>(at)),
                std::move(data));
        NotifyAfterCommit(txn, l.job.seq());
        const int64_t result = committed;
        ReplyAfterCommit(txn, done, result);
      },
      [&](absl::Status s) { done(s); });
}

absl::StatusOr<std::pair<Job*, farm::v1::StepResult*>> Scheduler::LeasedStep(
    const farm::v1::LeaseRef& ref, uint32_t step_index) {
  FARM_ASSIGN_OR_RETURN(ActiveLease * lease, CheckLease(ref));
  Attempt* at = lease->job.mutable_attempts(lease->job.attempts_size() - 1);
  if (step_index >= static_cast<uint32_t>(at->steps_size())) {
    return absl::InvalidArgumentError(absl::StrCat("step_index ", step_index, " is out of range"));
  }
  return std::make_pair(&lease->job, at->mutable_steps(static_cast<int>(step_index)));
}

void Scheduler::StepStarted(farm::v1::StepStartedRequest req, Done<farm::v1::Ack> done) {
  PostOrFail(
      [this, req = std::move(req), done](Txn& txn) {
        auto step_or = LeasedStep(req.lease(), req.step_index());
        if (!step_or.ok()) return done(step_or.status());
        auto [job_ptr, step_ptr] = *step_or;
        Job& job = *job_ptr;
        farm::v1::StepResult* step = step_ptr;
        if (step->state() == farm::v1::STEP_PENDING) {
          step->set_state(farm::v1::STEP_RUNNING);
          step->set_started_ms(req.started_ms() > 0 ? req.started_ms() : clock_->NowMs());
          PutJob(txn, job);
          NotifyAfterCommit(txn, job.seq());
        }
        ReplyAfterCommit(txn, done, farm::v1::Ack());
      },
      [&](absl::Status s) { done(s); });
}

absl::StatusOr<farm::v1::Job*> Scheduler::RecordStepResult(const farm::v1::LeaseRef& lease,
                                                           uint32_t step_index,
                                                           const farm::v1::StepResult& result) {
  auto step_or = LeasedStep(lease, step_index);
  if (!step_or.ok()) return step_or.status();
  auto [job, step] = *step_or;
  if (!StepDone(result.state())) {
    return absl::InvalidArgumentError("a finished step needs a final state");
  }
  const std::string name = step->name();
  *step = result;
  step->set_name(name);
  return job;
}

void Scheduler::StepFinished(farm::v1::StepFinishedRequest req, Done<farm::v1::Ack> done) {
  PostOrFail(
      [this, req = std::move(req), done](Txn& txn) {
        auto job = RecordStepResult(req.lease(), req.step_index(), req.result());
        if (!job.ok()) return done(job.status());
        PutJob(txn, **job);
        NotifyAfterCommit(txn, (*job)->seq());
        ReplyAfterCommit(txn, done, farm::v1::Ack());
      },
      [&](absl::Status s) { done(s); });
}

void Scheduler::CompleteJob(farm::v1::CompleteJobRequest req, Done<farm::v1::Ack> done) {
  const auto outcome = req.outcome();
  if (outcome != farm::v1::ATTEMPT_SUCCEEDED && outcome != farm::v1::ATTEMPT_FAILED &&
      outcome != farm::v1::ATTEMPT_CANCELLED) {
    return done(absl::InvalidArgumentError(
        "outcome must be ATTEMPT_SUCCEEDED, ATTEMPT_FAILED or ATTEMPT_CANCELLED"));
  }
  // Artifacts come from agents: untrusted.
  if (absl::Status s = common::ValidateArtifacts(req.artifacts()); !s.ok()) return done(s);
  PostOrFail(
      [this, req = std::move(req), done](Txn& txn) {
        auto lease = CheckLease(req.lease());
        if (!lease.ok()) {
          // A retry of a completion that was accepted is accepted again, and changes nothing.
          auto seq = keys::ParseJobId(req.lease().job_id());
          if (seq.has_value()) {
            auto job = LoadJob(txn, *seq);
            if (job.ok() && job->has_value() && !(*job)->attempts().empty()) {
              const Attempt& last = (*job)->attempts((*job)->attempts_size() - 1);
              if (last.epoch() == req.lease().epoch() && last.outcome() == req.outcome()) {
                ReplyAfterCommit(txn, done, farm::v1::Ack());
                return;
              }
            }
          }
          return done(lease.status());
        }
        const uint64_t seq = (*lease)->job.seq();
        if (!req.artifacts().empty() && artifact_check_) {
          if (absl::Status s = artifact_check_(req.artifacts()); !s.ok()) return done(s);
        }
        if (req.has_last_step()) {
          // Only memory changes here; EndAttempt writes the job with it.
          auto recorded =
              RecordStepResult(req.lease(), req.last_step().step_index(), req.last_step().result());
          if (!recorded.ok()) return done(recorded.status());
        }
        FARM_LOG(INFO) << "[job=" << seq << " attempt=" << req.lease().attempt()
                       << " agent=" << (*lease)->agent
                       << "] ended: " << farm::v1::AttemptOutcome_Name(req.outcome())
                       << (req.reason().empty() ? "" : " (" + req.reason() + ")");
        EndAttempt(txn, seq, req.outcome(), req.reason(), &req.artifacts());
        ReplyAfterCommit(txn, done, farm::v1::Ack());
      },
      [&](absl::Status s) { done(s); });
}

void Scheduler::ListAgents(Done<farm::v1::ListAgentsResponse> done) {
  PostOrFail(
      [this, done](Txn&) {
        farm::v1::ListAgentsResponse resp;
        const int64_t now = clock_->MonotonicMs();
        for (const auto& [name, agent] : agents_) {
          farm::v1::AgentInfo* info = resp.add_agents();
          info->set_name(name);
          info->mutable_labels()->insert(agent.labels.begin(), agent.labels.end());
          info->set_slots(agent.slots);
          info->set_version(agent.version);
          info->set_last_seen_ms(agent.last_seen_wall_ms);
          for (uint64_t seq : agent.jobs) info->add_jobs(keys::JobId(seq));
          if (now - agent.last_seen_ms > options_.lease_ttl_ms) {
            info->set_state("offline");
          } else if (agent.draining) {
            info->set_state("draining");
          } else {
            info->set_state(agent.jobs.empty() ? "idle" : "busy");
          }
        }
        done(resp);
      },
      [&](absl::Status s) { done(s); });
}

// ---------------------------------------------------------------------------------------------
// Expiry

void Scheduler::ArmSweep() {
  const int64_t period = std::clamp<int64_t>(options_.lease_ttl_ms / 10, 50, 1000);
  engine_.AddTimer(clock_->MonotonicMs() + period, [this](Txn& txn) {
    Sweep(txn);
    ArmSweep();
  });
}

void Scheduler::ExpireRequestIds(Txn& txn) {
  // Bounded work per sweep; a backlog of expired ids drains over several sweeps.
  constexpr size_t kMaxPerSweep = 1000;
  const int64_t cutoff = clock_->NowMs() - options_.request_id_retention_ms;
  if (cutoff <= 0) return;
  const std::string start(keys::kRequestTimePrefix);
  const std::string limit = keys::RequestTimeKey(cutoff, "");
  std::vector<std::string> expired;
  absl::Status s =
      txn.Scan(Cf::kRequests, start, limit, [&](absl::string_view key, absl::string_view) {
        expired.emplace_back(key);
        return expired.size() < kMaxPerSweep;
      });
  for (const std::string& key : expired) {
    txn.Delete(Cf::kRequests, keys::RequestKey(absl::string_view(key).substr(start.size() + 8)));
    txn.Delete(Cf::kRequests, key);
  }
  if (!s.ok()) FARM_LOG(WARNING) << "expiring request ids: " << s;
}

void Scheduler::Sweep(Txn& txn) {
  const int64_t now = clock_->MonotonicMs();
  std::vector<uint64_t> expired;
  for (const auto& [seq, lease] : active_) {
    if (lease.expires_ms <= now) expired.push_back(seq);
  }
  for (uint64_t seq : expired) {
    const std::string agent = active_[seq].agent;
    FARM_LOG(WARNING) << "[job=" << seq << " agent=" << agent << "] lease expired";
    EndAttempt(txn, seq, farm::v1::ATTEMPT_LOST,
               absl::StrCat("lease expired: agent ", agent, " stopped heartbeating"));
  }
  ExpireRequestIds(txn);
  for (auto it = agents_.begin(); it != agents_.end();) {
    if (it->second.jobs.empty() && it->second.heartbeat_call == 0 &&
        now - it->second.last_seen_ms > options_.forget_agent_after_ms) {
      it = agents_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace farm::coordinator
