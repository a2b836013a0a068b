// The builder's second half: the figures of each scope (the farm, each pool, each pipeline), the
// flaky steps, the bottleneck, the capacity advice and Little's law.
#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/duration.h"
#include "coordinator/factory/capacity.h"
#include "coordinator/factory/flow_report.h"
#include "coordinator/factory/targets.h"
#include "coordinator/scheduler/flow_metrics.h"
#include "coordinator/scheduler/label_sets.h"

namespace farm::coordinator::factory {
namespace {

using farm::v1::FlowFigures;

constexpr double kQuantile = 0.95;
constexpr int64_t kDefaultTargetWaitMs = 30'000;
constexpr int64_t kMinLeasesForAdvice = 10;
constexpr size_t kMaxFlakySteps = 20;
constexpr double kLittleTolerance = 0.10;

// What one scope adds up while the jobs are walked.
struct Acc {
  std::vector<int64_t> waits, runs, leads;
  int64_t arrivals = 0, completions = 0, wip_now = 0, leases = 0;
  int64_t open_ms = 0;                // job-milliseconds open within the window
  int64_t busy_ms = 0;                // slot-milliseconds its attempts ran within the window
  int64_t run_sum = 0, lead_sum = 0;  // for flow efficiency: jobs ended with all times known
  int64_t succeeded = 0, failed = 0, cancelled = 0, first_pass = 0;
  int64_t reruns_lost = 0, reruns_exit = 0, retried = 0;
};

int64_t Overlap(int64_t from, int64_t to, int64_t since, int64_t until) {
  return std::max<int64_t>(0, std::min(to, until) - std::max(from, since));
}

farm::v1::Spread SpreadOf(std::vector<int64_t>& v) {
  farm::v1::Spread s;
  s.set_count(static_cast<int64_t>(v.size()));
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  // Nearest rank: the smallest value with at least q of the values at or below it.
  auto rank = [&](double q) {
    const size_t i = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
    return v[std::clamp<size_t>(i, 1, v.size()) - 1];
  };
  s.set_p50_ms(rank(0.5));
  s.set_p95_ms(rank(kQuantile));
  int64_t sum = 0;
  for (int64_t x : v) sum += x;
  s.set_mean_ms(sum / static_cast<int64_t>(v.size()));
  return s;
}

// A pool's name: its label set as the metrics name it.
std::string PoolName(const Labels& labels) {
  return labels.empty() ? "pool (no labels)" : absl::StrCat("pool ", LabelSetText(labels));
}

// Whether the average WIP and throughput x lead time agree within 10%.
void CheckLittle(FlowFigures& f) {
  const double larger = std::max(f.wip_avg(), f.littles_wip());
  f.set_littles_holds(larger < 1e-9 ||
                      std::abs(f.wip_avg() - f.littles_wip()) <= kLittleTolerance * larger);
}

// The figures of a scope from what it added up over a window of `window_ms`.
FlowFigures Figures(std::string scope, Acc& a, int64_t window_ms, int64_t capacity_ms) {
  FlowFigures f;
  f.set_scope(std::move(scope));
  const double hours = static_cast<double>(window_ms) / 3600'000;
  f.set_arrivals(a.arrivals);
  f.set_completions(a.completions);
  f.set_arrivals_per_hour(static_cast<double>(a.arrivals) / hours);
  f.set_completions_per_hour(static_cast<double>(a.completions) / hours);
  f.set_wip_now(a.wip_now);
  f.set_wip_avg(static_cast<double>(a.open_ms) / static_cast<double>(window_ms));
  *f.mutable_queue_wait() = SpreadOf(a.waits);
  *f.mutable_run() = SpreadOf(a.runs);
  *f.mutable_lead() = SpreadOf(a.leads);
  if (a.lead_sum > 0) {
    f.set_flow_efficiency(static_cast<double>(a.run_sum) / static_cast<double>(a.lead_sum));
  }
  if (capacity_ms > 0) {
    f.set_utilisation(static_cast<double>(a.busy_ms) / static_cast<double>(capacity_ms));
  }
  f.set_succeeded(a.succeeded);
  f.set_failed(a.failed);
  f.set_cancelled(a.cancelled);
  f.set_first_pass(a.first_pass);
  if (a.succeeded + a.failed > 0) {
    f.set_first_pass_yield(static_cast<double>(a.first_pass) /
                           static_cast<double>(a.succeeded + a.failed));
  }
  f.set_reruns_lost(a.reruns_lost);
  f.set_reruns_exit(a.reruns_exit);
  f.set_retried(a.retried);
  // Little's law: throughput (jobs per ms) x mean lead time (ms).
  f.set_littles_wip(static_cast<double>(a.completions) / static_cast<double>(window_ms) *
                    static_cast<double>(f.lead().mean_ms()));
  CheckLittle(f);
  return f;
}

std::string Percent(double share) { return absl::StrFormat("%.0f%%", 100 * share); }

// The capacity advice for a pool, or nullopt when it has too few leases to say. Its arrival
// rate is taken over `active_ms`, the time its slots were online (a pool whose agents came up
// halfway through the window had its arrivals in half of it).
std::optional<farm::v1::CapacityAdvice> Advise(const FlowFigures& pool, int64_t leases,
                                               int64_t active_ms, int64_t target_ms) {
  if (leases < kMinLeasesForAdvice || pool.slots() <= 0 || pool.run().count() == 0 ||
      pool.run().mean_ms() <= 0) {
    return std::nullopt;
  }
  farm::v1::CapacityAdvice a;
  a.set_scope(pool.scope());
  a.set_slots(pool.slots());
  a.set_utilisation(pool.utilisation());
  const double lambda = static_cast<double>(leases) / (static_cast<double>(active_ms) / 1000);
  const double service = static_cast<double>(pool.run().mean_ms()) / 1000;
  a.set_arrivals_per_hour(lambda * 3600);
  a.set_mean_run_ms(pool.run().mean_ms());
  a.set_p95_wait_ms(pool.queue_wait().p95_ms());
  a.set_target_wait_ms(target_ms);
  const std::optional<int> needed =
      ServersFor(lambda, service, kQuantile, static_cast<double>(target_ms) / 1000);
  if (!needed.has_value()) return std::nullopt;
  a.set_slots_needed(*needed);
  a.set_predicted_p95_wait_ms(static_cast<int64_t>(
      std::llround(1000 * WaitQuantile(*needed, lambda, service, kQuantile).value_or(0))));
  const std::string now =
      absl::StrCat(pool.scope(), ": p95 wait ", common::FormatDurationRoundedMs(a.p95_wait_ms()),
                   " at ", Percent(a.utilisation()), " utilisation");
  const std::string target = common::FormatDurationRoundedMs(target_ms);
  if (*needed > pool.slots()) {
    const int per_agent = std::max(1, pool.slots() / std::max(1, pool.agents()));
    const int more = (*needed - pool.slots() + per_agent - 1) / per_agent;
    a.set_more_agents(more);
    a.set_text(absl::StrCat(now, "; ", more, more == 1 ? " more agent (" : " more agents (",
                            *needed, " slots in all) ", more == 1 ? "brings" : "bring",
                            " the p95 wait under ", target));
  } else if (a.p95_wait_ms() > target_ms) {
    // The model and the line disagree: say both rather than advise nothing.
    a.set_text(absl::StrCat(now, "; by M/M/c its ", pool.slots(), " slots should meet the ", target,
                            " target, but they did not: its arrivals come in bursts "
                            "(pipelines), or the window was not steady"));
  } else {
    a.set_text(absl::StrCat(now, "; its ", pool.slots(), " slots meet the ", target, " target (",
                            *needed, " would)"));
  }
  return a;
}

}  // namespace

// What one pipeline stage adds up.
struct StageAcc {
  std::vector<int64_t> blocked, waits, runs;
  int64_t jobs = 0;
};

struct FlowReportBuilder::Scopes {
  Acc all;
  std::map<uint64_t, Acc> pools;
  std::map<std::string, Acc> pipelines;
  std::map<std::pair<std::string, std::string>, StageAcc> stages;  // (pipeline, stage)
  std::vector<Acc> targets;                                        // of in_.targets
};

const Labels& FlowReportBuilder::LabelsOf(uint64_t labelset) {
  auto [it, is_new] = labels_.try_emplace(labelset);
  if (is_new && in_.labels_of) it->second = in_.labels_of(labelset);
  return it->second;
}

const std::string& FlowReportBuilder::PipelineOf(const std::string& id) {
  auto [it, is_new] = pipelines_.try_emplace(id);
  if (is_new && in_.pipeline_of) it->second = in_.pipeline_of(id);
  return it->second;
}

bool FlowReportBuilder::Wanted(const Job& job) {
  const farm::v1::FactoryReportRequest& req = in_.request;
  if (!req.pipeline().empty() &&
      (job.pipeline == 0 || PipelineOf(pipeline_ids_[job.pipeline]) != req.pipeline())) {
    return false;
  }
  return LabelsMatch(LabelsOf(job.labelset), filter_);
}

void FlowReportBuilder::AddJob(const Job& job, Scopes& scopes) {
  absl::InlinedVector<Acc*, 4> in;
  if (Wanted(job)) {
    in.push_back(&scopes.all);
    in.push_back(&scopes.pools[job.labelset]);
    if (job.pipeline != 0) in.push_back(&scopes.pipelines[PipelineOf(pipeline_ids_[job.pipeline])]);
    AddStage(job, scopes);
  }
  for (size_t i = 0; i < in_.targets.size(); ++i) {
    const farm::v1::FactoryTarget& t = in_.targets[i];
    if (!t.pipeline().empty() &&
        (job.pipeline == 0 || PipelineOf(pipeline_ids_[job.pipeline]) != t.pipeline())) {
      continue;
    }
    if (LabelsMatch(LabelsOf(job.labelset), target_labels_[i])) in.push_back(&scopes.targets[i]);
  }
  if (in.empty()) return;
  auto add = [&](auto&& fn) {
    for (Acc* a : in) fn(*a);
  };
  int64_t run_sum = 0;
  bool runs_known =
      job.submitted >= 0 && static_cast<uint32_t>(job.attempts.size()) == job.last_attempt;
  for (const Attempt& at : job.attempts) {
    const bool leased_in = at.leased >= since_ && at.leased < until_;
    const bool ended_in = at.ended >= since_ && at.ended < until_;
    const int64_t busy = Overlap(at.leased, at.ended >= 0 ? at.ended : until_, since_, until_);
    if (at.ended >= 0) run_sum += at.ended - at.leased;
    runs_known = runs_known && at.ended >= 0;
    add([&](Acc& a) {
      a.busy_ms += busy;
      if (leased_in) {
        ++a.leases;
        if (at.queued >= 0) a.waits.push_back(at.leased - at.queued);
        if (at.number > 1 && at.previous == farm::v1::ATTEMPT_LOST) ++a.reruns_lost;
        if (at.number > 1 && at.previous == farm::v1::ATTEMPT_FAILED) ++a.reruns_exit;
      }
      if (ended_in) a.runs.push_back(at.ended - at.leased);
    });
  }
  const int64_t open_from = job.submitted >= 0 ? job.submitted : job.first_seen;
  const int64_t open_ms = Overlap(open_from, job.ended >= 0 ? job.ended : until_, since_, until_);
  const bool ended = job.ended >= since_ && job.ended < until_;
  add([&](Acc& a) {
    a.arrivals += job.submitted >= since_ && job.submitted < until_;
    a.open_ms += open_ms;
    a.wip_now += job.ended < 0 && open_from < until_;
    a.retried += job.retried;
    if (!ended) return;
    ++a.completions;
    if (job.submitted >= 0) a.leads.push_back(job.ended - job.submitted);
    if (runs_known) {
      a.run_sum += run_sum;
      a.lead_sum += job.ended - job.submitted;
    }
    a.succeeded += job.state == farm::v1::SUCCEEDED;
    a.failed += job.state == farm::v1::FAILED;
    a.cancelled += job.state == farm::v1::CANCELLED;
    a.first_pass += job.state == farm::v1::SUCCEEDED && job.last_attempt <= 1;
  });
}

void FlowReportBuilder::AddStage(const Job& job, Scopes& scopes) {
  if (job.pipeline == 0 || job.name == 0) return;
  // "build (amd64)" is the stage "build": a matrix job's expansions are one station.
  const std::string& name = names_[job.name];
  StageAcc& s =
      scopes.stages[{PipelineOf(pipeline_ids_[job.pipeline]), name.substr(0, name.find(" ("))}];
  s.jobs += job.ended >= since_ && job.ended < until_;
  if (!job.attempts.empty()) {
    const Attempt& first = job.attempts.front();
    if (job.submitted >= 0 && first.queued >= since_ && first.queued < until_) {
      s.blocked.push_back(first.queued - job.submitted);
    }
  }
  for (const Attempt& at : job.attempts) {
    if (at.leased >= since_ && at.leased < until_ && at.queued >= 0) {
      s.waits.push_back(at.leased - at.queued);
    }
    if (at.ended >= since_ && at.ended < until_) s.runs.push_back(at.ended - at.leased);
  }
}

void FlowReportBuilder::AddStages(Scopes& scopes, farm::v1::FactoryReport& report) {
  // (pipeline, stage) -> mean wait + mean run: the stage's own time per job.
  std::map<std::string, std::pair<int64_t, int>> slowest;  // pipeline -> (time, index)
  for (auto& [key, acc] : scopes.stages) {
    if (acc.jobs == 0 && acc.waits.empty() && acc.runs.empty()) continue;
    farm::v1::StageFigures* f = report.add_stages();
    f->set_pipeline(key.first);
    f->set_stage(key.second);
    f->set_jobs(acc.jobs);
    *f->mutable_blocked() = SpreadOf(acc.blocked);
    *f->mutable_queue_wait() = SpreadOf(acc.waits);
    *f->mutable_run() = SpreadOf(acc.runs);
    const int64_t own = f->queue_wait().mean_ms() + f->run().mean_ms();
    auto [it, is_new] = slowest.try_emplace(key.first, own, report.stages_size() - 1);
    if (!is_new && own > it->second.first) it->second = {own, report.stages_size() - 1};
  }
  for (const auto& [pipeline, best] : slowest)
    report.mutable_stages(best.second)->set_bottleneck(true);
  // Each pipeline's stages, its bottleneck first, then by their own time.
  std::stable_sort(report.mutable_stages()->begin(), report.mutable_stages()->end(),
                   [](const farm::v1::StageFigures& a, const farm::v1::StageFigures& b) {
                     if (a.pipeline() != b.pipeline()) return a.pipeline() < b.pipeline();
                     if (a.bottleneck() != b.bottleneck()) return a.bottleneck();
                     return a.queue_wait().mean_ms() + a.run().mean_ms() >
                            b.queue_wait().mean_ms() + b.run().mean_ms();
                   });
}

FlowReportBuilder::Capacity FlowReportBuilder::CapacityFor(const Labels* required) const {
  Capacity c;
  for (const FlowInputs::Agent& agent : in_.agents) {
    if (required != nullptr && !LabelsMatch(agent.labels, *required)) continue;
    int64_t online_ms = agent.online ? until_ - since_ : 0;
    if (auto track = agents_.find(agent.name); track != agents_.end()) {
      const AgentTrack& t = track->second;
      online_ms = t.online_ms + (t.online ? Overlap(t.since, until_, since_, until_) : 0);
    }
    c.slot_ms += online_ms * agent.slots;
    if (agent.online) {
      c.slots += agent.slots;
      ++c.agents;
    }
  }
  return c;
}

void FlowReportBuilder::AddPools(Scopes& scopes, farm::v1::FactoryReport& report) {
  const int64_t window = until_ - since_;
  const int64_t target =
      in_.request.target_wait_ms() > 0 ? in_.request.target_wait_ms() : kDefaultTargetWaitMs;
  for (auto& [labelset, acc] : scopes.pools) {
    const Labels& required = LabelsOf(labelset);
    const Capacity c = CapacityFor(&required);
    FlowFigures f = Figures(PoolName(required), acc, window, c.slot_ms);
    f.mutable_labels()->insert(required.begin(), required.end());
    f.set_slots(c.slots);
    f.set_agents(c.agents);
    // The time its slots were online, on average (at most the window).
    const int64_t active =
        c.slots > 0 ? std::clamp<int64_t>(c.slot_ms / c.slots, 1, window) : window;
    if (std::optional<farm::v1::CapacityAdvice> advice = Advise(f, acc.leases, active, target)) {
      *report.add_advice() = *std::move(advice);
    }
    *report.add_pools() = std::move(f);
  }
  std::sort(report.mutable_pools()->begin(), report.mutable_pools()->end(),
            [](const FlowFigures& a, const FlowFigures& b) {
              if (a.utilisation() != b.utilisation()) return a.utilisation() > b.utilisation();
              return a.queue_wait().p95_ms() > b.queue_wait().p95_ms();
            });
  // The bottleneck: the busiest pool that ran anything (ties: the longest p95 wait).
  for (const FlowFigures& pool : report.pools()) {
    if (pool.run().count() == 0 && pool.queue_wait().count() == 0) continue;
    report.set_bottleneck(pool.scope());
    const std::string wait =
        absl::StrCat("p95 wait ", common::FormatDurationRoundedMs(pool.queue_wait().p95_ms()));
    report.set_bottleneck_reason(pool.slots() == 0
                                     ? absl::StrCat(wait, "; no agent online now can run its jobs")
                                     : absl::StrCat(wait, " at ", Percent(pool.utilisation()),
                                                    " utilisation of ", pool.slots(), " slots"));
    break;
  }
}

void FlowReportBuilder::AddFlakySteps(farm::v1::FactoryReport& report) {
  for (const auto& [fingerprint, step] : steps_) {
    if (step.passed == 0 || step.failed == 0) continue;
    auto job = jobs_.find(step.job);
    if (job != jobs_.end() && !Wanted(job->second)) continue;
    farm::v1::FlakyStep* out = report.add_flaky();
    out->set_job(names_[step.job_name]);
    out->set_step(step.step);
    out->set_fingerprint(fingerprint);
    out->set_passed(step.passed);
    out->set_failed(step.failed);
  }
  // Most flips first (the fewer of passes and failures), then most runs.
  std::sort(report.mutable_flaky()->begin(), report.mutable_flaky()->end(),
            [](const farm::v1::FlakyStep& a, const farm::v1::FlakyStep& b) {
              const int64_t fa = std::min(a.passed(), a.failed());
              const int64_t fb = std::min(b.passed(), b.failed());
              if (fa != fb) return fa > fb;
              if (a.passed() + a.failed() != b.passed() + b.failed()) {
                return a.passed() + a.failed() > b.passed() + b.failed();
              }
              return a.fingerprint() < b.fingerprint();
            });
  if (static_cast<size_t>(report.flaky_size()) > kMaxFlakySteps) {
    report.mutable_flaky()->DeleteSubrange(static_cast<int>(kMaxFlakySteps),
                                           report.flaky_size() - static_cast<int>(kMaxFlakySteps));
  }
}

farm::v1::FactoryReport FlowReportBuilder::Finish() {
  farm::v1::FactoryReport report;
  report.set_since_ms(since_);
  report.set_until_ms(until_);
  report.set_events(events_);
  const int64_t window = until_ - since_;
  Scopes scopes;
  scopes.targets.resize(in_.targets.size());
  for (const auto& [id, job] : jobs_) AddJob(job, scopes);
  const Capacity all = CapacityFor(nullptr);
  FlowFigures* totals = report.mutable_farm();
  *totals = Figures("farm", scopes.all, window, all.slot_ms);
  totals->set_slots(all.slots);
  totals->set_agents(all.agents);
  const bool filtered = !in_.request.pipeline().empty() || !in_.request.labels().empty();
  if (in_.open_now.has_value() && !filtered && *in_.open_now > totals->wip_now()) {
    // Open through the whole scan without an event: open through the whole window.
    const int64_t unseen = *in_.open_now - totals->wip_now();
    totals->set_wip_now(totals->wip_now() + unseen);
    totals->set_wip_avg(totals->wip_avg() + static_cast<double>(unseen));
    CheckLittle(*totals);
    report.add_notes(absl::StrCat(unseen, unseen == 1 ? " job was" : " jobs were",
                                  " open through the whole window without an event; the farm's "
                                  "WIP counts them, the pools' and pipelines' do not"));
  }
  AddPools(scopes, report);
  for (auto& [name, acc] : scopes.pipelines) {
    *report.add_pipelines() = Figures(absl::StrCat("pipeline ", name), acc, window, 0);
  }
  AddStages(scopes, report);
  AddFlakySteps(report);
  target_figures_.clear();
  for (size_t i = 0; i < in_.targets.size(); ++i) {
    target_figures_.push_back(Figures(TargetScope(in_.targets[i]), scopes.targets[i], window, 0));
  }
  if (!totals->littles_holds()) {
    report.add_notes(absl::StrFormat(
        "Little's law does not hold within 10%%: average WIP %.2f, throughput x lead time %.2f "
        "(the window is not in a steady state: work piled up or drained)",
        totals->wip_avg(), totals->littles_wip()));
  }
  return report;
}

}  // namespace farm::coordinator::factory
