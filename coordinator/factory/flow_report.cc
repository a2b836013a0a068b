// The builder's first half: what each event tells about a job, a step or an agent. Finish (the
// figures) is in flow_figures.cc.
#include "coordinator/factory/flow_report.h"

#include <algorithm>
#include <functional>
#include <utility>

#include "coordinator/store/keys.h"

namespace farm::coordinator::factory {
namespace {

constexpr int64_t kMaxLookbackMs = 7LL * 24 * 3600'000;

bool IsAgentEvent(farm::v1::EventKind kind) {
  return kind >= farm::v1::AGENT_REGISTERED && kind <= farm::v1::AGENT_REMOVED;
}

// Whether the agent can take work after an event of this kind; nullopt: no change.
std::optional<bool> OnlineAfter(farm::v1::EventKind kind) {
  switch (kind) {
    case farm::v1::AGENT_REGISTERED:
    case farm::v1::AGENT_RETURNED:
    case farm::v1::AGENT_RESUMED:
      return true;
    case farm::v1::AGENT_LOST:
    case farm::v1::AGENT_REMOVED:
    case farm::v1::AGENT_DRAINING:
      return false;
    default:
      return std::nullopt;
  }
}

}  // namespace

int64_t ScanStart(int64_t since_ms, int64_t until_ms) {
  return std::max<int64_t>(0, since_ms - std::min(until_ms - since_ms, kMaxLookbackMs));
}

FlowReportBuilder::FlowReportBuilder(FlowInputs inputs)
    : in_(std::move(inputs)),
      since_(in_.request.since_ms()),
      until_(in_.request.until_ms()),
      filter_(ToLabels(in_.request.labels())) {
  for (const farm::v1::FactoryTarget& t : in_.targets)
    target_labels_.push_back(ToLabels(t.labels()));
}

std::vector<std::string> FlowReportBuilder::EndedJobs(size_t limit, size_t* total) {
  std::vector<std::pair<int64_t, uint64_t>> ended;  // (end, seq)
  for (const auto& [seq, job] : jobs_) {
    if (job.ended >= since_ && job.ended < until_ && Wanted(job))
      ended.emplace_back(job.ended, seq);
  }
  *total = ended.size();
  const size_t n = std::min(limit, ended.size());
  std::partial_sort(ended.begin(), ended.begin() + static_cast<std::ptrdiff_t>(n), ended.end(),
                    std::greater<>());
  std::vector<std::string> ids;
  ids.reserve(n);
  for (size_t i = 0; i < n; ++i) ids.push_back(keys::JobId(ended[i].second));
  return ids;
}

void FlowReportBuilder::Add(const farm::v1::Event& e) {
  ++events_;
  if (IsAgentEvent(e.kind())) {
    AddAgentEvent(e);
  } else if (!e.job_id().empty()) {
    AddJobEvent(e);
  }
}

void FlowReportBuilder::AddAgentEvent(const farm::v1::Event& e) {
  const std::optional<bool> online = OnlineAfter(e.kind());
  if (!online.has_value() || e.agent().empty()) return;
  AgentTrack& a = agents_[e.agent()];
  const int64_t t = e.time_ms();
  if (!a.seen) {
    // Before its first event in the scan it was in the state that event leaves.
    a.seen = true;
    a.online = !*online;
    a.since = ScanStart(since_, until_);
  }
  if (a.online && !*online) {
    a.online_ms += std::max<int64_t>(0, std::min(t, until_) - std::max(a.since, since_));
  }
  if (a.online != *online) {
    a.online = *online;
    a.since = t;
  }
}

uint32_t FlowReportBuilder::Intern(std::vector<std::string>& table,
                                   absl::flat_hash_map<std::string, uint32_t>& index,
                                   absl::string_view text) {
  if (text.empty()) return 0;
  auto [it, is_new] = index.try_emplace(text, static_cast<uint32_t>(table.size()));
  if (is_new) table.emplace_back(text);
  return it->second;
}

void FlowReportBuilder::AddJobEvent(const farm::v1::Event& e) {
  const std::optional<uint64_t> seq = keys::ParseJobId(e.job_id());
  if (!seq.has_value()) return;  // not a job id: nothing the report can place
  const int64_t t = e.time_ms();
  const bool in_window = t >= since_ && t < until_;
  if (e.kind() == farm::v1::JOB_RETRIED || e.kind() == farm::v1::JOB_DROPPED ||
      e.kind() == farm::v1::JOB_REPRIORITIZED) {
    // Said of a job, not its flow: a job the scan has not seen (one that ended before it, or
    // one dropped) is not made open by them.
    auto known = jobs_.find(*seq);
    if (known != jobs_.end() && e.kind() == farm::v1::JOB_RETRIED && in_window) {
      known->second.retried = true;
    }
    return;
  }
  auto [it, is_new] = jobs_.try_emplace(*seq);
  Job& job = it->second;
  if (is_new) {
    job.first_seen = t;
    job.labelset = e.labelset();
    job.pipeline = Intern(pipeline_ids_, pipeline_index_, e.pipeline_id());
  }
  if (job.name == 0) {
    job.name =
        Intern(names_, name_index_, !e.pipeline_job().empty() ? e.pipeline_job() : e.job_name());
  }
  switch (e.kind()) {
    case farm::v1::JOB_SUBMITTED:
      job.submitted = t;
      break;
    case farm::v1::JOB_QUEUED:
      job.queued = t;
      break;
    case farm::v1::JOB_LEASED: {
      Attempt at;
      at.queued = job.queued;
      at.leased = t;
      at.number = e.attempt();
      at.previous = job.last_outcome;
      job.attempts.push_back(at);
      job.queued = -1;
      job.last_attempt = std::max(job.last_attempt, e.attempt());
      break;
    }
    case farm::v1::ATTEMPT_ENDED:
      for (auto at = job.attempts.rbegin(); at != job.attempts.rend(); ++at) {
        if (at->number != e.attempt()) continue;
        at->ended = t;
        at->outcome = e.outcome();
        break;
      }
      job.last_outcome = e.outcome();
      break;
    case farm::v1::JOB_ENDED:
      job.ended = t;
      job.state = e.state();
      job.last_attempt = std::max(job.last_attempt, e.attempt());
      break;
    case farm::v1::STEP_FINISHED: {
      if (!in_window || e.step_fingerprint().empty()) break;
      const bool passed = e.step_state() == farm::v1::STEP_SUCCEEDED;
      const bool failed =
          e.step_state() == farm::v1::STEP_FAILED || e.step_state() == farm::v1::STEP_TIMED_OUT;
      if (!passed && !failed) break;
      Step& step = steps_[e.step_fingerprint()];
      if (step.step.empty()) {
        step.job_name = job.name;
        step.step = e.step();
        step.job = *seq;
      }
      ++(passed ? step.passed : step.failed);
      break;
    }
    default:
      break;
  }
}

}  // namespace farm::coordinator::factory
