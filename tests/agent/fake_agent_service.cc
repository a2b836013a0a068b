#include "tests/agent/fake_agent_service.h"

#include <algorithm>
#include <chrono>
#include <limits>

#include "absl/algorithm/container.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/grpc_status.h"

namespace farm::agent::testing {
namespace {

// Parked calls end on the real clock: the client's deadline is real time.
int64_t NowMs() { return common::RealClock()->MonotonicMs(); }

// What the coordinator answers a call from an agent it does not know: the reason, not the
// message, tells the agent to register again (the message here says it in other words on
// purpose).
grpc::Status NotRegistered(const std::string& agent) {
  return common::ToGrpcStatus(common::WithReason(
      absl::NotFoundError(absl::StrCat("the coordinator does not know agent ", agent)),
      common::kReasonAgentNotRegistered));
}

}  // namespace

// A parked Lease or Heartbeat call. Finished exactly once: by a dispatch, by the timer, or by
// OnCancel; whoever removes it from the parked list finishes it.
class FakeAgentService::ParkedReactor : public grpc::ServerUnaryReactor {
 public:
  explicit ParkedReactor(FakeAgentService* service) : service_(service) {}
  void OnCancel() override { service_->OnParkedCancelled(this); }
  void OnDone() override { delete this; }

 private:
  FakeAgentService* service_;
};

class FakeAgentService::UploadReactor : public grpc::ServerReadReactor<farm::v1::LogUploadChunk> {
 public:
  UploadReactor(FakeAgentService* service, farm::v1::LogUploadResponse* response,
                grpc::Status fail_after_first)
      : service_(service), response_(response), fail_after_first_(std::move(fail_after_first)) {
    StartRead(&chunk_);
  }
  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status::OK);
      return;
    }
    grpc::Status status = service_->ApplyChunk(chunk_, response_);
    if (status.ok() && !fail_after_first_.ok()) status = fail_after_first_;
    if (!status.ok()) {
      Finish(status);
      return;
    }
    StartRead(&chunk_);
  }
  void OnDone() override { delete this; }

 private:
  FakeAgentService* service_;
  farm::v1::LogUploadResponse* response_;
  grpc::Status fail_after_first_;
  farm::v1::LogUploadChunk chunk_;
};

FakeAgentService::~FakeAgentService() {
  std::vector<Finisher> finishers;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    ++version_;
    for (auto* list : {&parked_leases_, &parked_heartbeats_}) {
      for (Parked& p : *list) {
        ParkedReactor* r = p.reactor;
        finishers.push_back([r] { r->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "bye")); });
      }
      list->clear();
    }
  }
  Run(std::move(finishers));
  if (server_ != nullptr) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    server_->Wait();
  }
  if (timer_.joinable()) timer_.join();
}

std::string FakeAgentService::Start() {
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(this);
  for (grpc::Service* service : extra_services_) builder.RegisterService(service);
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port == 0) return "";
  timer_ = std::thread([this] { TimerLoop(); });
  return absl::StrCat("127.0.0.1:", port);
}

void FakeAgentService::AddService(grpc::Service* service) { extra_services_.push_back(service); }

void FakeAgentService::SetTimings(int64_t lease_ttl_ms, int64_t heartbeat_interval_ms) {
  absl::MutexLock lock(&mu_);
  lease_ttl_ms_ = lease_ttl_ms;
  heartbeat_interval_ms_ = heartbeat_interval_ms;
}

void FakeAgentService::SetFeatures(std::vector<std::string> features) {
  absl::MutexLock lock(&mu_);
  features_ = std::move(features);
}

void FakeAgentService::Run(std::vector<Finisher> finishers) {
  for (Finisher& f : finishers) f();
}

void FakeAgentService::AddJob(const std::string& id, const farm::v1::JobSpec& spec,
                              const std::vector<farm::v1::JobInput>& inputs) {
  std::vector<Finisher> finishers;
  {
    absl::MutexLock lock(&mu_);
    FakeJob& job = state_.jobs[id];
    job.job.set_id(id);
    *job.job.mutable_spec() = spec;
    for (const farm::v1::JobInput& input : inputs) *job.job.add_inputs() = input;
    job.job.set_state(farm::v1::QUEUED);
    state_.queue.push_back(id);
    ++version_;
    finishers = DispatchLocked();
  }
  Run(std::move(finishers));
}

void FakeAgentService::CancelJob(const std::string& id) {
  std::vector<Finisher> finishers;
  {
    absl::MutexLock lock(&mu_);
    state_.jobs[id].cancel = true;
    ++version_;
    finishers = DispatchLocked();
    // As the coordinator does: a cancel answers the agent's parked heartbeat even when it does
    // not list the job yet (the agent's next heartbeat lists it and hears of the cancel).
    for (Parked& p : parked_heartbeats_) {
      if (p.hung) continue;
      EvaluateHeartbeat(p.heartbeat_request, p.heartbeat_response);
      finishers.push_back([r = p.reactor] { r->Finish(grpc::Status::OK); });
    }
    parked_heartbeats_.erase(std::remove_if(parked_heartbeats_.begin(), parked_heartbeats_.end(),
                                            [](const Parked& p) { return !p.hung; }),
                             parked_heartbeats_.end());
  }
  Run(std::move(finishers));
}

void FakeAgentService::HangHeartbeats(bool hang) {
  absl::MutexLock lock(&mu_);
  hang_heartbeats_ = hang;
  ++version_;
}

void FakeAgentService::InvalidateLease(const std::string& id) {
  std::vector<Finisher> finishers;
  {
    absl::MutexLock lock(&mu_);
    state_.jobs[id].valid = false;
    ++version_;
    finishers = DispatchLocked();
  }
  Run(std::move(finishers));
}

void FakeAgentService::ForgetAgents() {
  absl::MutexLock lock(&mu_);
  state_.registered.clear();
  ++version_;
}

void FakeAgentService::FailNext(const std::string& method, int count, grpc::StatusCode code) {
  absl::MutexLock lock(&mu_);
  state_.fail_next[method] = {count, code};
}

bool FakeAgentService::WaitUntil(const std::function<bool(const State&)>& predicate,
                                 absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto holds = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return predicate(state_); };
  return mu_.AwaitWithTimeout(absl::Condition(&holds), timeout);
}

FakeAgentService::State FakeAgentService::Snapshot() const {
  absl::MutexLock lock(&mu_);
  return state_;
}

bool FakeAgentService::InjectedFailure(const std::string& method, grpc::Status* status) {
  auto it = state_.fail_next.find(method);
  if (it == state_.fail_next.end() || it->second.first <= 0) return false;
  --it->second.first;
  ++state_.failed_calls;
  *status = grpc::Status(it->second.second, absl::StrCat("injected ", method, " failure"));
  return true;
}

grpc::ServerUnaryReactor* FakeAgentService::Respond(grpc::CallbackServerContext* context,
                                                    const grpc::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

grpc::Status FakeAgentService::CheckLease(const farm::v1::LeaseRef& lease, FakeJob** job) {
  auto it = state_.jobs.find(lease.job_id());
  if (it == state_.jobs.end()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, absl::StrCat("job ", lease.job_id()));
  }
  FakeJob& j = it->second;
  if (!j.leased || !j.valid || j.lease.epoch() != lease.epoch() ||
      j.lease.attempt() != lease.attempt()) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("stale lease of job ", lease.job_id()));
  }
  *job = &j;
  return grpc::Status::OK;
}

grpc::ServerUnaryReactor* FakeAgentService::Register(grpc::CallbackServerContext* context,
                                                     const farm::v1::RegisterRequest* request,
                                                     farm::v1::RegisterResponse* response) {
  absl::MutexLock lock(&mu_);
  ++version_;
  grpc::Status status;
  if (InjectedFailure("Register", &status)) return Respond(context, status);
  state_.registered.insert(request->name());
  state_.registrations.push_back(*request);
  response->set_lease_ttl_ms(lease_ttl_ms_);
  response->set_heartbeat_interval_ms(heartbeat_interval_ms_);
  for (const std::string& f : features_) response->add_features(f);
  return Respond(context, grpc::Status::OK);
}

void FakeAgentService::GrantLease(FakeJob& job, farm::v1::LeaseResponse* response) {
  job.leased = true;
  job.job.set_state(farm::v1::RUNNING);
  job.lease.set_job_id(job.job.id());
  job.lease.set_attempt(job.lease.attempt() + 1);
  job.lease.set_epoch(next_epoch_++);
  *response->mutable_lease() = job.lease;
  *response->mutable_job() = job.job;
}

grpc::ServerUnaryReactor* FakeAgentService::Lease(grpc::CallbackServerContext* context,
                                                  const farm::v1::LeaseRequest* request,
                                                  farm::v1::LeaseResponse* response) {
  absl::MutexLock lock(&mu_);
  ++version_;
  grpc::Status status;
  if (InjectedFailure("Lease", &status)) return Respond(context, status);
  if (!state_.registered.contains(request->agent())) {
    return Respond(context, NotRegistered(request->agent()));
  }
  if (!state_.queue.empty()) {
    FakeJob& job = state_.jobs[state_.queue.front()];
    state_.queue.pop_front();
    GrantLease(job, response);
    return Respond(context, grpc::Status::OK);
  }
  auto* reactor = new ParkedReactor(this);
  parked_leases_.push_back({reactor, NowMs() + request->wait_ms(), response, nullptr, {}});
  return reactor;
}

bool FakeAgentService::EvaluateHeartbeat(const farm::v1::HeartbeatRequest& request,
                                         farm::v1::HeartbeatResponse* response) {
  response->clear_leases();
  bool attention = false;
  for (const farm::v1::LeaseRef& lease : request.leases()) {
    farm::v1::LeaseStatus* s = response->add_leases();
    *s->mutable_lease() = lease;
    FakeJob* job = nullptr;
    s->set_valid(CheckLease(lease, &job).ok());
    s->set_cancel(job != nullptr && job->cancel);
    if (!s->valid() || s->cancel()) attention = true;
  }
  return attention;
}

grpc::ServerUnaryReactor* FakeAgentService::Heartbeat(grpc::CallbackServerContext* context,
                                                      const farm::v1::HeartbeatRequest* request,
                                                      farm::v1::HeartbeatResponse* response) {
  absl::MutexLock lock(&mu_);
  ++version_;
  grpc::Status status;
  if (InjectedFailure("Heartbeat", &status)) return Respond(context, status);
  if (!state_.registered.contains(request->agent())) {
    return Respond(context, NotRegistered(request->agent()));
  }
  state_.heartbeats.push_back(*request);
  if (hang_heartbeats_) {
    auto* reactor = new ParkedReactor(this);
    parked_heartbeats_.push_back(
        {reactor, std::numeric_limits<int64_t>::max(), nullptr, response, *request, /*hung=*/true});
    ++state_.hung_heartbeats;
    return reactor;
  }
  if (EvaluateHeartbeat(*request, response) || request->wait_ms() <= 0) {
    return Respond(context, grpc::Status::OK);
  }
  auto* reactor = new ParkedReactor(this);
  parked_heartbeats_.push_back(
      {reactor, NowMs() + request->wait_ms(), nullptr, response, *request});
  return reactor;
}

std::vector<FakeAgentService::Finisher> FakeAgentService::DispatchLocked() {
  std::vector<Finisher> finishers;
  while (!state_.queue.empty() && !parked_leases_.empty()) {
    Parked p = parked_leases_.front();
    parked_leases_.erase(parked_leases_.begin());
    FakeJob& job = state_.jobs[state_.queue.front()];
    state_.queue.pop_front();
    GrantLease(job, p.lease_response);
    finishers.push_back([r = p.reactor] { r->Finish(grpc::Status::OK); });
  }
  for (auto it = parked_heartbeats_.begin(); it != parked_heartbeats_.end();) {
    if (!it->hung && EvaluateHeartbeat(it->heartbeat_request, it->heartbeat_response)) {
      finishers.push_back([r = it->reactor] { r->Finish(grpc::Status::OK); });
      it = parked_heartbeats_.erase(it);
    } else {
      ++it;
    }
  }
  return finishers;
}

void FakeAgentService::OnParkedCancelled(ParkedReactor* reactor) {
  bool found = false;
  {
    absl::MutexLock lock(&mu_);
    for (auto* list : {&parked_leases_, &parked_heartbeats_}) {
      auto it = std::find_if(list->begin(), list->end(),
                             [&](const Parked& p) { return p.reactor == reactor; });
      if (it != list->end()) {
        if (it->hung) {
          --state_.hung_heartbeats;
          ++state_.hung_heartbeats_ended;
        }
        list->erase(it);
        found = true;
      }
    }
    ++version_;
  }
  if (found) reactor->Finish(grpc::Status::CANCELLED);
}

void FakeAgentService::TimerLoop() {
  while (true) {
    std::vector<Finisher> finishers;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      const int64_t now = NowMs();
      int64_t next = now + 1'000;
      for (auto* list : {&parked_leases_, &parked_heartbeats_}) {
        for (auto it = list->begin(); it != list->end();) {
          if (it->deadline_ms <= now) {
            finishers.push_back([r = it->reactor] { r->Finish(grpc::Status::OK); });
            it = list->erase(it);
          } else {
            next = std::min(next, it->deadline_ms);
            ++it;
          }
        }
      }
      if (finishers.empty()) {
        const int64_t seen = version_;
        auto changed = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return stopping_ || version_ != seen;
        };
        mu_.AwaitWithTimeout(absl::Condition(&changed), absl::Milliseconds(next - now));
        continue;
      }
    }
    Run(std::move(finishers));
  }
}

grpc::ServerReadReactor<farm::v1::LogUploadChunk>* FakeAgentService::UploadLogs(
    grpc::CallbackServerContext* context, farm::v1::LogUploadResponse* response) {
  grpc::Status fail;
  {
    absl::MutexLock lock(&mu_);
    ++version_;
    ++state_.upload_streams;
    InjectedFailure("UploadLogs", &fail);
  }
  return new UploadReactor(this, response, fail);
}

grpc::Status FakeAgentService::ApplyChunk(const farm::v1::LogUploadChunk& chunk,
                                          farm::v1::LogUploadResponse* response) {
  absl::MutexLock lock(&mu_);
  ++version_;
  FakeJob* job = nullptr;
  grpc::Status status = CheckLease(chunk.lease(), &job);
  if (!status.ok()) return status;
  std::string& log = job->logs[chunk.step_index()];
  const int64_t have = static_cast<int64_t>(log.size());
  const int64_t end = chunk.offset() + static_cast<int64_t>(chunk.data().size());
  if (chunk.offset() > have) {
    return grpc::Status(grpc::StatusCode::OUT_OF_RANGE,
                        absl::StrCat("gap: have ", have, " bytes, chunk at ", chunk.offset()));
  }
  if (end > have) log.append(chunk.data().substr(have - chunk.offset()));
  (*response->mutable_committed())[chunk.step_index()] = static_cast<int64_t>(log.size());
  return grpc::Status::OK;
}

grpc::ServerUnaryReactor* FakeAgentService::StepStarted(grpc::CallbackServerContext* context,
                                                        const farm::v1::StepStartedRequest* request,
                                                        farm::v1::Ack* response) {
  absl::MutexLock lock(&mu_);
  ++version_;
  grpc::Status status;
  if (InjectedFailure("StepStarted", &status)) return Respond(context, status);
  FakeJob* job = nullptr;
  status = CheckLease(request->lease(), &job);
  if (status.ok()) {
    job->started_steps.push_back(request->step_index());
    job->reported_started.push_back(request->step_index());
  }
  return Respond(context, status);
}

void FakeAgentService::RecordResult(FakeJob* job, uint32_t step,
                                    const farm::v1::StepResult& result) {
  const bool known = std::find(job->started_steps.begin(), job->started_steps.end(), step) !=
                     job->started_steps.end();
  if (!known && result.started_ms() > 0) job->started_steps.push_back(step);
  job->finished[step] = result;
}

grpc::ServerUnaryReactor* FakeAgentService::StepFinished(
    grpc::CallbackServerContext* context, const farm::v1::StepFinishedRequest* request,
    farm::v1::Ack* response) {
  absl::MutexLock lock(&mu_);
  ++version_;
  grpc::Status status;
  if (InjectedFailure("StepFinished", &status)) return Respond(context, status);
  FakeJob* job = nullptr;
  status = CheckLease(request->lease(), &job);
  if (status.ok()) RecordResult(job, request->step_index(), request->result());
  return Respond(context, status);
}

grpc::ServerUnaryReactor* FakeAgentService::CompleteJob(grpc::CallbackServerContext* context,
                                                        const farm::v1::CompleteJobRequest* request,
                                                        farm::v1::CompleteJobResponse* response) {
  absl::MutexLock lock(&mu_);
  ++version_;
  grpc::Status status;
  if (InjectedFailure("CompleteJob", &status)) return Respond(context, status);
  FakeJob* job = nullptr;
  status = CheckLease(request->lease(), &job);
  if (status.ok()) {
    ++job->completions;
    job->outcome = request->outcome();
    job->reason = request->reason();
    job->artifacts.assign(request->artifacts().begin(), request->artifacts().end());
    if (request->has_last_step()) {
      RecordResult(job, request->last_step().step_index(), request->last_step().result());
      job->finished_with_completion.insert(request->last_step().step_index());
    }
    job->job.set_state(request->outcome() == farm::v1::ATTEMPT_SUCCEEDED   ? farm::v1::SUCCEEDED
                       : request->outcome() == farm::v1::ATTEMPT_CANCELLED ? farm::v1::CANCELLED
                                                                           : farm::v1::FAILED);
    // As the coordinator does when it has the feature: the slot's next job, if one is queued.
    const bool offered = absl::c_linear_search(features_, "complete_job.next_lease");
    if (request->lease_next() && offered && !state_.queue.empty()) {
      FakeJob& next = state_.jobs[state_.queue.front()];
      state_.queue.pop_front();
      GrantLease(next, response->mutable_next());
      next.leased_with_completion = true;
    }
  }
  return Respond(context, status);
}

}  // namespace farm::agent::testing
