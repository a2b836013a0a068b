#include "coordinator/scheduler/flow_metrics.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/job_state.h"

namespace farm::coordinator {
namespace {

namespace metrics = common::metrics;
using farm::v1::JobState;

// A job's life can outlast an hour (a long queue, a long pipeline): the latency buckets, then
// 2, 4, 8 and 24 hours.
std::vector<double> LeadTimeBuckets() {
  std::vector<double> b = metrics::LatencyBuckets();
  for (double hours : {2, 4, 8, 24}) b.push_back(hours * 3600);
  return b;
}

double Seconds(int64_t from_ms, int64_t to_ms) {
  return static_cast<double>(std::max<int64_t>(0, to_ms - from_ms)) / 1000;
}

// "succeeded" for ATTEMPT_SUCCEEDED, "failed" for FAILED.
std::string LowerName(const std::string& full, absl::string_view prefix) {
  absl::string_view name = full;
  absl::ConsumePrefix(&name, prefix);
  return absl::AsciiStrToLower(name);
}

}  // namespace

FlowFamilies FlowFamilies::Register(metrics::Registry& registry) {
  FlowFamilies f;
  f.queue_wait = &registry.AddHistogramFamily(
      "farm_job_queue_wait_seconds",
      "From a job becoming ready (queued) to its lease, per attempt, by label set.", {"labels"},
      metrics::LatencyBuckets());
  f.run = &registry.AddHistogramFamily(
      "farm_job_run_seconds", "From a lease to its attempt's end, per attempt, by label set.",
      {"labels"}, metrics::LatencyBuckets());
  f.lead_time = &registry.AddHistogramFamily(
      "farm_job_lead_time_seconds", "From a job's submit to its end, by label set and final state.",
      {"labels", "state"}, LeadTimeBuckets());
  auto& attempts = registry.AddCounterFamily(
      "farm_attempts_total", "Attempts ended, by outcome (lost: its agent was lost).", {"outcome"});
  for (int o = farm::v1::ATTEMPT_SUCCEEDED; o <= farm::v1::ATTEMPT_LOST; ++o) {
    f.attempts[o] = &attempts.With({LowerName(
        farm::v1::AttemptOutcome_Name(static_cast<farm::v1::AttemptOutcome>(o)), "ATTEMPT_")});
  }
  f.lease_expirations = &registry.AddCounter(
      "farm_lease_expirations_total",
      "Leases that ran out without a heartbeat from their agent (each attempt is lost).");
  return f;
}

std::string LabelSetText(const Labels& labels) {
  std::string text;
  for (const auto& [key, value] : labels)
    absl::StrAppend(&text, text.empty() ? "" : ",", key, "=", value);
  return text;
}

FlowMetrics::Series& FlowMetrics::SeriesOf(uint64_t labelset) {
  auto it = series_.find(labelset);
  if (it != series_.end()) return it->second;
  const Labels* labels = sets_->Find(labelset);
  const std::string text = labels != nullptr ? LabelSetText(*labels) : "";
  Series s;
  s.queue_wait = &f_.queue_wait->With({text});
  s.run = &f_.run->With({text});
  for (int state = 0; state < farm::v1::JobState_ARRAYSIZE; ++state) {
    if (!farm::v1::JobState_IsValid(state) || !common::IsTerminal(static_cast<JobState>(state))) {
      continue;
    }
    s.lead_time[state] = &f_.lead_time->With(
        {text, LowerName(farm::v1::JobState_Name(static_cast<JobState>(state)), "")});
  }
  return series_.emplace(labelset, s).first->second;
}

FlowMetrics::Pending& FlowMetrics::PendingOf(Txn& txn) {
  if (pending_ == nullptr || pending_group_ != txn.id() || txn.id() == 0) {
    pending_ = std::make_shared<Pending>();
    pending_group_ = txn.id();
    txn.OnCommit([pending = pending_](const absl::Status& s) {
      if (!s.ok()) return;
      for (const auto& [histogram, value] : pending->observations) histogram->Observe(value);
      for (metrics::Counter* counter : pending->counts) counter->Add();
    });
  }
  return *pending_;
}

void FlowMetrics::Transitioned(Txn& txn, const farm::v1::Job& job, uint64_t labelset, JobState from,
                               int64_t now) {
  const JobState to = job.state();
  if (from != farm::v1::RUNNING && to != farm::v1::RUNNING && !common::IsTerminal(to)) return;
  Series& series = SeriesOf(labelset);
  Pending& pending = PendingOf(txn);
  if (to == farm::v1::RUNNING) {
    const int64_t queued = job.queued_ms() > 0 ? job.queued_ms() : job.submitted_ms();
    const farm::v1::Attempt* at =
        job.attempts().empty() ? nullptr : &job.attempts(job.attempts_size() - 1);
    pending.observations.emplace_back(
        series.queue_wait,
        Seconds(queued, at != nullptr && at->started_ms() > 0 ? at->started_ms() : now));
  }
  if (from == farm::v1::RUNNING && !job.attempts().empty()) {
    const farm::v1::Attempt& at = job.attempts(job.attempts_size() - 1);
    pending.observations.emplace_back(series.run, Seconds(at.started_ms(), now));
    if (at.outcome() > 0 && at.outcome() < farm::v1::AttemptOutcome_ARRAYSIZE &&
        f_.attempts[at.outcome()] != nullptr) {
      pending.counts.push_back(f_.attempts[at.outcome()]);
    }
  }
  if (common::IsTerminal(to) && series.lead_time[to] != nullptr) {
    pending.observations.emplace_back(series.lead_time[to], Seconds(job.submitted_ms(), now));
  }
}

void FlowMetrics::LeaseExpired(Txn& txn) { PendingOf(txn).counts.push_back(f_.lease_expirations); }

}  // namespace farm::coordinator
