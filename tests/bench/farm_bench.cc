// farm-bench: runs the benchmark scenarios against the real binaries, each at two sizes and
// several times, and prints one table (Markdown) and one JSON file with the median, min and max
// of every figure, the targets, the growth ratios, the machine and the commit.
//
//   farm-bench [--scenarios=dispatch,submit] [--runs=3] [--quick] [--json=FILE]
//              [--bin_dir=DIR] [--data_root=DIR] [--commit=ID]
//
// Exit status: 0 when every run of every scenario completed (whether or not targets were
// met: benchmarks measure), 1 when a run failed, 64 on bad flags.
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "coordinator/cli/format.h"
#include "tests/bench/bench.h"
#include "tests/bench/scenarios.h"
#include "tests/testing/temp_dir.h"

ABSL_FLAG(std::string, scenarios, "", "comma-separated scenario names (default: all)");
ABSL_FLAG(int, runs, 3, "runs per scenario and size (the median of them is reported)");
ABSL_FLAG(bool, quick, false, "smaller sizes, for a quick look (not for the README)");
ABSL_FLAG(std::string, json, "", "write the results as JSON to this file");
ABSL_FLAG(std::string, bin_dir, "", "where the farm binaries are (default: farm-bench's own)");
ABSL_FLAG(std::string, data_root, "",
          "directory for the farms' data (default: $TMPDIR or /tmp); must be a real disk");
ABSL_FLAG(std::string, commit, "", "the commit measured, for the report");
ABSL_FLAG(bool, verbose, false, "keep the farms' directories and print their paths");

namespace farm::bench {
namespace {

using farm::cli::JsonString;  // farmctl's: the same escaping for the results file

struct Series {
  std::string unit;
  std::vector<double> values;
};
// Per size: metric name → its values over the runs, in the order metrics were first reported.
struct SizeResult {
  int64_t size = 0;
  std::vector<std::string> order;
  std::map<std::string, Series> metrics;
  std::vector<std::string> errors;
};

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

struct Machine {
  std::string cpu;
  long cores = 0;
  int64_t memory_bytes = 0;
  std::string kernel;
  std::string disk;
  std::string hostname;
};

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

std::string Num(double v) {
  if (!std::isfinite(v)) return "null";
  return absl::StrFormat("%.6g", v);
}

// A figure for the table: three significant digits, no exponent for everyday magnitudes.
std::string Show(double v) {
  if (!std::isfinite(v)) return "-";
  const double a = std::fabs(v);
  if (a >= 1000) return absl::StrFormat("%.0f", v);
  if (a >= 100) return absl::StrFormat("%.1f", v);
  if (a >= 10) return absl::StrFormat("%.2f", v);
  return absl::StrFormat("%.3g", v);
}

double Min(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }
double Max(const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); }

const Target* TargetFor(const Scenario& s, const std::string& metric) {
  for (const Target& t : s.targets) {
    if (t.metric == metric) return &t;
  }
  return nullptr;
}

std::string TargetText(const Target& t) {
  return absl::StrCat(t.kind == Target::kAtMost ? "≤ " : "≥ ", absl::StrFormat("%g", t.bound));
}

bool Met(const Target& t, double v) {
  return t.kind == Target::kAtMost ? v <= t.bound : v >= t.bound;
}

int Main() {
  const int runs = absl::GetFlag(FLAGS_runs);
  if (runs < 1) {
    std::cerr << "--runs must be at least 1\n";
    return 64;
  }
  BenchEnv env;
  env.verbose = absl::GetFlag(FLAGS_verbose);
  env.bin_dir = absl::GetFlag(FLAGS_bin_dir);
  if (env.bin_dir.empty()) {
    env.bin_dir = std::filesystem::read_symlink("/proc/self/exe").parent_path().string();
  }
  for (const char* binary : {"farm-coordinator", "farm-agent", "farm-bench-stamp"}) {
    if (access((env.bin_dir + "/" + binary).c_str(), X_OK) != 0) {
      std::cerr << "--bin_dir: " << env.bin_dir << "/" << binary << " is not an executable\n";
      return 64;
    }
  }
  env.data_root = absl::GetFlag(FLAGS_data_root);
  if (env.data_root.empty()) {
    const char* tmp = getenv("TMPDIR");
    env.data_root = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
  }
  const bool quick = absl::GetFlag(FLAGS_quick);

  std::vector<Scenario> all = AllScenarios();
  std::vector<Scenario> chosen;
  const std::string wanted = absl::GetFlag(FLAGS_scenarios);
  if (wanted.empty()) {
    chosen = all;
  } else {
    for (absl::string_view name : absl::StrSplit(wanted, ',', absl::SkipEmpty())) {
      bool found = false;
      for (const Scenario& s : all) {
        if (s.name == name) {
          chosen.push_back(s);
          found = true;
        }
      }
      if (!found) {
        std::vector<std::string> names;
        for (const Scenario& s : all) names.push_back(s.name);
        std::cerr << "--scenarios: no scenario named \"" << name
                  << "\"; there are: " << absl::StrJoin(names, ", ") << "\n";
        return 64;
      }
    }
  }

  const Machine machine = ReadMachine(env.data_root);
  const std::string commit = absl::GetFlag(FLAGS_commit);
  const std::string started =
      absl::FormatTime("%Y-%m-%d %H:%M UTC", absl::Now(), absl::UTCTimeZone());
  std::cerr << "farm-bench: " << chosen.size() << " scenarios, " << runs
            << " runs each at two sizes" << (quick ? " (quick sizes)" : "") << "; data on "
            << env.data_root << " (" << machine.disk << ")\n";

  bool any_failed = false;
  std::vector<std::pair<const Scenario*, std::vector<SizeResult>>> results;
  for (const Scenario& s : chosen) {
    std::vector<SizeResult> sizes;
    for (int64_t size : {quick ? s.quick_small : s.small, quick ? s.quick_large : s.large}) {
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
          r.errors.push_back(metrics.status().ToString());
          any_failed = true;
          break;
        }
        std::vector<std::string> shown;
        for (const Metric& m : *metrics) {
          if (r.metrics.count(m.name) == 0) r.order.push_back(m.name);
          r.metrics[m.name].unit = m.unit;
          r.metrics[m.name].values.push_back(m.value);
          shown.push_back(absl::StrCat(m.name, "=", Show(m.value)));
        }
        std::cerr << Show(secs) << " s: " << absl::StrJoin(shown, " ") << "\n";
      }
      sizes.push_back(std::move(r));
    }
    results.emplace_back(&s, std::move(sizes));
  }

  // ---- the table
  std::string table;
  absl::StrAppend(&table, "Machine: ", machine.cpu, ", ", machine.cores, " cores, ",
                  machine.memory_bytes >> 30, " GiB, ", machine.kernel, ", data on ", machine.disk,
                  ". Commit ", commit.empty() ? "(not given)" : commit, ", ", started,
                  ". Median of ", runs, " runs (min–max).\n\n");
  absl::StrAppend(&table, "| scenario | size | figure | median | min–max | target |\n");
  absl::StrAppend(&table, "| --- | --- | --- | --- | --- | --- |\n");
  for (const auto& [s, sizes] : results) {
    for (size_t i = 0; i < sizes.size(); ++i) {
      const SizeResult& r = sizes[i];
      const bool larger = i + 1 == sizes.size();
      for (const std::string& name : r.order) {
        const Series& series = r.metrics.at(name);
        const double med = Median(series.values);
        std::string target = "";
        const Target* t = TargetFor(*s, name);
        if (t != nullptr && larger) {
          target = absl::StrCat(TargetText(*t), Met(*t, med) ? " met" : " **missed**");
        }
        absl::StrAppend(&table, "| ", s->name, " | ", r.size, " ", s->size_unit, " | ", name, " (",
                        series.unit, ") | ", Show(med), " | ", Show(Min(series.values)), "–",
                        Show(Max(series.values)), " | ", target, " |\n");
      }
      for (const std::string& e : r.errors) {
        absl::StrAppend(&table, "| ", s->name, " | ", r.size, " ", s->size_unit,
                        " | **failed** | | | ", e, " |\n");
      }
    }
  }
  absl::StrAppend(&table,
                  "\nGrowth (value at the larger size / value at the smaller; ~1 is "
                  "linear for rates and per-unit costs):\n\n");
  absl::StrAppend(
      &table,
      "| scenario | figure | smaller | larger | ratio |\n| --- | --- | --- | --- | --- |\n");
  std::map<std::string, std::map<std::string, double>> growth;
  for (const auto& [s, sizes] : results) {
    if (sizes.size() != 2) continue;
    for (const std::string& name : s->growth_metrics) {
      auto a = sizes[0].metrics.find(name);
      auto b = sizes[1].metrics.find(name);
      if (a == sizes[0].metrics.end() || b == sizes[1].metrics.end()) continue;
      const double small = Median(a->second.values), large = Median(b->second.values);
      const double ratio = small != 0 ? large / small : NAN;
      growth[s->name][name] = ratio;
      absl::StrAppend(&table, "| ", s->name, " | ", name, " | ", Show(small), " (", sizes[0].size,
                      ") | ", Show(large), " (", sizes[1].size, ") | ", Show(ratio), " |\n");
    }
  }
  std::cout << table << std::flush;

  // ---- the JSON file
  const std::string json_path = absl::GetFlag(FLAGS_json);
  if (!json_path.empty()) {
    std::string j = "{\n";
    absl::StrAppend(&j, "  \"commit\": ", JsonString(commit),
                    ",\n  \"date\": ", JsonString(started), ",\n  \"runs\": ", runs,
                    ",\n  \"quick\": ", quick ? "true" : "false", ",\n");
    absl::StrAppend(&j, "  \"machine\": {\"cpu\": ", JsonString(machine.cpu),
                    ", \"cores\": ", machine.cores, ", \"memory_bytes\": ", machine.memory_bytes,
                    ", \"kernel\": ", JsonString(machine.kernel),
                    ", \"data_disk\": ", JsonString(machine.disk),
                    ", \"hostname\": ", JsonString(machine.hostname), "},\n");
    absl::StrAppend(&j, "  \"scenarios\": [\n");
    for (size_t k = 0; k < results.size(); ++k) {
      const auto& [s, sizes] = results[k];
      absl::StrAppend(&j, "    {\"name\": ", JsonString(s->name),
                      ", \"description\": ", JsonString(s->description),
                      ", \"size_unit\": ", JsonString(s->size_unit), ", \"sizes\": [\n");
      for (size_t i = 0; i < sizes.size(); ++i) {
        const SizeResult& r = sizes[i];
        absl::StrAppend(&j, "      {\"size\": ", r.size, ", \"errors\": [");
        for (size_t e = 0; e < r.errors.size(); ++e) {
          absl::StrAppend(&j, e ? ", " : "", JsonString(r.errors[e]));
        }
        absl::StrAppend(&j, "], \"metrics\": {");
        for (size_t m = 0; m < r.order.size(); ++m) {
          const Series& series = r.metrics.at(r.order[m]);
          std::vector<std::string> values;
          for (double v : series.values) values.push_back(Num(v));
          absl::StrAppend(&j, m ? ", " : "", "\n        ", JsonString(r.order[m]),
                          ": {\"unit\": ", JsonString(series.unit),
                          ", \"median\": ", Num(Median(series.values)),
                          ", \"min\": ", Num(Min(series.values)),
                          ", \"max\": ", Num(Max(series.values)), ", \"values\": [",
                          absl::StrJoin(values, ", "), "]}");
        }
        absl::StrAppend(&j, "}}", i + 1 < sizes.size() ? "," : "", "\n");
      }
      absl::StrAppend(&j, "    ], \"targets\": [");
      for (size_t t = 0; t < s->targets.size(); ++t) {
        const Target& target = s->targets[t];
        std::string met = "null";
        if (!sizes.empty()) {
          auto it = sizes.back().metrics.find(target.metric);
          if (it != sizes.back().metrics.end()) {
            met = Met(target, Median(it->second.values)) ? "true" : "false";
          }
        }
        absl::StrAppend(
            &j, t ? ", " : "", "{\"metric\": ", JsonString(target.metric),
            ", \"kind\": ", target.kind == Target::kAtMost ? "\"at_most\"" : "\"at_least\"",
            ", \"bound\": ", Num(target.bound), ", \"met\": ", met, "}");
      }
      absl::StrAppend(&j, "], \"growth\": {");
      size_t g = 0;
      for (const auto& [name, ratio] : growth[s->name]) {
        absl::StrAppend(&j, g++ ? ", " : "", JsonString(name), ": ", Num(ratio));
      }
      absl::StrAppend(&j, "}}", k + 1 < results.size() ? "," : "", "\n");
    }
    absl::StrAppend(&j, "  ]\n}\n");
    absl::Status written = testing::WriteFile(json_path, j);
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
  return {DispatchScenario(), ThroughputScenario(), SubmitScenario(), LogsScenario(),
          CasScenario(),      BacklogScenario(),    AgentsScenario()};
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
