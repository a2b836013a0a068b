// An in-process stand-in for the coordinator's AgentService (callback API) on 127.0.0.1:0,
// so that the agent's lease → run → logs → complete flow can be tested without the real
// coordinator. It keeps everything in memory, parks Lease and Heartbeat calls like the real
// one, checks lease epochs, and can inject failures and a "restart" (forgetting agents).
//
// Thread-safe. Test code drives it with AddJob/CancelJob/... and observes it with
// WaitUntil(predicate over State) and Snapshot().
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "farm/v1/farm.grpc.pb.h"

namespace farm::agent::testing {

class FakeAgentService final : public farm::v1::AgentService::CallbackService {
 public:
  struct FakeJob {
    farm::v1::Job job;
    farm::v1::LeaseRef lease;  // set once leased
    bool leased = false;
    bool cancel = false;
    bool valid = true;
    // Steps the coordinator knows started, in order: from StepStarted, or (as the coordinator
    // records it) from the result of a step that ended before its agent reported it started.
    std::vector<uint32_t> started_steps;
    std::vector<uint32_t> reported_started;  // steps reported by StepStarted calls
    std::map<uint32_t, farm::v1::StepResult> finished;
    int completions = 0;
    farm::v1::AttemptOutcome outcome = farm::v1::ATTEMPT_OUTCOME_UNSPECIFIED;
    std::string reason;
    std::map<uint32_t, std::string> logs;       // committed output per step
    std::vector<farm::v1::Artifact> artifacts;  // of the last CompleteJob
    // Steps whose result came with CompleteJob (last_step) rather than StepFinished; they are
    // in `finished` too.
    std::set<uint32_t> finished_with_completion;
    // Leased in the answer to another job's CompleteJob (lease_next) rather than by Lease.
    bool leased_with_completion = false;
  };
  struct State {
    std::map<std::string, FakeJob> jobs;
    std::deque<std::string> queue;
    std::set<std::string> registered;  // agent names
    std::vector<farm::v1::RegisterRequest> registrations;
    std::vector<farm::v1::HeartbeatRequest> heartbeats;
    int upload_streams = 0;
    int hung_heartbeats = 0;        // Heartbeat calls held unanswered right now (HangHeartbeats)
    int hung_heartbeats_ended = 0;  // held calls the client gave up on (deadline or cancel)
    int failed_calls = 0;           // failures injected so far
    // method name → (how many more calls fail, with which code)
    std::map<std::string, std::pair<int, grpc::StatusCode>> fail_next;
  };

  FakeAgentService() = default;
  ~FakeAgentService() override;

  // Binds 127.0.0.1:0 and starts serving; returns the address ("127.0.0.1:PORT"), or "" on
  // failure.
  std::string Start();
  // Serves `service` too (e.g. a fake CAS, which agents reach on the coordinator's address).
  // Call before Start(); not owned, must outlive this object's server.
  void AddService(grpc::Service* service);

  // What Register answers.
  void SetTimings(int64_t lease_ttl_ms, int64_t heartbeat_interval_ms);
  // RegisterResponse.features (none by default: the first version of the protocol).
  void SetFeatures(std::vector<std::string> features);

  // Queues a job (attempt 1, a fresh epoch once leased), with the inputs the coordinator would
  // fill in from the jobs it needs.
  void AddJob(const std::string& id, const farm::v1::JobSpec& spec,
              const std::vector<farm::v1::JobInput>& inputs = {});
  // The user's cancel: the next (or parked) heartbeat listing the lease says cancel=true.
  void CancelJob(const std::string& id);
  // Makes the job's lease stale: heartbeats say valid=false, job calls FAILED_PRECONDITION.
  void InvalidateLease(const std::string& id);
  // A coordinator restart: every agent must register again.
  void ForgetAgents();
  // A coordinator that stops answering heartbeats (hung, or cut off one way): while on, each
  // Heartbeat call is recorded and then held without an answer until the client gives up.
  void HangHeartbeats(bool hang);
  // The next `count` calls of `method` ("Register", "Lease", "Heartbeat", "UploadLogs",
  // "StepStarted", "StepFinished", "CompleteJob") fail with `code`. A failing UploadLogs
  // stream first commits its first chunk, then fails.
  void FailNext(const std::string& method, int count, grpc::StatusCode code);

  // Waits until `predicate(state)` holds (evaluated under the lock on every change).
  bool WaitUntil(const std::function<bool(const State&)>& predicate,
                 absl::Duration timeout = absl::Seconds(20));
  State Snapshot() const;

 private:
  class ParkedReactor;
  struct Parked {
    ParkedReactor* reactor;
    int64_t deadline_ms;
    farm::v1::LeaseResponse* lease_response = nullptr;
    farm::v1::HeartbeatResponse* heartbeat_response = nullptr;
    farm::v1::HeartbeatRequest heartbeat_request;
    bool hung = false;  // never answered; ends when the client cancels
  };
  class UploadReactor;
  // A step's result, and its start when the agent did not report it (as the coordinator does).
  static void RecordResult(FakeJob* job, uint32_t step, const farm::v1::StepResult& result);
  using Finisher = std::function<void()>;

  grpc::ServerUnaryReactor* Register(grpc::CallbackServerContext* context,
                                     const farm::v1::RegisterRequest* request,
                                     farm::v1::RegisterResponse* response) override;
  grpc::ServerUnaryReactor* Lease(grpc::CallbackServerContext* context,
                                  const farm::v1::LeaseRequest* request,
                                  farm::v1::LeaseResponse* response) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* context,
                                      const farm::v1::HeartbeatRequest* request,
                                      farm::v1::HeartbeatResponse* response) override;
  grpc::ServerReadReactor<farm::v1::LogUploadChunk>* UploadLogs(
      grpc::CallbackServerContext* context, farm::v1::LogUploadResponse* response) override;
  grpc::ServerUnaryReactor* StepStarted(grpc::CallbackServerContext* context,
                                        const farm::v1::StepStartedRequest* request,
                                        farm::v1::Ack* response) override;
  grpc::ServerUnaryReactor* StepFinished(grpc::CallbackServerContext* context,
                                         const farm::v1::StepFinishedRequest* request,
                                         farm::v1::Ack* response) override;
  grpc::ServerUnaryReactor* CompleteJob(grpc::CallbackServerContext* context,
                                        const farm::v1::CompleteJobRequest* request,
                                        farm::v1::CompleteJobResponse* response) override;

  grpc::ServerUnaryReactor* Respond(grpc::CallbackServerContext* context,
                                    const grpc::Status& status);
  // Consumes an injected failure for `method`, if any.
  bool InjectedFailure(const std::string& method, grpc::Status* status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  grpc::Status CheckLease(const farm::v1::LeaseRef& lease, FakeJob** job)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Fills `response` for the heartbeat's leases; true when one of them needs the agent's
  // attention (cancelled or invalid), i.e. the heartbeat must be answered now.
  bool EvaluateHeartbeat(const farm::v1::HeartbeatRequest& request,
                         farm::v1::HeartbeatResponse* response) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Hands queued jobs to parked Lease calls and answers parked heartbeats that need it.
  // Returns the Finish() calls to make once the lock is released.
  std::vector<Finisher> DispatchLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void GrantLease(FakeJob& job, farm::v1::LeaseResponse* response)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnParkedCancelled(ParkedReactor* reactor);
  grpc::Status ApplyChunk(const farm::v1::LogUploadChunk& chunk,
                          farm::v1::LogUploadResponse* response);
  void TimerLoop();
  void Run(std::vector<Finisher> finishers);

  mutable absl::Mutex mu_;
  State state_ ABSL_GUARDED_BY(mu_);
  std::vector<Parked> parked_leases_ ABSL_GUARDED_BY(mu_);
  std::vector<Parked> parked_heartbeats_ ABSL_GUARDED_BY(mu_);
  uint64_t next_epoch_ ABSL_GUARDED_BY(mu_) = 100;
  int64_t lease_ttl_ms_ ABSL_GUARDED_BY(mu_) = 30'000;
  int64_t heartbeat_interval_ms_ ABSL_GUARDED_BY(mu_) = 1'000;
  std::vector<std::string> features_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool hang_heartbeats_ ABSL_GUARDED_BY(mu_) = false;
  int64_t version_ ABSL_GUARDED_BY(mu_) = 0;  // bumped on every change, wakes the timer

  std::vector<grpc::Service*> extra_services_;
  std::unique_ptr<grpc::Server> server_;
  std::thread timer_;
};

}  // namespace farm::agent::testing
