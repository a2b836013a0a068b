// How farm-bench judges and prints what the scenarios measured: the verdict on each target, the
// growth between the two sizes, the Markdown table and the JSON file. Pure functions of the
// results (no I/O, no clock), so that the judging is tested without a farm (report_test.cc).
//
// A size with a failed run is failed. Its targets are judged "failed" whatever the runs that
// passed measured (a run that failed may be the slow one, so their median proves nothing), and
// no growth is computed from it. The figures of the runs that passed are still printed, marked
// with how many runs they come from, for the post-mortem.
//
// Thread-compatible: plain values.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tests/bench/bench.h"

namespace farm::bench {

// The values one metric took over the passed runs of one size.
struct Series {
  std::string unit;
  std::vector<double> values;
};

// What the runs of one scenario at one size gave.
struct SizeResult {
  int64_t size = 0;
  int passed = 0;                         // runs that returned metrics
  std::vector<std::string> order;         // metric names, in the order first reported
  std::map<std::string, Series> metrics;  // over the passed runs
  std::vector<std::string> errors;        // one per failed run

  bool failed() const { return !errors.empty(); }
  // Records one passed run.
  void AddRun(const std::vector<Metric>& run);
  // Records one failed run.
  void AddFailure(std::string error) { errors.push_back(std::move(error)); }
};

// One scenario's results: its sizes, smaller first.
struct ScenarioResult {
  const Scenario* scenario = nullptr;  // not owned; outlives this
  std::vector<SizeResult> sizes;
};

enum class Verdict { kMet, kMissed, kFailed, kNotMeasured };
// "met", "missed", "failed", "not measured".
std::string VerdictName(Verdict verdict);

// The verdict on `target` from the runs of `size`: kFailed when any of them failed (never kMet
// or kMissed from the runs that passed), else kNotMeasured when no run reported the metric, else
// whether the median meets the bound.
Verdict Judge(const Target& target, const SizeResult& size);

// Growth of `metric` between the two sizes of `result`: (median at the larger) / (median at the
// smaller). nullopt when there are not two sizes, either size failed or lacks the metric, or the
// smaller median is 0.
std::optional<double> Growth(const ScenarioResult& result, const std::string& metric);

// The run as a whole, for the heading of the table and the JSON file.
struct Machine {
  std::string cpu;
  long cores = 0;
  int64_t memory_bytes = 0;
  std::string kernel;
  std::string disk;
  std::string hostname;
};
struct RunInfo {
  Machine machine;
  std::string commit;   // empty: not given
  std::string started;  // "2026-11-29 10:00 UTC"
  int runs = 0;         // runs per scenario and size
  bool quick = false;
  std::string transport = "plaintext";  // "plaintext" or "TLS" (farm-bench --tls)
};

// The Markdown table: one row per figure and size (median, min–max, the target and its verdict
// at the larger size), a row per failed run with its error, then the growth table.
std::string Table(const RunInfo& info, const std::vector<ScenarioResult>& results);
// The same as JSON: per size "failed", "runs_passed", "errors" and every metric's values; per
// target "verdict" (VerdictName) and "met" (true, false, or null when failed or not measured);
// growth ratios (null when not computed).
std::string Json(const RunInfo& info, const std::vector<ScenarioResult>& results);

// A figure for people: three significant digits, no exponent for everyday magnitudes; "-" for
// NaN and infinities.
std::string Show(double v);

}  // namespace farm::bench
