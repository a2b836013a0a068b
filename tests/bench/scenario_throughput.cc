// throughput: no-op jobs end to end, durable (fsync on), on 4 agents of 4 slots each. Several
// client threads (each with its own connection and a request id per submit, as farmctl does)
// submit one-step jobs running `true` as fast as the coordinator answers, while the agents
// lease, run and complete them. The rate is jobs over (the last job's finished_ms - the wall
// clock before the first submit); finished_ms is the coordinator's wall clock, so the way the
// end is observed does not enter the figure.
#include <grpcpp/grpcpp.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/status_macros.h"
#include "tests/bench/scenarios.h"

extern char** environ;

namespace farm::bench {
namespace {

constexpr int kAgents = 4;
constexpr int kSlots = 4;
constexpr int kSubmitters = 8;

struct Submitter {
  std::unique_ptr<farm::v1::JobService::Stub> jobs;
  int64_t count = 0;
  std::vector<std::string> ids;
  absl::Status status;
};

void RunSubmitter(int index, const absl::Notification& start, Submitter& s) {
  const farm::v1::JobSpec spec = OneStepJob("noop", "true");
  s.ids.reserve(s.count);
  start.WaitForNotification();
  for (int64_t i = 0; i < s.count; ++i) {
    absl::StatusOr<std::string> id =
        Submit(s.jobs.get(), spec, absl::StrCat("bench-throughput-", index, "-", i));
    if (!id.ok()) {
      s.status = id.status();
      return;
    }
    s.ids.push_back(*std::move(id));
  }
}

// The summed CPU of the agent processes themselves (leasing, spawning, reporting) and of their
// step processes (children, counted once reaped).
struct AgentsCpu {
  double own = 0;
  double steps = 0;
};
absl::StatusOr<AgentsCpu> AgentsCpuSeconds(BenchFarm& farm) {
  AgentsCpu total;
  for (int i = 1; i <= kAgents; ++i) {
    FARM_ASSIGN_OR_RETURN(ProcSample s, SampleProcess(farm.agent(absl::StrCat("a", i))->pid()));
    total.own += s.cpu_seconds;
    total.steps += s.children_cpu_seconds;
  }
  return total;
}

// The machine's floor for these jobs, in the same run: the CPU of starting `/bin/sh -e -c true`
// (what every job's step costs before the farm does anything) from this process, in ms.
absl::StatusOr<double> ShellCpuMs(int runs) {
  rusage before, after;
  getrusage(RUSAGE_CHILDREN, &before);
  for (int i = 0; i < runs; ++i) {
    char* argv[] = {const_cast<char*>("/bin/sh"), const_cast<char*>("-e"), const_cast<char*>("-c"),
                    const_cast<char*>("true"), nullptr};
    pid_t pid = 0;
    if (const int err = posix_spawn(&pid, "/bin/sh", nullptr, nullptr, argv, environ); err != 0) {
      return absl::ErrnoToStatus(err, "cannot start /bin/sh");
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
  }
  getrusage(RUSAGE_CHILDREN, &after);
  auto ms = [](const timeval& tv) { return tv.tv_sec * 1e3 + tv.tv_usec / 1e3; };
  return (ms(after.ru_utime) - ms(before.ru_utime) + ms(after.ru_stime) - ms(before.ru_stime)) /
         runs;
}

absl::StatusOr<std::vector<Metric>> Run(const BenchEnv& env, int64_t size) {
  FARM_ASSIGN_OR_RETURN(const double shell_cpu_ms, ShellCpuMs(200));
  FARM_ASSIGN_OR_RETURN(auto farm, BenchFarm::Create(env));
  FARM_RETURN_IF_ERROR(farm->StartCoordinator());
  for (int i = 1; i <= kAgents; ++i) {
    FARM_RETURN_IF_ERROR(farm->StartAgent({absl::StrCat("a", i), kSlots, {}}));
  }
  FARM_RETURN_IF_ERROR(farm->WaitForAgents(kAgents));
  const pid_t coordinator = farm->coordinator()->pid();
  // Generous: a farm an order of magnitude below the target still finishes.
  const absl::Duration timeout = absl::Seconds(120) + absl::Milliseconds(20) * size;

  // One job per slot first: every agent has run a step, and a failing `true` stops us here.
  for (int i = 0; i < kAgents * kSlots; ++i) {
    FARM_ASSIGN_OR_RETURN(std::string id, Submit(farm->jobs(), OneStepJob("warm-up", "true")));
    FARM_ASSIGN_OR_RETURN(farm::v1::Job job, farm->WaitForJobDone(id, absl::Seconds(30)));
    if (job.state() != farm::v1::SUCCEEDED) {
      return absl::InternalError(absl::StrCat(
          "warm-up job ", id, " ended ", farm::v1::JobState_Name(job.state()), ": ", job.reason()));
    }
  }

  std::vector<Submitter> submitters(kSubmitters);
  for (int i = 0; i < kSubmitters; ++i) {
    FARM_ASSIGN_OR_RETURN(submitters[i].jobs, farm->ConnectedJobClient());
    submitters[i].count = size / kSubmitters + (i < size % kSubmitters ? 1 : 0);
  }
  absl::Notification start;
  std::vector<std::thread> threads;
  for (int i = 0; i < kSubmitters; ++i) {
    threads.emplace_back([i, &start, &submitters] { RunSubmitter(i, start, submitters[i]); });
  }

  FARM_ASSIGN_OR_RETURN(ProcSample coordinator0, SampleProcess(coordinator));
  FARM_ASSIGN_OR_RETURN(AgentsCpu agents0, AgentsCpuSeconds(*farm));
  FARM_ASSIGN_OR_RETURN(double machine0, MachineBusySeconds());
  const int64_t t0 = WallNs();
  start.Notify();
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < kSubmitters; ++i) {
    if (!submitters[i].status.ok()) {
      return absl::Status(submitters[i].status.code(),
                          absl::StrCat("submitter ", i, " submit ", submitters[i].ids.size(), ": ",
                                       submitters[i].status.message()));
    }
  }

  // Jobs run in about submit order, so once each submitter's last job ended the farm is (all
  // but) idle. A slow poll: the waiting should cost the coordinator next to nothing.
  for (const Submitter& s : submitters) {
    if (s.ids.empty()) continue;
    FARM_RETURN_IF_ERROR(
        farm->WaitForJobDone(s.ids.back(), timeout, absl::Milliseconds(20)).status());
  }
  FARM_ASSIGN_OR_RETURN(ProcSample coordinator1, SampleProcess(coordinator));
  FARM_ASSIGN_OR_RETURN(AgentsCpu agents1, AgentsCpuSeconds(*farm));
  FARM_ASSIGN_OR_RETURN(double machine1, MachineBusySeconds());

  // Now every job, after the measured window: each must have succeeded (waiting for any
  // straggler), and the run ends when the last one finished.
  int64_t end_ms = 0;
  std::vector<double> latency_ms;
  latency_ms.reserve(size);
  for (const Submitter& s : submitters) {
    for (const std::string& id : s.ids) {
      FARM_ASSIGN_OR_RETURN(farm::v1::Job job,
                            farm->WaitForJobDone(id, timeout, absl::Milliseconds(20)));
      if (job.state() != farm::v1::SUCCEEDED) {
        return absl::InternalError(absl::StrCat(
            "job ", id, " ended ", farm::v1::JobState_Name(job.state()), ": ", job.reason()));
      }
      end_ms = std::max(end_ms, job.finished_ms());
      latency_ms.push_back(static_cast<double>(job.finished_ms() - job.submitted_ms()));
    }
  }

  const double seconds = (static_cast<double>(end_ms) * 1e6 - static_cast<double>(t0)) / 1e9;
  if (seconds <= 0) return absl::InternalError("the last job finished before the first submit");
  const double n = static_cast<double>(size);
  return std::vector<Metric>{
      {"jobs_per_s", n / seconds, "/s"},
      {"coordinator_cpu_ms_per_job",
       (coordinator1.cpu_seconds - coordinator0.cpu_seconds) * 1e3 / n, "ms"},
      {"agents_cpu_ms_per_job", (agents1.own - agents0.own) * 1e3 / n, "ms"},
      {"steps_cpu_ms_per_job", (agents1.steps - agents0.steps) * 1e3 / n, "ms"},
      // Everything the machine did meanwhile, this client and the kernel included: with 2
      // cores, 1000 jobs/s leaves 2 ms per job for all of it.
      {"machine_cpu_ms_per_job", (machine1 - machine0) * 1e3 / n, "ms"},
      {"shell_cpu_ms", shell_cpu_ms, "ms"},
      // What the cores could do if they did nothing but start the jobs' shells.
      {"shell_floor_jobs_per_s",
       static_cast<double>(sysconf(_SC_NPROCESSORS_ONLN)) * 1e3 / shell_cpu_ms, "/s"},
      {"latency_p50_ms", Percentile(latency_ms, 0.5), "ms"},
      {"latency_p99_ms", Percentile(latency_ms, 0.99), "ms"},
      {"coordinator_rss_mib", static_cast<double>(coordinator1.rss_bytes) / (1 << 20), "MiB"},
  };
}

}  // namespace

Scenario ThroughputScenario() {
  Scenario s;
  s.name = "throughput";
  s.description = "no-op jobs end to end, 4 agents × 4 slots, durable; 8 submitting clients";
  s.size_unit = "jobs";
  s.small = 2'000;
  s.large = 20'000;
  s.quick_small = 500;
  s.quick_large = 2'000;
  s.growth_metrics = {"jobs_per_s", "coordinator_cpu_ms_per_job"};
  s.targets = {{"jobs_per_s", Target::kAtLeast, 1'000},
               {"coordinator_cpu_ms_per_job", Target::kAtMost, 0.5}};
  s.run = Run;
  return s;
}

}  // namespace farm::bench
