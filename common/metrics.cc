#include "common/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <iostream>

#include "absl/strings/str_cat.h"

namespace farm::common::metrics {
namespace {

[[noreturn]] void Bug(absl::string_view message) {
  std::cerr << "metrics: " << message << "\n";
  std::abort();
}

void AppendLabels(std::string& out, const Exposition::Labels& labels) {
  if (labels.empty()) return;
  out.push_back('{');
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) out.push_back(',');
    absl::StrAppend(&out, labels[i].first, "=\"", EscapeLabelValue(labels[i].second), "\"");
  }
  out.push_back('}');
}

// Backslash and line feed escaped, and double quotes when `quotes` (label values; HELP text
// leaves them).
std::string Escape(absl::string_view text, bool quotes) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\' || (quotes && c == '"')) {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

const char* TypeName(Type type) {
  switch (type) {
    case Type::kCounter:
      return "counter";
    case Type::kGauge:
      return "gauge";
    case Type::kHistogram:
      return "histogram";
  }
  return "untyped";
}

Exposition::Labels Zip(const std::vector<std::string>& names,
                       const std::vector<std::string>& values) {
  Exposition::Labels labels;
  labels.reserve(names.size());
  for (size_t i = 0; i < names.size(); ++i) labels.emplace_back(names[i], values[i]);
  return labels;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Histogram

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i < bounds_.size(); ++i) {
    if (!std::isfinite(bounds_[i]) || (i > 0 && bounds_[i] <= bounds_[i - 1])) {
      Bug("histogram bounds must be finite and strictly increasing");
    }
  }
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double value) {
  // The first bound >= value: `le` is inclusive.
  const size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot s;
  s.bounds = bounds_;
  s.cumulative.reserve(bounds_.size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(running);
  }
  s.count = running;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

std::vector<double> ExponentialBuckets(double start, double factor, int n) {
  std::vector<double> bounds;
  double b = start;
  for (int i = 0; i < n; ++i, b *= factor) bounds.push_back(b);
  return bounds;
}

std::vector<double> LatencyBuckets() {
  return {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,  1,    2.5,
          5,     10,    30,   60,    120,  300, 600,  1200, 1800, 3600};
}

std::vector<double> FastLatencyBuckets() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,    0.1,    0.25,    0.5,    1,     2.5,    5,     10};
}

template <typename T>
void Family<T>::CheckArity(size_t n) const {
  if (n != label_names_.size()) Bug("label values do not match the family's label names");
}
template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

// ---------------------------------------------------------------------------------------------
// Exposition

std::string EscapeLabelValue(absl::string_view value) { return Escape(value, /*quotes=*/true); }

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  if (ec != std::errc()) return absl::StrCat(value);
  return std::string(buf, end);
}

void Exposition::Begin(absl::string_view name, absl::string_view help, Type type) {
  name_ = std::string(name);
  absl::StrAppend(&text_, "# HELP ", name, " ", Escape(help, /*quotes=*/false), "\n# TYPE ", name,
                  " ", TypeName(type), "\n");
}

void Exposition::Sample(absl::string_view suffix, const Labels& labels, double value) {
  absl::StrAppend(&text_, name_, suffix);
  AppendLabels(text_, labels);
  absl::StrAppend(&text_, " ", FormatValue(value), "\n");
}

void Exposition::Histogram(const Labels& labels, const Histogram::Snapshot& s) {
  Labels with_le = labels;
  with_le.emplace_back("le", "");
  for (size_t i = 0; i < s.cumulative.size(); ++i) {
    with_le.back().second = i < s.bounds.size() ? FormatValue(s.bounds[i]) : "+Inf";
    Sample("_bucket", with_le, static_cast<double>(s.cumulative[i]));
  }
  Sample("_sum", labels, s.sum);
  Sample("_count", labels, static_cast<double>(s.count));
}

// ---------------------------------------------------------------------------------------------
// Registry

Registry::Entry& Registry::Add(std::string name, std::string help, Type type) {
  absl::MutexLock lock(&mu_);
  for (const auto& e : entries_) {
    if (e->name == name) Bug(absl::StrCat("metric ", name, " registered twice"));
  }
  auto entry = std::make_unique<Entry>();
  entry->name = std::move(name);
  entry->help = std::move(help);
  entry->type = type;
  entries_.push_back(std::move(entry));
  return *entries_.back();
}

Counter& Registry::AddCounter(std::string name, std::string help) {
  return AddCounterFamily(std::move(name), std::move(help), {}).With({});
}

Gauge& Registry::AddGauge(std::string name, std::string help) {
  return AddGaugeFamily(std::move(name), std::move(help), {}).With({});
}

Histogram& Registry::AddHistogram(std::string name, std::string help, std::vector<double> bounds) {
  return AddHistogramFamily(std::move(name), std::move(help), {}, std::move(bounds)).With({});
}

Family<Counter>& Registry::AddCounterFamily(std::string name, std::string help,
                                            std::vector<std::string> label_names) {
  Entry& e = Add(std::move(name), std::move(help), Type::kCounter);
  e.counters = std::make_unique<Family<Counter>>(std::move(label_names),
                                                 [] { return std::make_unique<Counter>(); });
  return *e.counters;
}

Family<Gauge>& Registry::AddGaugeFamily(std::string name, std::string help,
                                        std::vector<std::string> label_names) {
  Entry& e = Add(std::move(name), std::move(help), Type::kGauge);
  e.gauges = std::make_unique<Family<Gauge>>(std::move(label_names),
                                             [] { return std::make_unique<Gauge>(); });
  return *e.gauges;
}

Family<Histogram>& Registry::AddHistogramFamily(std::string name, std::string help,
                                                std::vector<std::string> label_names,
                                                std::vector<double> bounds) {
  Entry& e = Add(std::move(name), std::move(help), Type::kHistogram);
  e.histograms = std::make_unique<Family<Histogram>>(
      std::move(label_names), [bounds] { return std::make_unique<Histogram>(bounds); });
  return *e.histograms;
}

void Registry::AddCollector(std::function<void(Exposition&)> collect) {
  absl::MutexLock lock(&mu_);
  collectors_.push_back(std::move(collect));
}

std::string Registry::Expose() const {
  Exposition out;
  std::vector<std::function<void(Exposition&)>> collectors;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& e : entries_) {
      out.Begin(e->name, e->help, e->type);
      if (e->counters != nullptr) {
        e->counters->ForEach([&](const std::vector<std::string>& values, const Counter& c) {
          out.Sample("", Zip(e->counters->label_names(), values), static_cast<double>(c.Value()));
        });
      } else if (e->gauges != nullptr) {
        e->gauges->ForEach([&](const std::vector<std::string>& values, const Gauge& g) {
          out.Sample("", Zip(e->gauges->label_names(), values), static_cast<double>(g.Value()));
        });
      } else if (e->histograms != nullptr) {
        e->histograms->ForEach(
            [&](const std::vector<std::string>& values, const metrics::Histogram& h) {
              out.Histogram(Zip(e->histograms->label_names(), values), h.Read());
            });
      }
    }
    collectors = collectors_;
  }
  for (const auto& collect : collectors) collect(out);
  return out.Take();
}

}  // namespace farm::common::metrics
