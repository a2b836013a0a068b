// submit: durable submits from 64 concurrent clients against a coordinator with no agents (the
// jobs stay queued, so this is the submit path alone: validation, the engine's group commit
// with fsync, and the reply). Each client is a thread with its own TCP connection submitting
// its share of one-step jobs one after another, each with its own request id (as farmctl does).
// Time runs from a start barrier (connections already up) to the last reply.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "tests/bench/scenarios.h"

namespace farm::bench {
namespace {

constexpr int kClients = 64;

struct Client {
  std::unique_ptr<farm::v1::JobService::Stub> jobs;
  int64_t count = 0;
  std::vector<std::string> ids;
  std::vector<double> latency_ms;
  int64_t last_reply_ns = 0;  // monotonic
  absl::Status status;
};

void RunClient(int index, const absl::Notification& start, Client& client) {
  const farm::v1::JobSpec spec = OneStepJob("submit", "true");
  client.ids.reserve(client.count);
  client.latency_ms.reserve(client.count);
  start.WaitForNotification();
  for (int64_t i = 0; i < client.count; ++i) {
    const int64_t t0 = MonotonicNs();
    absl::StatusOr<std::string> id =
        Submit(client.jobs.get(), spec, absl::StrCat("bench-submit-", index, "-", i));
    const int64_t t1 = MonotonicNs();
    if (!id.ok()) {
      client.status = id.status();
      return;
    }
    client.ids.push_back(*std::move(id));
    client.latency_ms.push_back(static_cast<double>(t1 - t0) / 1e6);
    client.last_reply_ns = t1;
  }
}

// Every submit made exactly one job: the ids are distinct and, as ids are the submit sequence
// of a fresh coordinator, fill [1, size]; the coordinator's newest job is the last of them and
// is queued. Costs two calls, whatever the size.
absl::Status Verify(BenchFarm& farm, const std::vector<Client>& clients, int64_t size) {
  std::set<uint64_t> seqs;
  for (const Client& c : clients) {
    for (const std::string& id : c.ids) {
      uint64_t seq = 0;
      if (!absl::SimpleAtoi(id, &seq)) {
        return absl::InternalError(absl::StrCat("job id \"", id, "\" is not a number"));
      }
      seqs.insert(seq);
    }
  }
  if (static_cast<int64_t>(seqs.size()) != size || *seqs.begin() != 1 ||
      *seqs.rbegin() != static_cast<uint64_t>(size)) {
    return absl::InternalError(
        absl::StrCat(size, " submits gave ", seqs.size(), " distinct ids, not 1..", size));
  }
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  farm::v1::ListJobsRequest req;
  req.set_limit(1);
  farm::v1::ListJobsResponse resp;
  FARM_RETURN_IF_ERROR(common::FromGrpcStatus(farm.jobs()->List(&ctx, req, &resp)));
  const std::string last = absl::StrCat(size);
  if (resp.jobs_size() != 1 || resp.jobs(0).id() != last ||
      resp.jobs(0).state() != farm::v1::QUEUED) {
    return absl::InternalError(
        absl::StrCat("the newest job is not job ", last, ", queued: ", resp.ShortDebugString()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Metric>> Run(const BenchEnv& env, int64_t size) {
  FARM_ASSIGN_OR_RETURN(auto farm, BenchFarm::Create(env));
  FARM_RETURN_IF_ERROR(farm->StartCoordinator());
  const pid_t coordinator = farm->coordinator()->pid();

  std::vector<Client> clients(kClients);
  for (int i = 0; i < kClients; ++i) {
    FARM_ASSIGN_OR_RETURN(clients[i].jobs, farm->ConnectedJobClient());
    clients[i].count = size / kClients + (i < size % kClients ? 1 : 0);
  }

  absl::Notification start;
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([i, &start, &clients] { RunClient(i, start, clients[i]); });
  }
  FARM_ASSIGN_OR_RETURN(ProcSample cpu0, SampleProcess(coordinator));
  FARM_ASSIGN_OR_RETURN(double machine0, MachineBusySeconds());
  const int64_t t0 = MonotonicNs();
  start.Notify();
  for (std::thread& t : threads) t.join();
  FARM_ASSIGN_OR_RETURN(ProcSample cpu1, SampleProcess(coordinator));
  FARM_ASSIGN_OR_RETURN(double machine1, MachineBusySeconds());

  int64_t end = t0;
  std::vector<double> latency_ms;
  latency_ms.reserve(size);
  for (int i = 0; i < kClients; ++i) {
    const Client& c = clients[i];
    if (!c.status.ok()) {
      return absl::Status(c.status.code(), absl::StrCat("client ", i, " submit ", c.ids.size(),
                                                        ": ", c.status.message()));
    }
    end = std::max(end, c.last_reply_ns);
    latency_ms.insert(latency_ms.end(), c.latency_ms.begin(), c.latency_ms.end());
  }
  FARM_RETURN_IF_ERROR(Verify(*farm, clients, size));

  const double seconds = static_cast<double>(end - t0) / 1e9;
  const double n = static_cast<double>(size);
  return std::vector<Metric>{
      {"submits_per_s", n / seconds, "/s"},
      {"coordinator_cpu_us_per_submit", (cpu1.cpu_seconds - cpu0.cpu_seconds) * 1e6 / n, "us"},
      // The clients (this process) and the kernel included: what the 2 cores spend per submit.
      {"machine_cpu_us_per_submit", (machine1 - machine0) * 1e6 / n, "us"},
      {"submit_p50_ms", Percentile(latency_ms, 0.5), "ms"},
      {"submit_p99_ms", Percentile(latency_ms, 0.99), "ms"},
      {"coordinator_rss_mib", static_cast<double>(cpu1.rss_bytes) / (1 << 20), "MiB"},
  };
}

}  // namespace

Scenario SubmitScenario() {
  Scenario s;
  s.name = "submit";
  s.description = "durable submits from 64 concurrent clients (own connections, no agents)";
  s.size_unit = "jobs";
  s.small = 10'000;
  s.large = 100'000;
  s.quick_small = 2'000;
  s.quick_large = 10'000;
  s.growth_metrics = {"submits_per_s", "coordinator_cpu_us_per_submit"};
  s.targets = {{"submits_per_s", Target::kAtLeast, 10'000}};
  s.run = Run;
  return s;
}

}  // namespace farm::bench
