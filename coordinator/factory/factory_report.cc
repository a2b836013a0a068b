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
  return absl::OkStatus();
}

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
  FlowReportBuilder builder(std::move(in));
  int64_t read = 0;
  bool stopped = false;
  FARM_RETURN_IF_ERROR(sources.events->Scan(
      ScanStart(req.since_ms(), req.until_ms()), req.until_ms(), [&](const farm::v1::Event& e) {
        builder.Add(e);
        // Every 64k events, whether anyone still waits for the report.
        if ((++read & 0xffff) == 0 && cancelled && cancelled()) stopped = true;
        return !stopped;
      }));
  if (stopped) {
    return absl::CancelledError(
        absl::StrCat("the report was abandoned after ", read, " events: its caller went away"));
  }
  farm::v1::FactoryReport report = builder.Finish();
  FARM_RETURN_IF_ERROR(error);
  return report;
}

}  // namespace farm::coordinator::factory
