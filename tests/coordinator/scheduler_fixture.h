// A Scheduler on the in-memory store and a fake clock, with helpers that wait for its answers
// (with deadlines). Shared by the scheduler's unit tests.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "coordinator/logs/follower_hub.h"
#include "coordinator/scheduler/scheduler.h"
#include "coordinator/store/memory_store.h"
#include "tests/testing/status_matchers.h"

namespace farm::coordinator {

// Result of an asynchronous call, waited for with a deadline.
template <typename T>
class Pending {
 public:
  Scheduler::Done<T> Callback() {
    return [this](absl::StatusOr<T> r) {
      absl::MutexLock lock(&mu_);
      result_ = std::move(r);
    };
  }
  bool Ready() {
    absl::MutexLock lock(&mu_);
    return result_.has_value();
  }
  // Waits up to 10 s (a condition with a deadline, not a fixed sleep).
  absl::StatusOr<T> Get() {
    absl::MutexLock lock(&mu_);
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return result_.has_value(); };
    if (!mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Seconds(10))) {
      return absl::DeadlineExceededError("no answer within 10 s");
    }
    return *result_;
  }

 private:
  absl::Mutex mu_;
  std::optional<absl::StatusOr<T>> result_ ABSL_GUARDED_BY(mu_);
};

template <typename T, typename F>
absl::StatusOr<T> Await(F&& start) {
  Pending<T> p;
  start(p.Callback());
  return p.Get();
}

inline farm::v1::JobSpec Spec(const std::string& name, int priority = 0,
                              std::map<std::string, std::string> labels = {}, int steps = 1) {
  farm::v1::JobSpec spec;
  spec.set_name(name);
  spec.set_priority(priority);
  for (const auto& [k, v] : labels) (*spec.mutable_labels())[k] = v;
  for (int i = 0; i < steps; ++i) {
    auto* s = spec.add_steps();
    s->set_name("s" + std::to_string(i));
    s->set_run("true");
  }
  return spec;
}

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override { Boot(); }
  void TearDown() override { Shutdown(); }

  void Boot(size_t window = 256) {
    SchedulerOptions opts;
    opts.lease_ttl_ms = 3000;
    opts.queue_window = window;
    opts.agent_loss_retries = 1;
    opts.max_log_bytes_per_job = 1000;
    opts.flow = flow_;  // every scheduler test runs with the flow metrics measured
    scheduler_ = std::make_unique<Scheduler>(&store_, &clock_, &hub_, opts);
    ASSERT_OK(scheduler_->Init());
    scheduler_->Start();
  }
  void Shutdown() {
    if (scheduler_) scheduler_->Stop();
    scheduler_.reset();
  }
  // Simulates a coordinator restart on the same store.
  void Restart(size_t window = 256) {
    Shutdown();
    Boot(window);
  }

  std::string Submit(farm::v1::JobSpec spec, std::string request_id = "") {
    auto r = Await<farm::v1::SubmitJobResponse>(
        [&](auto cb) { scheduler_->Submit(spec, request_id, cb); });
    EXPECT_OK(r);
    return r.ok() ? r->job_id() : "";
  }

  void Register(const std::string& name, std::map<std::string, std::string> labels = {},
                const std::string& session = "s1") {
    farm::v1::RegisterRequest req;
    req.set_name(name);
    req.set_slots(4);
    req.set_session_id(session);
    for (const auto& [k, v] : labels) (*req.mutable_labels())[k] = v;
    ASSERT_OK(Await<farm::v1::RegisterResponse>([&](auto cb) { scheduler_->Register(req, cb); }));
  }

  absl::StatusOr<farm::v1::LeaseResponse> Lease(const std::string& agent, int64_t wait_ms = 0,
                                                const std::string& session = "s1") {
    farm::v1::LeaseRequest req;
    req.set_agent(agent);
    req.set_session_id(session);
    return Await<farm::v1::LeaseResponse>(
        [&](auto cb) { scheduler_->Lease(req, wait_ms, scheduler_->NewCallId(), cb); });
  }

  absl::Status Complete(const farm::v1::LeaseRef& ref, farm::v1::AttemptOutcome outcome) {
    farm::v1::CompleteJobRequest req;
    *req.mutable_lease() = ref;
    req.set_outcome(outcome);
    return Await<farm::v1::CompleteJobResponse>([&](auto cb) { scheduler_->CompleteJob(req, cb); })
        .status();
  }

  absl::StatusOr<int64_t> Append(const farm::v1::LeaseRef& ref, uint32_t step, int64_t offset,
                                 const std::string& data) {
    farm::v1::LogUploadChunk c;
    *c.mutable_lease() = ref;
    c.set_step_index(step);
    c.set_offset(offset);
    c.set_data(data);
    return Await<int64_t>([&](auto cb) { scheduler_->AppendLog(c, cb); });
  }

  farm::v1::Job Job(const std::string& id) {
    auto j = scheduler_->GetJob(id);
    EXPECT_OK(j);
    return j.ok() ? *j : farm::v1::Job();
  }

  // Advances time past the lease TTL and lets the sweep run.
  void ExpireLeases() {
    clock_.AdvanceMs(3001);
    // The sweep timer fires in the next group that runs; post until it has.
    for (int i = 0; i < 3; ++i) {
      ASSERT_OK(Await<farm::v1::ListAgentsResponse>([&](auto cb) { scheduler_->ListAgents(cb); }));
      clock_.AdvanceMs(1000);
    }
  }

  MemoryStore store_;
  common::FakeClock clock_;
  FollowerHub hub_;
  common::metrics::Registry registry_;
  const FlowFamilies flow_ = FlowFamilies::Register(registry_);
  std::unique_ptr<Scheduler> scheduler_;
};

}  // namespace farm::coordinator
