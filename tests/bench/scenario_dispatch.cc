// dispatch: submit → first step running on an idle agent, durable (fsync on), one job at a time.
// The step program is farm-bench-stamp (static; it prints the clock as it starts), so a sample
// is the farm's part (durable submit, lease to the parked agent, the agent's spawn) plus the
// kernel's fork and exec. Sizes are sample counts: growth shows whether latency drifts as the
// farm's history grows. spawn_baseline_p50_ms is the machine's floor in the same run: the
// stamp started directly by this process.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"
#include "tests/bench/scenarios.h"

extern char** environ;

namespace farm::bench {
namespace {

// The machine's own floor, measured in the same run: this process starts farm-bench-stamp
// (posix_spawn, which is vfork and exec, as the agent does) and reads the clock it prints.
absl::StatusOr<double> SpawnMs(const std::string& stamp) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return absl::ErrnoToStatus(errno, "pipe");
  common::UniqueFd read_end(fds[0]), write_end(fds[1]);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, write_end.get(), 1);
  char* argv[] = {const_cast<char*>(stamp.c_str()), nullptr};
  pid_t pid = 0;
  const int64_t t0 = WallNs();
  const int err = posix_spawn(&pid, stamp.c_str(), &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  if (err != 0) return absl::ErrnoToStatus(err, absl::StrCat("cannot start ", stamp));
  write_end.Reset();
  std::string out;
  char buf[64];
  ssize_t n;
  while ((n = ::read(read_end.get(), buf, sizeof(buf))) > 0) out.append(buf, n);
  int status = 0;
  ::waitpid(pid, &status, 0);
  int64_t running_ns = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(out), &running_ns)) {
    return absl::InternalError(absl::StrCat(stamp, " printed \"", out, "\""));
  }
  return static_cast<double>(running_ns - t0) / 1e6;
}

}  // namespace

Scenario DispatchScenario() {
  Scenario s;
  s.name = "dispatch";
  s.description = "submit → first step running on an idle agent (durable), sequential";
  s.size_unit = "jobs";
  s.small = 200;
  s.large = 1000;
  s.quick_small = 50;
  s.quick_large = 200;
  s.growth_metrics = {"p50_ms", "p99_ms"};
  s.targets = {{"p50_ms", Target::kAtMost, 2}, {"p99_ms", Target::kAtMost, 10}};
  s.run = [](const BenchEnv& env, int64_t size) -> absl::StatusOr<std::vector<Metric>> {
    FARM_ASSIGN_OR_RETURN(auto farm, BenchFarm::Create(env));
    FARM_RETURN_IF_ERROR(farm->StartCoordinator());
    FARM_RETURN_IF_ERROR(farm->StartAgent({"a1", 1, {}}));
    FARM_RETURN_IF_ERROR(farm->WaitForAgents(1));
    // A few jobs first: connections and the agent's parked lease are warm, as on a farm that
    // has been up for a while.
    FARM_RETURN_IF_ERROR(MeasureDispatch(*farm, env, 5, {}).status());
    FARM_ASSIGN_OR_RETURN(DispatchSamples samples,
                          MeasureDispatch(*farm, env, static_cast<int>(size), {}));
    std::vector<double> spawn_ms;
    for (int i = 0; i < 100; ++i) {
      FARM_ASSIGN_OR_RETURN(double ms, SpawnMs(env.bin_dir + "/farm-bench-stamp"));
      spawn_ms.push_back(ms);
    }
    return std::vector<Metric>{
        {"p50_ms", Percentile(samples.total_ms, 0.5), "ms"},
        {"p99_ms", Percentile(samples.total_ms, 0.99), "ms"},
        {"max_ms", Percentile(samples.total_ms, 1.0), "ms"},
        {"spawn_baseline_p50_ms", Percentile(spawn_ms, 0.5), "ms"},
    };
  };
  return s;
}

}  // namespace farm::bench
