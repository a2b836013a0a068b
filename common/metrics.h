// Metrics for Prometheus, in one place: counters, gauges and histograms that hot paths update
// without locks, and their exposition in the Prometheus text format 0.0.4 (what /metrics
// serves; https://prometheus.io/docs/instrumenting/exposition_formats/).
//
//   Registry registry;
//   Counter& bytes = registry.AddCounter("farm_log_bytes_received_total", "Job output received.");
//   auto& waits = registry.AddHistogramFamily("farm_queue_wait_seconds", "Submit to lease.",
//                                             {"labels"}, LatencyBuckets());
//   bytes.Add(n);                            // relaxed atomics: no lock
//   waits.With({"os=linux"}).Observe(0.25);  // a lock on first use of a label value set; keep
//                                            // the reference where the path is hot
//   registry.AddCollector([&](Exposition& out) { ... });  // values read when scraped
//   std::string text = registry.Expose();
//
// Names follow Prometheus' conventions: base units (_seconds, _bytes), counters end in _total.
// Label values must come from bounded sets (label sets, states, methods; never job ids): every
// distinct value set is a series kept for the process's life.
//
// Thread-safety: everything may be called from any thread. Metrics live as long as their
// registry; references returned stay valid that long. Registering a name twice is a bug and
// crashes (as does a label count that does not match the family's).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace farm::common::metrics {

enum class Type { kCounter, kGauge, kHistogram };

class Counter {
 public:
  void Add(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void Set(int64_t v) { value_.store(v, std::memory_order_relaxed); }
  void Add(int64_t delta) { value_.fetch_add(delta, std::memory_order_relaxed); }
  int64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

// Observations counted into buckets by upper bound (inclusive, as Prometheus' `le`), plus their
// sum and count.
class Histogram {
 public:
  // `bounds`: strictly increasing upper bounds, finite; +Inf is implied.
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> cumulative;  // per bound, then +Inf (== count)
    double sum = 0;
    uint64_t count = 0;
  };
  // Buckets read one by one while others observe: a scrape may see an observation in a bucket
  // and not yet in the sum, never a cumulative count that decreases across buckets.
  Snapshot Read() const;

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // bounds_.size() + 1: the last is +Inf
  std::atomic<double> sum_{0};
};

// Buckets for durations in seconds from 1 ms to 1 h (queue waits, run times, lead times).
std::vector<double> LatencyBuckets();
// Buckets for short durations in seconds, 50 µs to 10 s (RPCs, syncs).
std::vector<double> FastLatencyBuckets();
// n buckets from `start`, each `factor` times the one before.
std::vector<double> ExponentialBuckets(double start, double factor, int n);

// Metrics of one name told apart by label values (one series per value set).
template <typename T>
class Family {
 public:
  Family(std::vector<std::string> label_names, std::function<std::unique_ptr<T>()> make)
      : label_names_(std::move(label_names)), make_(std::move(make)) {}

  // The series for these values (as many as the family has labels), made on first use.
  T& With(const std::vector<std::string>& values) {
    absl::MutexLock lock(&mu_);
    CheckArity(values.size());
    std::unique_ptr<T>& slot = series_[values];
    if (slot == nullptr) slot = make_();
    return *slot;
  }
  const std::vector<std::string>& label_names() const { return label_names_; }
  // Calls `f(values, metric)` for each series, in label order.
  void ForEach(const std::function<void(const std::vector<std::string>&, const T&)>& f) const {
    absl::MutexLock lock(&mu_);
    for (const auto& [values, metric] : series_) f(values, *metric);
  }

 private:
  void CheckArity(size_t n) const;

  const std::vector<std::string> label_names_;
  const std::function<std::unique_ptr<T>()> make_;
  mutable absl::Mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<T>> series_ ABSL_GUARDED_BY(mu_);
};

// Writes the exposition text. Collectors use it for values read at scrape time: one Begin per
// metric name, then its samples.
class Exposition {
 public:
  using Labels = std::vector<std::pair<std::string, std::string>>;

  void Begin(absl::string_view name, absl::string_view help, Type type);
  // One sample of the metric begun last; `suffix` is "" or _bucket, _sum, _count.
  void Sample(absl::string_view suffix, const Labels& labels, double value);
  void Histogram(const Labels& labels, const Histogram::Snapshot& snapshot);

  std::string Take() { return std::move(text_); }

 private:
  std::string text_;
  std::string name_;
};

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  Counter& AddCounter(std::string name, std::string help);
  Gauge& AddGauge(std::string name, std::string help);
  Histogram& AddHistogram(std::string name, std::string help, std::vector<double> bounds);
  Family<Counter>& AddCounterFamily(std::string name, std::string help,
                                    std::vector<std::string> label_names);
  Family<Gauge>& AddGaugeFamily(std::string name, std::string help,
                                std::vector<std::string> label_names);
  Family<Histogram>& AddHistogramFamily(std::string name, std::string help,
                                        std::vector<std::string> label_names,
                                        std::vector<double> bounds);
  // Values read when scraped (store sizes, queue depths): `collect` writes whole metrics
  // (Begin, then samples) under names no other metric of the registry has. It runs on the
  // scraping thread and must not block for long.
  void AddCollector(std::function<void(Exposition&)> collect);

  // Every metric, in the order registered, then the collectors'.
  std::string Expose() const;

 private:
  struct Entry {
    std::string name;
    std::string help;
    Type type;
    std::unique_ptr<Family<Counter>> counters;
    std::unique_ptr<Family<Gauge>> gauges;
    std::unique_ptr<Family<metrics::Histogram>> histograms;
  };
  Entry& Add(std::string name, std::string help, Type type);

  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<Entry>> entries_ ABSL_GUARDED_BY(mu_);
  std::vector<std::function<void(Exposition&)>> collectors_ ABSL_GUARDED_BY(mu_);
};

// A label value as the text format writes it: backslash, double quote and line feed escaped.
std::string EscapeLabelValue(absl::string_view value);
// A sample value: shortest text that reads back as the same double; +Inf, -Inf, NaN.
std::string FormatValue(double value);

}  // namespace farm::common::metrics
