// farm-bench: runs the benchmark scenarios against the real binaries, each at two sizes and
// several times, and prints one table (Markdown) and one JSON file with the median, min and max
// of every figure, the targets, the growth ratios, the machine and the commit (report.h: a
// size with a failed run is failed, never met).
//
//   farm-bench [--scenarios=dispatch,submit] [--runs=3] [--quick] [--json=FILE]
//              [--bin_dir=DIR] [--data_root=DIR] [--commit=ID]
//
// Exit status: 0 when every run of every scenario completed (whether or not targets were
// met: benchmarks measure), 1 when a run failed, 64 on bad flags.
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "tests/bench/bench.h"
#include "tests/bench/report.h"
#include "tests/bench/scenarios.h"
#include "tests/testing/temp_dir.h"

ABSL_FLAG(std::string, scenarios, "", "comma-separated scenario names (default: all)");
ABSL_FLAG(int, runs, 3, "runs per scenario and size (the median of them is reported)");
ABSL_FLAG(bool, quick, false, "smaller sizes, for a quick look (not for the README)");
ABSL_FLAG(int64_t, size, 0,
          "run each scenario at this one size instead of its two (e.g. --scenarios=agents "
          "--size=5000: how far a figure goes)");
ABSL_FLAG(std::string, json, "", "write the results as JSON to this file");
ABSL_FLAG(std::string, bin_dir, "", "where the farm binaries are (default: farm-bench's own)");
ABSL_FLAG(std::string, data_root, "",
          "directory for the farms' data (default: $TMPDIR or /tmp); must be a real disk");
ABSL_FLAG(std::string, commit, "", "the commit measured, for the report");
ABSL_FLAG(bool, tls, false,
          "run the farms on TLS with client certificates (default: plaintext on loopback)");
ABSL_FLAG(bool, verbose, false, "keep the farms' directories and print their paths");
ABSL_FLAG(bool, metrics, false,
          "coordinators serve /metrics (--http_listen on loopback): the metrics' cost, on vs off");

namespace farm::bench {
namespace {

std::string FirstLine(const std::string& path, const std::string& prefix) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) {
      size_t colon = line.find(':');
      return colon == std::string::npos ? line
                                        : std::string(absl::StripAsciiWhitespace(
                                              absl::string_view(line).substr(colon + 1)));
    }
  }
  return "";
}

std::string FileSystemType(const std::string& path) {
  struct statfs fs;
  if (statfs(path.c_str(), &fs) != 0) return "unknown";
  switch (static_cast<unsigned long>(fs.f_type)) {
    case 0xEF53:
      return "ext4";
    case 0x58465342:
      return "xfs";
    case 0x9123683E:
      return "btrfs";
    case 0x01021994:
      return "tmpfs (fsync is free: figures are not durable-write figures)";
    case 0x794c7630:
      return "overlayfs";
    default:
      return absl::StrFormat("0x%x", static_cast<unsigned long>(fs.f_type));
  }
}

Machine ReadMachine(const std::string& data_root) {
  Machine m;
  m.cpu = FirstLine("/proc/cpuinfo", "model name");
  m.cores = sysconf(_SC_NPROCESSORS_ONLN);
  m.memory_bytes = static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGESIZE);
  struct utsname u;
  if (uname(&u) == 0) m.kernel = absl::StrCat(u.sysname, " ", u.release, " ", u.machine);
  m.disk = FileSystemType(data_root);
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  m.hostname = host;
  return m;
}

// Whether the coordinator in `bin_dir` takes --insecure (builds before the security work served
// plaintext and refuse the flag).
bool TakesInsecureFlag(const std::string& bin_dir) {
  const std::string command = absl::StrCat(bin_dir, "/farm-coordinator --helpfull 2>&1");
  FILE* help = popen(command.c_str(), "r");
  if (help == nullptr) return true;
  std::string text;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof(buf), help)) > 0;) text.append(buf, n);
  pclose(help);
  return text.find("-insecure") != std::string::npos;
}

// The environment from the flags; an error message naming the flag when one is bad.
absl::StatusOr<BenchEnv> EnvFromFlags() {
  BenchEnv env;
  env.verbose = absl::GetFlag(FLAGS_verbose);
  env.metrics = absl::GetFlag(FLAGS_metrics);
  env.bin_dir = absl::GetFlag(FLAGS_bin_dir);
  if (env.bin_dir.empty()) {
    env.bin_dir = std::filesystem::read_symlink("/proc/self/exe").parent_path().string();
  }
  for (const char* binary :
       {"farm-coordinator", "farm-agent", "farm-bench-stamp", "farm-bench-chatty"}) {
    if (access((env.bin_dir + "/" + binary).c_str(), X_OK) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--bin_dir: ", env.bin_dir, "/", binary, " is not an executable"));
    }
  }
  if (absl::GetFlag(FLAGS_tls)) {
    FARM_ASSIGN_OR_RETURN(env.security, BenchSecurity::Tls());
  } else {
    env.security = BenchSecurity::Plaintext(TakesInsecureFlag(env.bin_dir));
  }
  env.data_root = absl::GetFlag(FLAGS_data_root);
  if (env.data_root.empty()) {
    const char* tmp = getenv("TMPDIR");
    env.data_root = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
  }
  return env;
}

// The scenarios --scenarios names, in its order (all of them when it is empty).
absl::StatusOr<std::vector<Scenario>> ChosenScenarios(const std::vector<Scenario>& all) {
  const std::string wanted = absl::GetFlag(FLAGS_scenarios);
  if (wanted.empty()) return all;
  std::vector<Scenario> chosen;
  for (absl::string_view name : absl::StrSplit(wanted, ',', absl::SkipEmpty())) {
    auto it =
        std::find_if(all.begin(), all.end(), [&](const Scenario& s) { return s.name == name; });
    if (it == all.end()) {
      std::vector<std::string> names;
      for (const Scenario& s : all) names.push_back(s.name);
      return absl::InvalidArgumentError(
          absl::StrCat("--scenarios: no scenario named \"", name,
                       "\"; there are: ", absl::StrJoin(names, ", ")));
    }
    chosen.push_back(*it);
  }
  return chosen;
}

// Runs `s` at `size` up to `runs` times, stopping at the first failed run (the size is failed
// then, whatever the others would measure). Progress goes to stderr.
SizeResult RunSize(const Scenario& s, const BenchEnv& env, int64_t size, int runs) {
  SizeResult r;
  r.size = size;
  for (int run = 1; run <= runs; ++run) {
    std::cerr << "  " << s.name << " " << size << " " << s.size_unit << ", run " << run << "/"
              << runs << " ... " << std::flush;
    const int64_t t0 = MonotonicNs();
    absl::StatusOr<std::vector<Metric>> metrics = s.run(env, size);
    const double secs = static_cast<double>(MonotonicNs() - t0) / 1e9;
    if (!metrics.ok()) {
      std::cerr << "FAILED after " << Show(secs) << " s: " << metrics.status() << "\n";
      r.AddFailure(absl::StrCat("run ", run, " of ", runs, ": ", metrics.status().ToString()));
      break;
    }
    std::vector<std::string> shown;
    for (const Metric& m : *metrics) shown.push_back(absl::StrCat(m.name, "=", Show(m.value)));
    std::cerr << Show(secs) << " s: " << absl::StrJoin(shown, " ") << "\n";
    r.AddRun(*metrics);
  }
  return r;
}

int Main() {
  const int runs = absl::GetFlag(FLAGS_runs);
  if (runs < 1) {
    std::cerr << "--runs must be at least 1\n";
    return 64;
  }
  absl::StatusOr<BenchEnv> env = EnvFromFlags();
  const std::vector<Scenario> all = AllScenarios();
  absl::StatusOr<std::vector<Scenario>> chosen = ChosenScenarios(all);
  for (const absl::Status& bad : {env.status(), chosen.status()}) {
    if (!bad.ok()) {
      std::cerr << bad.message() << "\n";
      return 64;
    }
  }
  RunInfo info;
  info.runs = runs;
  info.quick = absl::GetFlag(FLAGS_quick);
  info.transport = env->security->Name();
  info.machine = ReadMachine(env->data_root);
  info.commit = absl::GetFlag(FLAGS_commit);
  info.started = absl::FormatTime("%Y-%m-%d %H:%M UTC", absl::Now(), absl::UTCTimeZone());
  std::cerr << "farm-bench: " << chosen->size() << " scenarios, " << runs
            << " runs each at two sizes" << (info.quick ? " (quick sizes)" : "") << "; data on "
            << env->data_root << " (" << info.machine.disk << ")\n";

  bool any_failed = false;
  std::vector<ScenarioResult> results;
  for (const Scenario& s : *chosen) {
    ScenarioResult result{&s, {}};
    std::vector<int64_t> sizes = {info.quick ? s.quick_small : s.small,
                                  info.quick ? s.quick_large : s.large};
    if (absl::GetFlag(FLAGS_size) > 0) sizes = {absl::GetFlag(FLAGS_size)};
    for (int64_t size : sizes) {
      result.sizes.push_back(RunSize(s, *env, size, runs));
      any_failed |= result.sizes.back().failed();
    }
    results.push_back(std::move(result));
  }

  std::cout << Table(info, results) << std::flush;
  const std::string json_path = absl::GetFlag(FLAGS_json);
  if (!json_path.empty()) {
    absl::Status written = testing::WriteFile(json_path, Json(info, results));
    if (!written.ok()) {
      std::cerr << "--json: " << written << "\n";
      return 1;
    }
    std::cerr << "farm-bench: wrote " << json_path << "\n";
  }
  return any_failed ? 1 : 0;
}

}  // namespace

std::vector<Scenario> AllScenarios() {
  return {DispatchScenario(), ThroughputScenario(), SubmitScenario(),
          LogsScenario(),     CasScenario(),        BacklogScenario(),
          AgentsScenario(),   FollowersScenario(),  FactoryScenario()};
}

}  // namespace farm::bench

int main(int argc, char** argv) {
  // Debian builds Abseil without NDEBUG, which leaves absl::Mutex's deadlock detection on: a
  // lock-order graph updated on every lock, gRPC's included (measured: ~3% of the
  // coordinator's CPU under load). The tests keep it on; the binaries turn it off.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (rest.size() > 1) {
    std::cerr << "farm-bench: unexpected argument \"" << rest[1] << "\" (flags only)\n";
    return 64;
  }
  return farm::bench::Main();
}
