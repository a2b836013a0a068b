// The benchmark harness (tests/bench): a farm of real binaries on loopback, process counters
// from /proc, and the shape every scenario reports in. Benchmarks measure; they never assert
// on speed (CONVENTIONS.md 14). tests/bench/run.sh builds in Release and runs farm-bench,
// which repeats each scenario, takes medians and prints the table and the JSON file.
//
// A scenario is a function (size → metrics) run in this process: it boots what it needs with
// BenchFarm (farm-coordinator and farm-agent as subprocesses, each in its own directory of a
// fresh temp tree on the real disk, fsync on), drives it through the public gRPC API and
// returns what it measured. Thread-compatible: a BenchFarm is used from the thread that made it
// (its children get SIGKILL when that thread exits, see tests/testing/subprocess.h).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "farm/v1/farm.grpc.pb.h"
#include "tests/bench/bench_security.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"

namespace grpc {
class Channel;
}

namespace farm::bench {

// ---- what a scenario reports

// One figure of one run, e.g. {"p50_ms", 1.4, "ms"}.
struct Metric {
  std::string name;
  double value = 0;
  std::string unit;
};

// A target from the issue for one metric at the larger size: value <= bound (kAtMost) or
// value >= bound (kAtLeast).
struct Target {
  std::string metric;
  enum Kind { kAtMost, kAtLeast } kind = kAtMost;
  double bound = 0;
};

struct BenchEnv;

struct Scenario {
  std::string name;         // "dispatch"
  std::string description;  // one line for the table's notes
  std::string size_unit;    // "jobs", "MiB", "agents"
  // The two sizes growth is compared at (smaller first), and the smaller pair for --quick.
  int64_t small = 0;
  int64_t large = 0;
  int64_t quick_small = 0;
  int64_t quick_large = 0;
  // Metrics whose growth is printed: (value at large) / (value at small). These are per-unit
  // costs or rates, so 1.0 means linear growth; for a "per unit" cost a ratio well above 1
  // means growth worse than linear.
  std::vector<std::string> growth_metrics;
  std::vector<Target> targets;
  std::function<absl::StatusOr<std::vector<Metric>>(const BenchEnv& env, int64_t size)> run;
};

// The scenarios of the suite, in the order the table lists them (farm_bench.cc).
std::vector<Scenario> AllScenarios();

// ---- the environment every scenario gets

struct BenchEnv {
  std::string bin_dir;    // farm-coordinator, farm-agent, farm-bench-stamp
  std::string data_root;  // where farms' temp trees go (a real disk: fsync matters)
  bool verbose = false;
  // How the farm's processes and the benchmark reach each other (bench_security.h): plaintext
  // on loopback, or TLS with client certificates under --tls.
  std::shared_ptr<const BenchSecurity> security;
  // --metrics: coordinators serve /metrics on a loopback port (--http_listen), which turns on
  // the flow and gRPC call metrics; for timing the metrics' cost, on against off.
  bool metrics = false;
};

// ---- process counters

struct ProcSample {
  double cpu_seconds = 0;  // user + system, whole process (all threads)
  // user + system of its children that have exited and been waited for (an agent's steps).
  double children_cpu_seconds = 0;
  int64_t rss_bytes = 0;   // VmRSS
  int64_t hwm_bytes = 0;   // VmHWM: the peak RSS so far
  int64_t anon_bytes = 0;  // RssAnon: the part of the RSS that is not mapped files (heap, stacks)
};
// From /proc/PID/stat and /proc/PID/status. NOT_FOUND when the process is gone.
absl::StatusOr<ProcSample> SampleProcess(pid_t pid);
// CPU time the whole machine has spent busy (all cores, everything but idle and iowait), from
// /proc/stat.
absl::StatusOr<double> MachineBusySeconds();

// ---- time and statistics

int64_t WallNs();       // CLOCK_REALTIME, for comparing with times the farm records
int64_t MonotonicNs();  // CLOCK_MONOTONIC, for intervals
// Nearest-rank percentile (p in [0,1]) of a copy of v; 0 for an empty v.
double Percentile(std::vector<double> v, double p);
double Median(std::vector<double> v);

// Polls `condition` every `poll` until true (OK) or `timeout` (DEADLINE_EXCEEDED naming `what`).
absl::Status WaitFor(const std::function<bool()>& condition, absl::Duration timeout,
                     const std::string& what, absl::Duration poll = absl::Milliseconds(2));

// ---- a farm of real binaries

struct BenchAgent {
  std::string name;
  int slots = 1;
  std::vector<std::string> extra_flags;
};

class BenchFarm {
 public:
  // A fresh directory under env.data_root; starts nothing.
  static absl::StatusOr<std::unique_ptr<BenchFarm>> Create(const BenchEnv& env);
  ~BenchFarm();  // stops agents, then the coordinator (SIGTERM, SIGKILL after 10 s)

  const std::string& root() const { return root_.path(); }
  // Leaves the farm's directory (data, every process's log) on disk for a post-mortem.
  void Keep() { root_.Keep(); }
  std::string data_dir() const { return root_.Join("coordinator-data"); }

  // farm-coordinator --listen=127.0.0.1:0 --data_dir --port_file FLAGS...; returns once the
  // coordinator answers a call (it has written its port file and serves).
  absl::Status StartCoordinator(std::vector<std::string> flags = {});
  // SIGTERM and wait (a clean stop).
  absl::Status StopCoordinator();
  // Starts it again on the same data directory and address; returns once it serves.
  absl::Status RestartCoordinator();
  testing::Subprocess* coordinator() { return coordinator_.get(); }
  const std::string& address() const { return address_; }

  // Starts farm-agent against the coordinator in <root>/agents/NAME (its log in
  // <root>/NAME.log). Does not wait for registration (WaitForAgents).
  absl::Status StartAgent(const BenchAgent& agent);
  // Until `count` agents are listed by AdminService.ListAgents.
  absl::Status WaitForAgents(int count, absl::Duration timeout = absl::Seconds(30));
  testing::Subprocess* agent(const std::string& name);

  // A new channel to the coordinator. `own_connection` gives it its own TCP connection (as a
  // separate client process would have) instead of sharing one with other channels.
  std::shared_ptr<grpc::Channel> NewChannel(bool own_connection = false) const;
  // A JobService stub on a channel of its own connection, connected already (so that
  // connecting is not part of what is measured). UNAVAILABLE when it cannot connect in 10 s.
  absl::StatusOr<std::unique_ptr<farm::v1::JobService::Stub>> ConnectedJobClient() const;
  farm::v1::JobService::Stub* jobs() { return jobs_.get(); }

  // Polls Get(job_id) until the job is SUCCEEDED/FAILED/CANCELLED; the final job.
  absl::StatusOr<farm::v1::Job> WaitForJobDone(const std::string& job_id, absl::Duration timeout,
                                               absl::Duration poll = absl::Milliseconds(5));

 private:
  BenchFarm(BenchEnv env, testing::TempDir root) : env_(std::move(env)), root_(std::move(root)) {}
  absl::Status Launch(const std::string& listen);
  absl::Status WaitServing(absl::Duration timeout);

  BenchEnv env_;
  testing::TempDir root_;
  std::vector<std::string> coordinator_flags_;
  std::unique_ptr<testing::Subprocess> coordinator_;
  int coordinator_starts_ = 0;
  std::string address_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<farm::v1::JobService::Stub> jobs_;
  std::map<std::string, std::unique_ptr<testing::Subprocess>> agents_;
};

// A JobSpec of one step that runs `run` (through the agent's default shell).
farm::v1::JobSpec OneStepJob(const std::string& name, const std::string& run);

// Submits `spec` with a deadline; the job id.
absl::StatusOr<std::string> Submit(farm::v1::JobService::Stub* jobs, const farm::v1::JobSpec& spec,
                                   const std::string& request_id = "");

// Dispatch latency, sampled `runs` times one after another on an idle agent: each run submits a
// one-step job whose step program is farm-bench-stamp (it prints the wall clock in ns as it
// starts), waits for the job to end and reads its output. A sample is that clock minus the
// wall clock just before the Submit call. `labels` become the job's required labels.
struct DispatchSamples {
  std::vector<double> total_ms;  // submit → step running
};
absl::StatusOr<DispatchSamples> MeasureDispatch(BenchFarm& farm, const BenchEnv& env, int runs,
                                                const std::map<std::string, std::string>& labels);

}  // namespace farm::bench
