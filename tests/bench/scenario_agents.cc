// agents: SIZE connected idle agents, simulated in this process. Each has its own connection
// and does what an idle farm-agent does (agent/agent.cc): Register, then a Lease long-poll with
// the agent's default wait, asked again whenever it comes back empty, and a Heartbeat loop
// parked for the interval the coordinator hands out. The calls are gRPC callback reactors, so a
// thousand agents need no thousand threads. Measured: what the idle fleet costs the
// coordinator in memory (above its own baseline) and CPU, over a window that spans a full
// lease re-poll and heartbeat cycle.
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "tests/bench/scenarios.h"

namespace farm::bench {
namespace {

// As farm-agent: --lease_wait's default, and the slack it adds to its long-polls' deadlines
// (agent/options.h, agent/coordinator_client.h).
constexpr int64_t kLeaseWaitMs = 20'000;
constexpr int64_t kLongPollSlackMs = 5'000;
// Spans one lease re-poll (20 s) and two heartbeats (lease TTL 30 s / 3) of every agent.
constexpr absl::Duration kWindow = absl::Seconds(25);
constexpr char kNamePrefix[] = "sim-";

std::chrono::system_clock::time_point DeadlineIn(int64_t ms) {
  return std::chrono::system_clock::now() + std::chrono::milliseconds(ms);
}

double MiB(int64_t bytes) { return static_cast<double>(bytes) / (1 << 20); }

// One unary call through the callback API; `done` runs on a gRPC thread when it ends, and the
// call deletes itself after it.
template <typename Req, typename Resp>
class UnaryCall final : public grpc::ClientUnaryReactor {
 public:
  using Done = std::function<void(UnaryCall* call, const grpc::Status& status)>;
  explicit UnaryCall(Done done) : done_(std::move(done)) {}

  grpc::ClientContext& context() { return context_; }
  Req& request() { return request_; }
  const Resp& response() const { return response_; }
  Resp* mutable_response() { return &response_; }

  void OnDone(const grpc::Status& status) override {
    done_(this, status);
    delete this;
  }

 private:
  grpc::ClientContext context_;
  Req request_;
  Resp response_;
  Done done_;
};

using LeaseCall = UnaryCall<farm::v1::LeaseRequest, farm::v1::LeaseResponse>;
using HeartbeatCall = UnaryCall<farm::v1::HeartbeatRequest, farm::v1::HeartbeatResponse>;
using RegisterCall = UnaryCall<farm::v1::RegisterRequest, farm::v1::RegisterResponse>;

// The simulated agents. Thread-safe: calls end on gRPC's threads.
class Fleet {
 public:
  struct Counts {
    int64_t leases_answered = 0;      // empty Lease answers (each followed by a new poll)
    int64_t heartbeats_answered = 0;  // Heartbeat answers (each followed by a new one)
    int leases_parked = 0;            // calls in flight now
    int heartbeats_parked = 0;
  };

  Fleet(BenchFarm& farm, int size) {
    const std::string session = absl::StrCat("bench-", getpid(), "-", MonotonicNs());
    for (int i = 0; i < size; ++i) {
      Sim sim;
      sim.name = absl::StrCat(kNamePrefix, i);
      sim.session = session;
      sim.stub = farm::v1::AgentService::NewStub(farm.NewChannel(/*own_connection=*/true));
      sims_.push_back(std::move(sim));
    }
  }
  ~Fleet() { Stop(); }

  // Registers every agent, all calls at once; OK once each was answered OK.
  absl::Status Register() {
    absl::Mutex done_mu;
    int pending = static_cast<int>(sims_.size());
    absl::Status first_error;
    for (Sim& sim : sims_) {
      auto* call = new RegisterCall([&, s = &sim](RegisterCall* c, const grpc::Status& status) {
        absl::MutexLock lock(&done_mu);
        --pending;
        if (!status.ok()) {
          if (first_error.ok()) first_error = common::FromGrpcStatus(status);
          return;
        }
        // As the agent: park heartbeats for the interval, at most a third of the lease TTL.
        const int64_t interval = c->response().heartbeat_interval_ms();
        const int64_t ttl = c->response().lease_ttl_ms();
        s->heartbeat_wait_ms = interval > 0 ? interval : 5'000;
        if (ttl > 0)
          s->heartbeat_wait_ms = std::min(s->heartbeat_wait_ms, std::max<int64_t>(ttl / 3, 1));
      });
      call->request().set_name(sim.name);
      (*call->request().mutable_labels())["pool"] = "sim";
      call->request().set_slots(1);
      call->request().set_session_id(sim.session);
      call->request().set_version("bench");
      call->context().set_deadline(DeadlineIn(60'000));
      call->context().set_wait_for_ready(true);  // 1000 connections come up together
      sim.stub->async()->Register(&call->context(), &call->request(), call->mutable_response(),
                                  call);
      call->StartCall();
    }
    absl::MutexLock lock(&done_mu);
    done_mu.Await(absl::Condition(
        +[](int* p) { return *p == 0; }, &pending));
    if (!first_error.ok()) {
      return absl::Status(first_error.code(), absl::StrCat("register: ", first_error.message()));
    }
    return absl::OkStatus();
  }

  // Starts each agent's Lease and Heartbeat loops; they run until Stop().
  void Start() {
    for (Sim& sim : sims_) {
      Lease(sim);
      Heartbeat(sim);
    }
  }

  // Until every agent has a Lease and a Heartbeat call in flight (DEADLINE_EXCEEDED if not).
  absl::Status WaitParked(absl::Duration timeout) {
    const int n = static_cast<int>(sims_.size());
    absl::MutexLock lock(&mu_);
    auto parked = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !error_.ok() || (counts_.leases_parked == n && counts_.heartbeats_parked == n);
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&parked), timeout)) {
      return absl::DeadlineExceededError(absl::StrCat("only ", counts_.leases_parked,
                                                      " leases and ", counts_.heartbeats_parked,
                                                      " heartbeats of ", n, " agents are parked"));
    }
    return error_;
  }

  Counts counts() {
    absl::MutexLock lock(&mu_);
    return counts_;
  }
  // The first failure of an agent's call (that agent's loops stopped there).
  absl::Status error() {
    absl::MutexLock lock(&mu_);
    return error_;
  }

  // Cancels every call in flight and waits until all have ended. Idempotent.
  void Stop() {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (grpc::ClientContext* ctx : active_) ctx->TryCancel();
    mu_.Await(absl::Condition(
        +[](std::set<grpc::ClientContext*>* a) { return a->empty(); }, &active_));
  }

 private:
  struct Sim {
    std::string name;
    std::string session;
    std::unique_ptr<farm::v1::AgentService::Stub> stub;
    int64_t heartbeat_wait_ms = 0;
  };

  enum class Kind { kLease, kHeartbeat };

  // Tracks a call about to start; false when stopping (then it must not start).
  bool Begin(grpc::ClientContext* ctx, Kind kind) {
    absl::MutexLock lock(&mu_);
    if (stopping_) return false;
    active_.insert(ctx);
    ++(kind == Kind::kLease ? counts_.leases_parked : counts_.heartbeats_parked);
    return true;
  }

  // Untracks an ended call; whether its loop goes on (no: when stopping, or on an error, which
  // is recorded if it is the first).
  bool End(grpc::ClientContext* ctx, Kind kind, absl::Status status) {
    absl::MutexLock lock(&mu_);
    active_.erase(ctx);
    --(kind == Kind::kLease ? counts_.leases_parked : counts_.heartbeats_parked);
    if (stopping_) return false;
    if (!status.ok()) {
      if (error_.ok()) error_ = std::move(status);
      return false;
    }
    ++(kind == Kind::kLease ? counts_.leases_answered : counts_.heartbeats_answered);
    return true;
  }

  void Lease(Sim& sim) {
    auto* call = new LeaseCall([this, &sim](LeaseCall* c, const grpc::Status& status) {
      absl::Status s = common::FromGrpcStatus(status);
      if (s.ok() && c->response().has_job()) {
        s = absl::InternalError(absl::StrCat(sim.name, " was leased job ", c->response().job().id(),
                                             "; none was submitted"));
      }
      if (!s.ok()) s = absl::Status(s.code(), absl::StrCat(sim.name, " Lease: ", s.message()));
      if (End(&c->context(), Kind::kLease, std::move(s))) Lease(sim);
    });
    call->request().set_agent(sim.name);
    call->request().set_session_id(sim.session);
    call->request().set_wait_ms(kLeaseWaitMs);
    call->context().set_deadline(DeadlineIn(kLeaseWaitMs + kLongPollSlackMs));
    call->context().set_wait_for_ready(true);
    if (!Begin(&call->context(), Kind::kLease)) {
      delete call;  // never started, so OnDone will not run
      return;
    }
    sim.stub->async()->Lease(&call->context(), &call->request(), call->mutable_response(), call);
    call->StartCall();
  }

  void Heartbeat(Sim& sim) {
    const int64_t sent = MonotonicNs();
    auto* call =
        new HeartbeatCall([this, &sim, sent](HeartbeatCall* c, const grpc::Status& status) {
          absl::Status s = common::FromGrpcStatus(status);
          // An idle agent's heartbeat is parked for the whole wait. The real agent would re-send
          // an early answer after 100 ms; here it is a finding, and must not become a busy loop.
          const int64_t held_ms = (MonotonicNs() - sent) / 1'000'000;
          if (s.ok() && held_ms < sim.heartbeat_wait_ms / 2) {
            s = absl::InternalError(absl::StrCat("answered after ", held_ms, " ms; parked for ",
                                                 sim.heartbeat_wait_ms, " ms expected"));
          }
          if (!s.ok())
            s = absl::Status(s.code(), absl::StrCat(sim.name, " Heartbeat: ", s.message()));
          if (End(&c->context(), Kind::kHeartbeat, std::move(s))) Heartbeat(sim);
        });
    call->request().set_agent(sim.name);
    call->request().set_session_id(sim.session);
    call->request().set_wait_ms(sim.heartbeat_wait_ms);
    call->context().set_deadline(DeadlineIn(sim.heartbeat_wait_ms + kLongPollSlackMs));
    call->context().set_wait_for_ready(true);
    if (!Begin(&call->context(), Kind::kHeartbeat)) {
      delete call;
      return;
    }
    sim.stub->async()->Heartbeat(&call->context(), &call->request(), call->mutable_response(),
                                 call);
    call->StartCall();
  }

  std::vector<Sim> sims_;  // fixed after construction; calls point into it
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::set<grpc::ClientContext*> active_ ABSL_GUARDED_BY(mu_);
  Counts counts_ ABSL_GUARDED_BY(mu_);
  absl::Status error_ ABSL_GUARDED_BY(mu_);
};

// Each agent holds a connection here and one in the coordinator (which inherits this limit).
absl::Status RaiseFileLimit(int64_t size) {
  rlimit lim;
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return absl::InternalError("getrlimit failed");
  const rlim_t need = static_cast<rlim_t>(size) + 1024;
  if (lim.rlim_cur >= need) return absl::OkStatus();
  if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < need) {
    return absl::ResourceExhaustedError(
        absl::StrCat(size, " agents need ", need, " open files; the hard limit is ", lim.rlim_max));
  }
  lim.rlim_cur = need;
  if (setrlimit(RLIMIT_NOFILE, &lim) != 0) return absl::InternalError("setrlimit failed");
  return absl::OkStatus();
}

absl::Status CheckListed(BenchFarm& farm, int64_t size) {
  auto admin = farm::v1::AdminService::NewStub(farm.NewChannel());
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(10'000));
  farm::v1::ListAgentsResponse resp;
  FARM_RETURN_IF_ERROR(
      common::FromGrpcStatus(admin->ListAgents(&ctx, farm::v1::ListAgentsRequest(), &resp)));
  int64_t idle = 0;
  for (const farm::v1::AgentInfo& a : resp.agents()) {
    if (absl::StartsWith(a.name(), kNamePrefix) && a.state() == "idle") ++idle;
  }
  if (idle != size) {
    return absl::InternalError(absl::StrCat("ListAgents shows ", idle, " idle simulated agents (",
                                            resp.agents_size(), " in all), not ", size));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Metric>> Run(const BenchEnv& env, int64_t size) {
  FARM_RETURN_IF_ERROR(RaiseFileLimit(size));
  FARM_ASSIGN_OR_RETURN(auto farm, BenchFarm::Create(env));
  FARM_RETURN_IF_ERROR(farm->StartCoordinator());
  const pid_t pid = farm->coordinator()->pid();
  absl::SleepFor(absl::Seconds(1));
  FARM_ASSIGN_OR_RETURN(ProcSample baseline, SampleProcess(pid));

  Fleet fleet(*farm, static_cast<int>(size));
  const int64_t register_start = MonotonicNs();
  FARM_RETURN_IF_ERROR(fleet.Register());
  const double register_s = static_cast<double>(MonotonicNs() - register_start) / 1e9;
  fleet.Start();
  FARM_RETURN_IF_ERROR(fleet.WaitParked(absl::Seconds(60)));
  absl::SleepFor(absl::Seconds(1));  // the parked calls' own setup is over

  FARM_ASSIGN_OR_RETURN(ProcSample before, SampleProcess(pid));
  const Fleet::Counts counts_before = fleet.counts();
  const int64_t window_start = MonotonicNs();
  absl::SleepFor(kWindow);
  FARM_ASSIGN_OR_RETURN(ProcSample after, SampleProcess(pid));
  const double window_s = static_cast<double>(MonotonicNs() - window_start) / 1e9;
  const Fleet::Counts counts_after = fleet.counts();
  FARM_RETURN_IF_ERROR(fleet.error());
  // The window must really have seen every agent poll again and heartbeat.
  const int64_t repolls = counts_after.leases_answered - counts_before.leases_answered;
  const int64_t heartbeats = counts_after.heartbeats_answered - counts_before.heartbeats_answered;
  if (repolls < size || heartbeats < size) {
    return absl::InternalError(absl::StrCat("in the window only ", repolls, " lease re-polls and ",
                                            heartbeats, " heartbeats of ", size, " agents"));
  }
  FARM_RETURN_IF_ERROR(CheckListed(*farm, size));
  fleet.Stop();

  const int64_t above = after.rss_bytes - baseline.rss_bytes;
  return std::vector<Metric>{
      {"idle_cpu_pct", 100 * (after.cpu_seconds - before.cpu_seconds) / window_s, "%"},
      {"rss_above_baseline_mb", MiB(above), "MiB"},
      {"rss_kb_per_agent", static_cast<double>(above) / 1024 / static_cast<double>(size), "KiB"},
      {"baseline_rss_mb", MiB(baseline.rss_bytes), "MiB"},
      {"register_all_s", register_s, "s"},
      {"calls_per_s", static_cast<double>(repolls + heartbeats) / window_s, "calls/s"},
  };
}

}  // namespace

Scenario AgentsScenario() {
  Scenario s;
  s.name = "agents";
  s.description = "SIZE connected idle agents (simulated in one process): coordinator memory, CPU";
  s.size_unit = "agents";
  s.small = 100;
  s.large = 1000;
  s.quick_small = 50;
  s.quick_large = 200;
  s.growth_metrics = {"rss_kb_per_agent", "idle_cpu_pct"};
  s.targets = {{"rss_above_baseline_mb", Target::kAtMost, 100},
               {"idle_cpu_pct", Target::kAtMost, 5}};
  s.run = Run;
  return s;
}

}  // namespace farm::bench
