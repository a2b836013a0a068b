// logs: one step writes SIZE MiB of text lines to stdout; how fast the farm stores it (agent
// pipe → LogSender → UploadLogs → the scheduler's durable log writes) and serves it back
// (WatchLogs). "Stored" is the job reaching SUCCEEDED: the agent flushes a step's output (every
// byte committed by the coordinator) before it reports the step finished, and completes the
// job after that, so a SUCCEEDED job has all of its output durably stored and readable.
// The read-back then checks every byte against the pattern the step printed.
// MB here is 10^6 bytes (rates and CPU per GB); RSS is in MiB like the rest of the suite.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "tests/bench/scenarios.h"

namespace farm::bench {
namespace {

// One line of the step's output without its newline: printable, not a run of one byte (so
// nothing along the way can pass off a short cut), and no single quote (it goes in one).
constexpr char kLine[] =
    "farm-bench logs: the quick brown fox jumps over the lazy dog 0123456789 "
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ.";
constexpr size_t kPeriod = sizeof(kLine);  // the line and its newline
static_assert(kPeriod == 100, "the pattern is 100-byte lines");

double MiB(int64_t bytes) { return static_cast<double>(bytes) / (1 << 20); }

std::chrono::system_clock::time_point DeadlineIn(absl::Duration d) {
  return std::chrono::system_clock::now() + absl::ToChronoMilliseconds(d);
}

// Checks a stream of (offset, data) pieces against the repeated line: contiguous from 0, every
// byte as printed. Compares with memcmp against a long copy of the pattern, so checking costs
// the reader next to nothing.
class PatternChecker {
 public:
  PatternChecker() {
    const std::string period = absl::StrCat(kLine, "\n");
    pattern_.reserve(kPiece + kPeriod);
    while (pattern_.size() < kPiece + kPeriod) pattern_ += period;
  }

  absl::Status Check(int64_t offset, absl::string_view data) {
    if (offset != next_) {
      return absl::DataLossError(
          absl::StrCat("read-back chunk at offset ", offset, ", expected ", next_));
    }
    for (size_t done = 0; done < data.size();) {
      const size_t n = std::min(kPiece, data.size() - done);
      const size_t phase = static_cast<size_t>((offset + static_cast<int64_t>(done)) % kPeriod);
      if (std::memcmp(data.data() + done, pattern_.data() + phase, n) != 0) {
        return absl::DataLossError(
            absl::StrCat("read-back bytes differ from the step's output "
                         "within [",
                         offset + static_cast<int64_t>(done), ", +", n, ")"));
      }
      done += n;
    }
    next_ += static_cast<int64_t>(data.size());
    return absl::OkStatus();
  }

  int64_t bytes() const { return next_; }

 private:
  static constexpr size_t kPiece = 1 << 20;
  std::string pattern_;
  int64_t next_ = 0;
};

absl::StatusOr<farm::v1::Job> RunToSuccess(BenchFarm& farm, const farm::v1::JobSpec& spec,
                                           absl::Duration timeout) {
  FARM_ASSIGN_OR_RETURN(const std::string id, Submit(farm.jobs(), spec));
  FARM_ASSIGN_OR_RETURN(farm::v1::Job job,
                        farm.WaitForJobDone(id, timeout, absl::Milliseconds(10)));
  if (job.state() != farm::v1::SUCCEEDED) {
    return absl::InternalError(absl::StrCat(
        "job ", id, " ended ", farm::v1::JobState_Name(job.state()), ": ", job.reason()));
  }
  return job;
}

absl::StatusOr<std::vector<Metric>> RunLogs(const BenchEnv& env, int64_t size_mib) {
  const int64_t bytes = size_mib << 20;
  const double gb = static_cast<double>(bytes) / 1e9;
  // Far slower than any farm should be (1 MB/s), yet bounded.
  const absl::Duration timeout = absl::Seconds(60 + bytes / 1'000'000);

  FARM_ASSIGN_OR_RETURN(auto farm, BenchFarm::Create(env));
  // Room for all of it: a truncation marker would change what is read back.
  FARM_RETURN_IF_ERROR(
      farm->StartCoordinator({absl::StrCat("--max_log_bytes_per_job=", 2 * bytes)}));
  FARM_RETURN_IF_ERROR(farm->StartAgent({"a1", 1, {}}));
  FARM_RETURN_IF_ERROR(farm->WaitForAgents(1));
  // Connections up and the agent's lease parked, as on a farm that has been running.
  FARM_RETURN_IF_ERROR(RunToSuccess(*farm, OneStepJob("warm-up", "true"), timeout).status());

  const pid_t coordinator = farm->coordinator()->pid();
  const pid_t agent = farm->agent("a1")->pid();
  const farm::v1::JobSpec spec =
      OneStepJob("logs", absl::StrCat("yes '", kLine, "' | head -c ", bytes));

  FARM_ASSIGN_OR_RETURN(const ProcSample coord0, SampleProcess(coordinator));
  FARM_ASSIGN_OR_RETURN(const ProcSample agent0, SampleProcess(agent));
  const int64_t t0 = MonotonicNs();
  FARM_ASSIGN_OR_RETURN(const farm::v1::Job job, RunToSuccess(*farm, spec, timeout));
  const int64_t t_stored = MonotonicNs();
  FARM_ASSIGN_OR_RETURN(const ProcSample coord1, SampleProcess(coordinator));
  FARM_ASSIGN_OR_RETURN(const ProcSample agent1, SampleProcess(agent));

  const farm::v1::Attempt& attempt = job.attempts(job.attempts_size() - 1);
  if (attempt.steps_size() != 1 || attempt.steps(0).log_bytes() != bytes) {
    return absl::InternalError(
        absl::StrCat("job ", job.id(), ": the agent reports ",
                     attempt.steps_size() == 1 ? attempt.steps(0).log_bytes() : -1,
                     " output bytes, the step printed ", bytes));
  }

  // Read it all back, as `farmctl logs` would.
  PatternChecker checker;
  farm::v1::WatchLogsRequest watch;
  watch.set_job_id(job.id());
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(timeout));
  farm::v1::JobState final_state = farm::v1::JOB_STATE_UNSPECIFIED;
  absl::Status checked;
  const int64_t r0 = MonotonicNs();
  auto reader = farm->jobs()->WatchLogs(&ctx, watch);
  farm::v1::WatchLogsResponse msg;
  while (checked.ok() && reader->Read(&msg)) {
    for (const farm::v1::LogChunk& c : msg.chunks()) {
      checked = checker.Check(c.offset(), c.data());
      if (!checked.ok()) break;
    }
    if (msg.final_state() != farm::v1::JOB_STATE_UNSPECIFIED) final_state = msg.final_state();
  }
  if (!checked.ok()) ctx.TryCancel();
  const absl::Status finished = common::FromGrpcStatus(reader->Finish());
  const int64_t r1 = MonotonicNs();
  if (!checked.ok() || !finished.ok()) {
    farm->Keep();
    return absl::Status((checked.ok() ? finished : checked).code(),
                        absl::StrCat((checked.ok() ? finished : checked).message(),
                                     "; the farm's logs are kept in ", farm->root()));
  }
  if (checker.bytes() != bytes || final_state != farm::v1::SUCCEEDED) {
    farm->Keep();
    return absl::DataLossError(absl::StrCat(
        "read back ", checker.bytes(), " of ", bytes, " bytes (final state ",
        farm::v1::JobState_Name(final_state), "); the farm's logs are kept in ", farm->root()));
  }
  FARM_ASSIGN_OR_RETURN(const ProcSample coord2, SampleProcess(coordinator));
  FARM_ASSIGN_OR_RETURN(const ProcSample agent2, SampleProcess(agent));

  const double store_s = static_cast<double>(t_stored - t0) / 1e9;
  const double read_s = static_cast<double>(r1 - r0) / 1e9;
  const double mb = static_cast<double>(bytes) / 1e6;
  return std::vector<Metric>{
      {"stored_mb_per_s", mb / store_s, "MB/s"},
      {"readback_mb_per_s", mb / read_s, "MB/s"},
      {"coordinator_cpu_s_per_gb", (coord1.cpu_seconds - coord0.cpu_seconds) / gb, "s"},
      {"agent_cpu_s_per_gb", (agent1.cpu_seconds - agent0.cpu_seconds) / gb, "s"},
      {"readback_cpu_s_per_gb", (coord2.cpu_seconds - coord1.cpu_seconds) / gb, "s"},
      {"coordinator_peak_rss_mb", MiB(coord2.hwm_bytes), "MiB"},
      {"agent_peak_rss_mb", MiB(agent2.hwm_bytes), "MiB"},
  };
}

}  // namespace

Scenario LogsScenario() {
  Scenario s;
  s.name = "logs";
  s.description = "one step writing SIZE MiB to stdout, until stored and readable";
  s.size_unit = "MiB";
  s.small = 128;
  s.large = 1024;
  s.quick_small = 16;
  s.quick_large = 64;
  s.growth_metrics = {"stored_mb_per_s", "readback_mb_per_s", "coordinator_cpu_s_per_gb"};
  s.targets = {{"stored_mb_per_s", Target::kAtLeast, 150}};
  s.run = RunLogs;
  return s;
}

}  // namespace farm::bench
