#include "coordinator/factory/factory_report.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/factory/flow_report.h"

namespace farm::coordinator::factory {

absl::Status ValidateReportRequest(const farm::v1::FactoryReportRequest& req, int64_t now_ms) {
  if (req.since_ms() <= 0) {
    return absl::InvalidArgumentError("since_ms must be set: the window's start (Unix ms)");
  }
  if (req.until_ms() < 0 || (req.until_ms() > 0 && req.until_ms() <= req.since_ms())) {
    return absl::InvalidArgumentError("until_ms must be 0 (now) or later than since_ms");
  }
  // A window that reaches past now ends now: what has not happened has no events.
  const int64_t until = req.until_ms() > 0 ? std::min(req.until_ms(), now_ms) : now_ms;
  if (req.since_ms() >= until) {
    return absl::InvalidArgumentError("since_ms is not before now: the window would be empty");
  }
  if (until - req.since_ms() > kMaxWindowMs) {
    return absl::InvalidArgumentError(
        absl::StrCat("the window is longer than ", kMaxWindowMs / (24 * 3600'000), " days"));
  }
  if (req.target_wait_ms() < 0) {
    return absl::InvalidArgumentError("target_wait_ms must not be negative");
  }
  const int64_t cs = req.compare_since_ms();
  const int64_t cu = req.compare_until_ms();
  if (cs == 0 && cu == 0) return absl::OkStatus();
  if (cs <= 0 || cu <= cs) {
    return absl::InvalidArgumentError(
        "compare_since_ms and compare_until_ms: both 0 (a week earlier), or a window with "
        "compare_until_ms later than compare_since_ms > 0");
  }
  if (cu > now_ms) return absl::InvalidArgumentError("compare_until_ms is later than now");
  if (cu - cs > kMaxWindowMs) {
    return absl::InvalidArgumentError(absl::StrCat("the compare window is longer than ",
                                                   kMaxWindowMs / (24 * 3600'000), " days"));
  }
  return absl::OkStatus();
}

std::pair<int64_t, int64_t> CompareWindow(const farm::v1::FactoryReportRequest& req,
                                          int64_t until_ms) {
  constexpr int64_t kWeekMs = 7 * 24 * 3600'000LL;
  if (req.compare_until_ms() > 0) return {req.compare_since_ms(), req.compare_until_ms()};
  return {std::max<int64_t>(1, req.since_ms() - kWeekMs), std::max<int64_t>(2, until_ms - kWeekMs)};
}

namespace {

// Feeds the builder the events its window needs; CANCELLED once `cancelled` says so.
absl::Status Scan(EventReader* events, int64_t since, int64_t until, FlowReportBuilder& builder,
                  const std::function<bool()>& cancelled) {
  int64_t read = 0;
  bool stopped = false;
  FARM_RETURN_IF_ERROR(events->Scan(ScanStart(since, until), until, [&](const farm::v1::Event& e) {
    builder.Add(e);
    // Every 64k events, whether anyone still waits for the report.
    if ((++read & 0xffff) == 0 && cancelled && cancelled()) stopped = true;
    return !stopped;
  }));
  if (stopped) {
    return absl::CancelledError(
        absl::StrCat("the report was abandoned after ", read, " events: its caller went away"));
  }
  return absl::OkStatus();
}

// The targets' figures over the compare window.
absl::StatusOr<std::vector<farm::v1::FlowFigures>> CompareFigures(
    const ReportSources& sources, const FlowInputs& now, int64_t since, int64_t until,
    const std::function<bool()>& cancelled) {
  FlowInputs in;
  in.request.set_since_ms(since);
  in.request.set_until_ms(until);
  in.targets = now.targets;
  in.labels_of = now.labels_of;
  in.pipeline_of = now.pipeline_of;
  FlowReportBuilder builder(std::move(in));
  FARM_RETURN_IF_ERROR(Scan(sources.events, since, until, builder, cancelled));
  builder.Finish();
  return builder.target_figures();
}

}  // namespace

absl::StatusOr<farm::v1::FactoryReport> BuildReport(const ReportSources& sources,
                                                    farm::v1::FactoryReportRequest req,
                                                    const farm::v1::ListAgentsResponse& agents,
                                                    int64_t open_now, int64_t now_ms,
                                                    const std::function<bool()>& cancelled) {
  FARM_RETURN_IF_ERROR(ValidateReportRequest(req, now_ms));
  const bool ends_now = req.until_ms() == 0 || req.until_ms() >= now_ms;
  if (req.until_ms() == 0 || req.until_ms() > now_ms) req.set_until_ms(now_ms);
  FlowInputs in;
  in.request = req;
  if (ends_now) in.open_now = open_now;
  for (const farm::v1::AgentInfo& a : agents.agents()) {
    in.agents.push_back(FlowInputs::Agent{a.name(), Labels(a.labels().begin(), a.labels().end()),
                                          static_cast<int>(a.slots()),
                                          a.state() != "offline" && a.state() != "draining"});
  }
  absl::Status error;
  in.labels_of = [&](uint64_t labelset) {
    absl::StatusOr<Labels> labels = sources.events->LabelsOf(labelset);
    if (!labels.ok()) error.Update(labels.status());
    return labels.ok() ? *std::move(labels) : Labels();
  };
  in.pipeline_of = [&](const std::string& id) {
    absl::StatusOr<farm::v1::Pipeline> p = sources.reads->GetPipeline(id);
    // A pipeline removed by the retention: its jobs are known by its id.
    if (!p.ok() && !absl::IsNotFound(p.status())) error.Update(p.status());
    return p.ok() ? p->name() : absl::StrCat("(removed ", id, ")");
  };
  if (sources.targets != nullptr) {
    FARM_ASSIGN_OR_RETURN(in.targets, sources.targets->List());
  }
  FlowReportBuilder builder(in);
  FARM_RETURN_IF_ERROR(Scan(sources.events, req.since_ms(), req.until_ms(), builder, cancelled));
  farm::v1::FactoryReport report = builder.Finish();
  FARM_RETURN_IF_ERROR(error);
  if (sources.overstock.reads != nullptr) {
    size_t total = 0;
    const std::vector<std::string> ended = builder.EndedJobs(kMaxOverstockJobs, &total);
    FARM_ASSIGN_OR_RETURN(*report.mutable_overstock(),
                          BuildOverstock(sources.overstock, ended, static_cast<int64_t>(total),
                                         req.until_ms() - req.since_ms(), now_ms));
  }
  if (in.targets.empty()) return report;
  const auto [cs, cu] = CompareWindow(req, req.until_ms());
  report.set_compare_since_ms(cs);
  report.set_compare_until_ms(cu);
  FARM_ASSIGN_OR_RETURN(std::vector<farm::v1::FlowFigures> before,
                        CompareFigures(sources, in, cs, cu, cancelled));
  FARM_RETURN_IF_ERROR(error);
  for (farm::v1::TargetCondition& c : Conditions(in.targets, builder.target_figures(), before)) {
    *report.add_targets() = std::move(c);
  }
  return report;
}

}  // namespace farm::coordinator::factory
