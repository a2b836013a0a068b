// backlog: SIZE queued jobs that no agent can run (they require pool=backlog). The scheduler
// promises that memory grows with active work, not with the backlog (scheduler.h): it keeps
// only a window of queue keys per label set. So this measures what a big queue costs: the
// coordinator's RSS after the fill and after a clean restart, how long that restart takes,
// dispatch latency for other work (pool=live) past the backlog, and how fast an agent of the
// backlog's pool leases from it (each lease pops the window, which refills from the store).
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "tests/bench/scenarios.h"

namespace farm::bench {
namespace {

constexpr int kClients = 64;
constexpr int kBacklogLeases = 200;
constexpr int kDispatchRuns = 50;
// Long enough for RocksDB's flushes and compactions after the fill (or the start) to settle.
constexpr absl::Duration kSettle = absl::Seconds(2);

std::chrono::system_clock::time_point DeadlineIn(absl::Duration d) {
  return std::chrono::system_clock::now() + absl::ToChronoMilliseconds(d);
}

double MiB(int64_t bytes) { return static_cast<double>(bytes) / (1 << 20); }

farm::v1::JobSpec BacklogJob() {
  farm::v1::JobSpec spec = OneStepJob("backlog", "true");
  (*spec.mutable_labels())["pool"] = "backlog";
  return spec;
}

// Submits `size` jobs from kClients clients, each on its own connection with one call in
// flight; the ids of the submitted jobs, in no particular order.
absl::StatusOr<std::vector<std::string>> Fill(BenchFarm& farm, int64_t size) {
  const farm::v1::JobSpec spec = BacklogJob();
  std::atomic<int64_t> next{0};
  absl::Mutex mu;
  absl::Status first_error;
  std::vector<std::vector<std::string>> ids(kClients);
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c, stub = farm::v1::JobService::NewStub(farm.NewChannel(true))] {
      while (next.fetch_add(1) < size) {
        absl::StatusOr<std::string> id = Submit(stub.get(), spec);
        if (!id.ok()) {
          absl::MutexLock lock(&mu);
          if (first_error.ok()) first_error = id.status();
          next = size;  // the others stop too
          return;
        }
        ids[c].push_back(*std::move(id));
      }
    });
  }
  for (std::thread& t : clients) t.join();
  if (!first_error.ok()) {
    return absl::Status(first_error.code(), absl::StrCat("submit: ", first_error.message()));
  }
  std::vector<std::string> all;
  all.reserve(static_cast<size_t>(size));
  for (auto& v : ids) all.insert(all.end(), v.begin(), v.end());
  if (static_cast<int64_t>(all.size()) != size) {
    return absl::InternalError(absl::StrCat(all.size(), " of ", size, " submits answered"));
  }
  return all;
}

// Gets a sample of the submitted jobs: all must still be queued (e.g. after the restart).
absl::Status CheckQueued(BenchFarm& farm, const std::vector<std::string>& ids, int samples) {
  std::mt19937_64 rng(42);
  for (int i = 0; i < samples; ++i) {
    const std::string& id = ids[rng() % ids.size()];
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(absl::Seconds(10)));
    farm::v1::GetJobRequest req;
    req.set_job_id(id);
    farm::v1::Job job;
    FARM_RETURN_IF_ERROR(common::FromGrpcStatus(farm.jobs()->Get(&ctx, req, &job)));
    if (job.state() != farm::v1::QUEUED) {
      return absl::InternalError(absl::StrCat(
          "backlog job ", id, " is ", farm::v1::JobState_Name(job.state()), ", not QUEUED"));
    }
  }
  return absl::OkStatus();
}

// Registers a simulated agent of the backlog's pool and times `count` sequential leases, each
// of which must hand out a distinct backlog job at once.
absl::StatusOr<std::vector<double>> LeaseFromBacklog(BenchFarm& farm, int count) {
  auto stub = farm::v1::AgentService::NewStub(farm.NewChannel(true));
  const std::string name = "backlog-sim";
  const std::string session = absl::StrCat("bench-", getpid(), "-", MonotonicNs());
  {
    farm::v1::RegisterRequest req;
    req.set_name(name);
    (*req.mutable_labels())["pool"] = "backlog";
    req.set_slots(1);
    req.set_session_id(session);
    farm::v1::RegisterResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(absl::Seconds(10)));
    FARM_RETURN_IF_ERROR(common::FromGrpcStatus(stub->Register(&ctx, req, &resp)));
  }
  std::vector<double> ms;
  std::set<std::string> seen;
  for (int i = 0; i < count; ++i) {
    farm::v1::LeaseRequest req;
    req.set_agent(name);
    req.set_session_id(session);
    req.set_wait_ms(0);  // work is queued: it must come back at once
    farm::v1::LeaseResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(absl::Seconds(10)));
    const int64_t t0 = MonotonicNs();
    FARM_RETURN_IF_ERROR(common::FromGrpcStatus(stub->Lease(&ctx, req, &resp)));
    ms.push_back(static_cast<double>(MonotonicNs() - t0) / 1e6);
    if (!resp.has_job()) {
      return absl::InternalError(absl::StrCat("lease ", i + 1, " from the backlog found no job"));
    }
    auto pool = resp.job().spec().labels().find("pool");
    if (pool == resp.job().spec().labels().end() || pool->second != "backlog" ||
        !seen.insert(resp.job().id()).second) {
      return absl::InternalError(absl::StrCat("lease ", i + 1, " handed out job ", resp.job().id(),
                                              ", not a fresh backlog job"));
    }
  }
  return ms;
}

absl::StatusOr<int64_t> CoordinatorRss(BenchFarm& farm) {
  FARM_ASSIGN_OR_RETURN(ProcSample s, SampleProcess(farm.coordinator()->pid()));
  return s.rss_bytes;
}

absl::StatusOr<std::vector<Metric>> Run(const BenchEnv& env, int64_t size) {
  FARM_ASSIGN_OR_RETURN(auto farm, BenchFarm::Create(env));
  FARM_RETURN_IF_ERROR(farm->StartCoordinator());

  const int64_t fill_start = MonotonicNs();
  FARM_ASSIGN_OR_RETURN(std::vector<std::string> ids, Fill(*farm, size));
  const double fill_s = static_cast<double>(MonotonicNs() - fill_start) / 1e9;
  absl::SleepFor(kSettle);
  FARM_ASSIGN_OR_RETURN(ProcSample filled, SampleProcess(farm->coordinator()->pid()));

  const int64_t stop_start = MonotonicNs();
  FARM_RETURN_IF_ERROR(farm->StopCoordinator());
  const double stop_s = static_cast<double>(MonotonicNs() - stop_start) / 1e9;
  const int64_t restart_start = MonotonicNs();
  FARM_RETURN_IF_ERROR(farm->RestartCoordinator());
  const double restart_s = static_cast<double>(MonotonicNs() - restart_start) / 1e9;
  absl::SleepFor(kSettle);
  FARM_ASSIGN_OR_RETURN(ProcSample restarted, SampleProcess(farm->coordinator()->pid()));
  FARM_RETURN_IF_ERROR(CheckQueued(*farm, ids, 100));

  // Work of another pool must not wait behind (or scan through) the backlog.
  FARM_RETURN_IF_ERROR(farm->StartAgent({"live", 1, {"--labels=pool=live"}}));
  FARM_RETURN_IF_ERROR(farm->WaitForAgents(1));
  const std::map<std::string, std::string> live = {{"pool", "live"}};
  FARM_RETURN_IF_ERROR(MeasureDispatch(*farm, env, 3, live).status());  // warm connections
  FARM_ASSIGN_OR_RETURN(DispatchSamples dispatch, MeasureDispatch(*farm, env, kDispatchRuns, live));

  FARM_ASSIGN_OR_RETURN(std::vector<double> lease_ms, LeaseFromBacklog(*farm, kBacklogLeases));
  FARM_ASSIGN_OR_RETURN(int64_t final_rss, CoordinatorRss(*farm));

  return std::vector<Metric>{
      {"fill_jobs_per_s", static_cast<double>(size) / fill_s, "jobs/s"},
      {"rss_mb", MiB(filled.rss_bytes), "MiB"},
      {"peak_rss_mb", MiB(filled.hwm_bytes), "MiB"},
      {"stop_s", stop_s, "s"},
      {"restart_s", restart_s, "s"},
      {"rss_mb_after_restart", MiB(restarted.rss_bytes), "MiB"},
      {"rss_anon_mb_after_restart", MiB(restarted.anon_bytes), "MiB"},
      {"dispatch_p50_ms", Percentile(dispatch.total_ms, 0.5), "ms"},
      {"dispatch_p99_ms", Percentile(dispatch.total_ms, 0.99), "ms"},
      {"lease_from_backlog_p50_ms", Percentile(lease_ms, 0.5), "ms"},
      {"lease_from_backlog_p99_ms", Percentile(lease_ms, 0.99), "ms"},
      {"rss_mb_at_end", MiB(final_rss), "MiB"},
  };
}

}  // namespace

Scenario BacklogScenario() {
  Scenario s;
  s.name = "backlog";
  s.description = "SIZE queued jobs: memory, restart, dispatch past them, leasing from them";
  s.size_unit = "jobs";
  s.small = 100'000;
  s.large = 1'000'000;
  s.quick_small = 10'000;
  s.quick_large = 100'000;
  // Constants, not per-job costs: ~1 means the backlog costs nothing here.
  s.growth_metrics = {"rss_mb", "restart_s", "dispatch_p50_ms"};
  s.targets = {{"rss_mb", Target::kAtMost, 256},
               {"restart_s", Target::kAtMost, 3},
               {"dispatch_p50_ms", Target::kAtMost, 2}};
  s.run = Run;
  return s;
}

}  // namespace farm::bench
