#include "agent/agent_metrics.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/strip.h"
#include "agent/agent.h"
#include "common/logging.h"
#include "common/posix_io.h"
#include "common/status_macros.h"

namespace farm::agent {

namespace metrics = common::metrics;

AttemptMetrics AddAttemptMetrics(metrics::Registry& registry) {
  AttemptMetrics m;
  m.step_start_seconds = &registry.AddHistogram(
      "farm_agent_step_start_seconds",
      "From a job's lease arriving to its first step's start (workspace made, inputs staged).",
      metrics::LatencyBuckets());
  auto& attempts = registry.AddCounterFamily("farm_agent_attempts_total",
                                             "Attempts this agent ended, by outcome.", {"outcome"});
  for (int o = farm::v1::ATTEMPT_SUCCEEDED; o <= farm::v1::ATTEMPT_LOST; ++o) {
    const std::string& full =
        farm::v1::AttemptOutcome_Name(static_cast<farm::v1::AttemptOutcome>(o));
    absl::string_view name = full;
    absl::ConsumePrefix(&name, "ATTEMPT_");
    m.attempts[o] = &attempts.With({absl::AsciiStrToLower(name)});
  }
  m.uploaded_blobs = &registry.AddCounter("farm_agent_uploaded_blobs_total",
                                          "Artifact blobs uploaded (those the CAS lacked).");
  m.uploaded_bytes = &registry.AddCounter("farm_agent_uploaded_bytes_total",
                                          "Bytes of the artifact blobs uploaded.");
  return m;
}

metrics::Histogram* AddHeartbeatRtt(metrics::Registry& registry) {
  return &registry.AddHistogram(
      "farm_agent_heartbeat_rtt_seconds",
      "A heartbeat's round trip to the coordinator, less the time the coordinator held it.",
      metrics::FastLatencyBuckets());
}

void ObserveHeartbeatRtt(metrics::Histogram* rtt, absl::Duration elapsed,
                         const farm::v1::HeartbeatResponse& response) {
  if (!response.has_held_us()) return;
  rtt->Observe(
      std::max(0.0, absl::ToDoubleSeconds(elapsed - absl::Microseconds(response.held_us()))));
}

absl::Status Agent::StartHttp() {
  metrics_.AddCollector([this](metrics::Exposition& out) {
    out.Begin("farm_agent_build_info", "The agent's version and name (value 1).",
              metrics::Type::kGauge);
    out.Sample("", {{"version", options_.version}, {"name", options_.name}}, 1);
    out.Begin("farm_agent_slots", "Jobs this agent runs at once (--slots).", metrics::Type::kGauge);
    out.Sample("", {}, options_.slots);
    out.Begin("farm_agent_slots_busy", "Slots running a job now.", metrics::Type::kGauge);
    out.Sample("", {}, running_jobs());
    const BlobCache::Stats cache =
        blob_cache_ != nullptr ? blob_cache_->stats() : BlobCache::Stats();
    out.Begin("farm_agent_cache_hits_total", "Job inputs served from the local cache.",
              metrics::Type::kCounter);
    out.Sample("", {}, static_cast<double>(cache.hits));
    out.Begin("farm_agent_cache_misses_total", "Job inputs fetched from the CAS.",
              metrics::Type::kCounter);
    out.Sample("", {}, static_cast<double>(cache.misses));
    out.Begin("farm_agent_cache_bytes", "Bytes in the local cache of job inputs.",
              metrics::Type::kGauge);
    out.Sample("", {}, static_cast<double>(blob_cache_ != nullptr ? blob_cache_->bytes() : 0));
  });
  common::HttpServer::Options http;
  http.listen = options_.http_listen;
  http.get["/healthz"] = [](const common::HttpServer::Request&) {
    return common::HttpServer::Response{200, "text/plain; charset=utf-8", "ok\n", {}};
  };
  http.get["/metrics"] = [this](const common::HttpServer::Request&) {
    return common::HttpServer::Response{
        200, "text/plain; version=0.0.4; charset=utf-8", metrics_.Expose(), {}};
  };
  FARM_ASSIGN_OR_RETURN(http_, common::HttpServer::Start(std::move(http)));
  FARM_LOG(INFO) << log_prefix_ << " HTTP (/metrics, /healthz) on " << http_->address();
  if (!options_.http_port_file.empty()) {
    FARM_RETURN_IF_ERROR(
        common::WriteFileAtomically(options_.http_port_file, http_->address() + "\n"));
  }
  return absl::OkStatus();
}

}  // namespace farm::agent
