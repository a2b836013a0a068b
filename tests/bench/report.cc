#include "tests/bench/report.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "coordinator/cli/format.h"

namespace farm::bench {
namespace {

using farm::cli::JsonString;  // farmctl's: the same escaping for the results file

std::string Num(double v) {
  if (!std::isfinite(v)) return "null";
  return absl::StrFormat("%.6g", v);
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

// The verdict as the table shows it: what needs attention in bold.
std::string VerdictCell(Verdict v) {
  switch (v) {
    case Verdict::kMet:
      return "met";
    case Verdict::kMissed:
      return "**missed**";
    case Verdict::kFailed:
      return "**failed**";
    case Verdict::kNotMeasured:
      return "not measured";
  }
  return "";
}

std::string Heading(const RunInfo& info) {
  const Machine& m = info.machine;
  return absl::StrCat("Machine: ", m.cpu, ", ", m.cores, " cores, ", m.memory_bytes >> 30, " GiB, ",
                      m.kernel, ", data on ", m.disk, ". Commit ",
                      info.commit.empty() ? "(not given)" : info.commit, ", ", info.started, ", ",
                      info.transport, ". Median of ", info.runs, " runs (min–max).\n\n");
}

// The rows of one size: its figures, its targets' verdicts (at the larger size) and its
// failed runs.
void AppendSizeRows(const Scenario& s, const SizeResult& r, bool larger, std::string* table) {
  const std::string head = absl::StrCat("| ", s.name, " | ", r.size, " ", s.size_unit, " | ");
  for (const std::string& name : r.order) {
    const Series& series = r.metrics.at(name);
    std::string median = Show(Median(series.values));
    if (r.failed()) absl::StrAppend(&median, " (of ", r.passed, " passed runs)");
    std::string target;
    const Target* t = TargetFor(s, name);
    if (t != nullptr && larger) {
      target = absl::StrCat(TargetText(*t), " ", VerdictCell(Judge(*t, r)));
    }
    absl::StrAppend(table, head, name, " (", series.unit, ") | ", median, " | ",
                    Show(Min(series.values)), "–", Show(Max(series.values)), " | ", target, " |\n");
  }
  // A target no run reported still gets its verdict: a failed size must never look quiet.
  for (const Target& t : s.targets) {
    if (!larger || r.metrics.count(t.metric) > 0) continue;
    absl::StrAppend(table, head, t.metric, " | - | - | ", TargetText(t), " ",
                    VerdictCell(Judge(t, r)), " |\n");
  }
  for (const std::string& e : r.errors) {
    absl::StrAppend(table, head, "**failed** | | | ", e, " |\n");
  }
}

void AppendGrowthRows(const ScenarioResult& result, std::string* table) {
  const Scenario& s = *result.scenario;
  if (result.sizes.size() != 2) return;
  const SizeResult& small = result.sizes[0];
  const SizeResult& large = result.sizes[1];
  const bool failed = small.failed() || large.failed();
  for (const std::string& name : s.growth_metrics) {
    auto a = small.metrics.find(name);
    auto b = large.metrics.find(name);
    const bool measured = a != small.metrics.end() && b != large.metrics.end();
    if (!measured && !failed) continue;
    auto cell = [](const SizeResult& r, auto it) {
      return absl::StrCat(it == r.metrics.end() ? "-" : Show(Median(it->second.values)), " (",
                          r.size, ")");
    };
    const std::optional<double> ratio = Growth(result, name);
    absl::StrAppend(table, "| ", s.name, " | ", name, " | ", cell(small, a), " | ", cell(large, b),
                    " | ", ratio.has_value() ? Show(*ratio) : (failed ? "**failed**" : "-"),
                    " |\n");
  }
}

std::string JsonSize(const SizeResult& r) {
  std::vector<std::string> errors;
  for (const std::string& e : r.errors) errors.push_back(JsonString(e));
  std::string j =
      absl::StrCat("      {\"size\": ", r.size, ", \"failed\": ", r.failed() ? "true" : "false",
                   ", \"runs_passed\": ", r.passed, ", \"errors\": [", absl::StrJoin(errors, ", "),
                   "], \"metrics\": {");
  for (size_t m = 0; m < r.order.size(); ++m) {
    const Series& series = r.metrics.at(r.order[m]);
    std::vector<std::string> values;
    for (double v : series.values) values.push_back(Num(v));
    absl::StrAppend(&j, m ? ", " : "", "\n        ", JsonString(r.order[m]),
                    ": {\"unit\": ", JsonString(series.unit),
                    ", \"median\": ", Num(Median(series.values)),
                    ", \"min\": ", Num(Min(series.values)), ", \"max\": ", Num(Max(series.values)),
                    ", \"values\": [", absl::StrJoin(values, ", "), "]}");
  }
  absl::StrAppend(&j, "}}");
  return j;
}

std::string JsonScenario(const ScenarioResult& result) {
  const Scenario& s = *result.scenario;
  std::string j = absl::StrCat("    {\"name\": ", JsonString(s.name),
                               ", \"description\": ", JsonString(s.description),
                               ", \"size_unit\": ", JsonString(s.size_unit), ", \"sizes\": [\n");
  std::vector<std::string> sizes;
  for (const SizeResult& r : result.sizes) sizes.push_back(JsonSize(r));
  absl::StrAppend(&j, absl::StrJoin(sizes, ",\n"), "\n    ], \"targets\": [");
  std::vector<std::string> targets;
  for (const Target& t : s.targets) {
    const Verdict v = result.sizes.empty() ? Verdict::kNotMeasured : Judge(t, result.sizes.back());
    const char* met = v == Verdict::kMet ? "true" : v == Verdict::kMissed ? "false" : "null";
    targets.push_back(absl::StrCat(
        "{\"metric\": ", JsonString(t.metric), ", \"kind\": ",
        t.kind == Target::kAtMost ? "\"at_most\"" : "\"at_least\"", ", \"bound\": ", Num(t.bound),
        ", \"verdict\": ", JsonString(VerdictName(v)), ", \"met\": ", met, "}"));
  }
  absl::StrAppend(&j, absl::StrJoin(targets, ", "), "], \"growth\": {");
  std::vector<std::string> growth;
  for (const std::string& name : s.growth_metrics) {
    const std::optional<double> ratio = Growth(result, name);
    growth.push_back(absl::StrCat(JsonString(name), ": ", ratio ? Num(*ratio) : "null"));
  }
  absl::StrAppend(&j, absl::StrJoin(growth, ", "), "}}");
  return j;
}

}  // namespace

void SizeResult::AddRun(const std::vector<Metric>& run) {
  ++passed;
  for (const Metric& m : run) {
    if (metrics.count(m.name) == 0) order.push_back(m.name);
    metrics[m.name].unit = m.unit;
    metrics[m.name].values.push_back(m.value);
  }
}

std::string VerdictName(Verdict verdict) {
  switch (verdict) {
    case Verdict::kMet:
      return "met";
    case Verdict::kMissed:
      return "missed";
    case Verdict::kFailed:
      return "failed";
    case Verdict::kNotMeasured:
      return "not measured";
  }
  return "";
}

Verdict Judge(const Target& target, const SizeResult& size) {
  if (size.failed()) return Verdict::kFailed;
  auto it = size.metrics.find(target.metric);
  if (it == size.metrics.end() || it->second.values.empty()) return Verdict::kNotMeasured;
  const double median = Median(it->second.values);
  const bool met = target.kind == Target::kAtMost ? median <= target.bound : median >= target.bound;
  return met ? Verdict::kMet : Verdict::kMissed;
}

std::optional<double> Growth(const ScenarioResult& result, const std::string& metric) {
  if (result.sizes.size() != 2) return std::nullopt;
  const SizeResult& small = result.sizes[0];
  const SizeResult& large = result.sizes[1];
  if (small.failed() || large.failed()) return std::nullopt;
  auto a = small.metrics.find(metric);
  auto b = large.metrics.find(metric);
  if (a == small.metrics.end() || b == large.metrics.end()) return std::nullopt;
  const double from = Median(a->second.values);
  if (from == 0) return std::nullopt;
  return Median(b->second.values) / from;
}

std::string Table(const RunInfo& info, const std::vector<ScenarioResult>& results) {
  std::string table = Heading(info);
  absl::StrAppend(&table, "| scenario | size | figure | median | min–max | target |\n",
                  "| --- | --- | --- | --- | --- | --- |\n");
  for (const ScenarioResult& result : results) {
    for (size_t i = 0; i < result.sizes.size(); ++i) {
      AppendSizeRows(*result.scenario, result.sizes[i], i + 1 == result.sizes.size(), &table);
    }
  }
  absl::StrAppend(
      &table,
      "\nGrowth (value at the larger size / value at the smaller; ~1 is linear for "
      "rates and per-unit costs):\n\n",
      "| scenario | figure | smaller | larger | ratio |\n| --- | --- | --- | --- | --- |\n");
  for (const ScenarioResult& result : results) AppendGrowthRows(result, &table);
  return table;
}

std::string Json(const RunInfo& info, const std::vector<ScenarioResult>& results) {
  const Machine& m = info.machine;
  std::string j = absl::StrCat(
      "{\n  \"commit\": ", JsonString(info.commit), ",\n  \"date\": ", JsonString(info.started),
      ",\n  \"runs\": ", info.runs, ",\n  \"quick\": ", info.quick ? "true" : "false",
      ",\n  \"transport\": ", JsonString(info.transport), ",\n");
  absl::StrAppend(&j, "  \"machine\": {\"cpu\": ", JsonString(m.cpu), ", \"cores\": ", m.cores,
                  ", \"memory_bytes\": ", m.memory_bytes, ", \"kernel\": ", JsonString(m.kernel),
                  ", \"data_disk\": ", JsonString(m.disk),
                  ", \"hostname\": ", JsonString(m.hostname), "},\n");
  std::vector<std::string> scenarios;
  for (const ScenarioResult& result : results) scenarios.push_back(JsonScenario(result));
  absl::StrAppend(&j, "  \"scenarios\": [\n", absl::StrJoin(scenarios, ",\n"), "\n  ]\n}\n");
  return j;
}

std::string Show(double v) {
  if (!std::isfinite(v)) return "-";
  const double a = std::fabs(v);
  if (a >= 1000) return absl::StrFormat("%.0f", v);
  if (a >= 100) return absl::StrFormat("%.1f", v);
  if (a >= 10) return absl::StrFormat("%.2f", v);
  return absl::StrFormat("%.3g", v);
}

}  // namespace farm::bench
