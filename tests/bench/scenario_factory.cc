// factory: the factory report over a day holding SIZE events. farm-bench-history writes the
// history into a fresh data directory (jobs of 4 pools over the last 24 hours, 7 events each),
// then a coordinator starts on it and JobService.GetFactoryReport is called for the last 24h,
// as `farmctl factory --since=24h` does: the call's wall time (median of 3) and the
// coordinator's RSS before and after.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "tests/bench/scenarios.h"
#include "tests/testing/subprocess.h"

namespace farm::bench {
namespace {

constexpr int kCalls = 3;

absl::Status WriteHistory(const BenchEnv& env, BenchFarm& farm, int64_t events) {
  testing::SubprocessOptions options;
  options.binary = env.bin_dir + "/farm-bench-history";
  options.args = {"--data_dir=" + farm.data_dir(), absl::StrCat("--events=", events)};
  options.stderr_path = farm.root() + "/history.log";
  FARM_ASSIGN_OR_RETURN(std::unique_ptr<testing::Subprocess> history,
                        testing::Subprocess::Start(options));
  FARM_ASSIGN_OR_RETURN(int code, history->Wait(absl::Minutes(10)));
  if (code != 0) return absl::InternalError(absl::StrCat("farm-bench-history exited ", code));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Metric>> RunFactory(const BenchEnv& env, int64_t size) {
  FARM_ASSIGN_OR_RETURN(std::unique_ptr<BenchFarm> farm, BenchFarm::Create(env));
  FARM_RETURN_IF_ERROR(WriteHistory(env, *farm, size));
  FARM_RETURN_IF_ERROR(farm->StartCoordinator());
  FARM_ASSIGN_OR_RETURN(ProcSample before, SampleProcess(farm->coordinator()->pid()));
  std::unique_ptr<farm::v1::JobService::Stub> jobs =
      farm::v1::JobService::NewStub(farm->NewChannel());
  std::vector<double> ms;
  int64_t read = 0;
  for (int i = 0; i < kCalls; ++i) {
    farm::v1::FactoryReportRequest req;
    req.set_since_ms(WallNs() / 1'000'000 - 24 * 3'600'000);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(5));
    farm::v1::FactoryReport report;
    const int64_t t0 = MonotonicNs();
    FARM_RETURN_IF_ERROR(common::FromGrpcStatus(jobs->GetFactoryReport(&context, req, &report)));
    ms.push_back(static_cast<double>(MonotonicNs() - t0) / 1e6);
    read = report.events();
  }
  FARM_ASSIGN_OR_RETURN(ProcSample after, SampleProcess(farm->coordinator()->pid()));
  const double median = Median(ms);
  return std::vector<Metric>{
      {"report_ms", median, "ms"},
      {"events_read", static_cast<double>(read), "events"},
      {"events_per_s", static_cast<double>(read) / (median / 1000), "events/s"},
      {"rss_before_mib", static_cast<double>(before.rss_bytes) / (1 << 20), "MiB"},
      {"rss_peak_mib", static_cast<double>(after.hwm_bytes) / (1 << 20), "MiB"},
  };
}

}  // namespace

Scenario FactoryScenario() {
  Scenario s;
  s.name = "factory";
  s.description = "farmctl factory --since=24h over a day of SIZE events (7 per job)";
  s.size_unit = "events";
  s.small = 100'000;
  s.large = 1'000'000;
  s.quick_small = 20'000;
  s.quick_large = 100'000;
  s.growth_metrics = {"events_per_s"};
  s.targets = {{"report_ms", Target::kAtMost, 2000}};
  s.run = RunFactory;
  return s;
}

}  // namespace farm::bench
