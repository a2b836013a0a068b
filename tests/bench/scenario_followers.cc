// followers: SIZE readers follow the output of a chatty job (JobService.WatchLogs with
// follow=true, each on its own connection, as SIZE `farmctl logs --follow` would) while
// 20 × SIZE jobs are dispatched one after another. Dispatch latency is measured exactly as the
// dispatch scenario measures it (MeasureDispatch: submit → farm-bench-stamp running). The
// baseline is as many jobs in the same run with a chatty job running and no readers;
// p50_ratio and p99_ratio (with / without readers) are what the target is on: readers must not
// slow dispatch (they would if serving them held up the engine thread).
//
// The run is kRounds rounds, so that a change in the machine's load (it is shared) weighs on
// both figures alike: each round starts a chatty job, dispatches a block of jobs without
// readers, lets the readers join and catch up, dispatches a block with them, then stops the
// job and checks every reader. The two figures are the percentiles of all their blocks.
//
// The chatty step is farm-bench-chatty: a 100-byte line every 2 ms (about 50 kB/s, so a chunk
// from the agent every 100 ms, each a commit that wakes every reader) until the scenario drops
// its stop file; it then writes how many lines it printed. A run counts only if every reader
// got every byte of those lines, in order, once (offsets contiguous from 0, each byte as
// printed), kept up while the jobs were dispatched, and saw the job end SUCCEEDED.
//
// The dispatch jobs and the chatty jobs run on agents of their own (pool labels), so that the
// two figures differ only by the readers.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "tests/bench/chatty.h"
#include "tests/bench/scenarios.h"
#include "tests/testing/temp_dir.h"

namespace farm::bench {
namespace {

constexpr int kJobsPerReader = 20;
constexpr int kRounds = 4;
constexpr int64_t kChattyPeriodUs = 2'000;
const std::map<std::string, std::string> kDispatchPool = {{"pool", "dispatch"}};

std::chrono::system_clock::time_point DeadlineIn(absl::Duration d) {
  return std::chrono::system_clock::now() + absl::ToChronoMilliseconds(d);
}

// Checks a stream of (offset, data) pieces against the chatty step's lines: contiguous from 0
// (nothing lost, nothing twice), every byte as printed.
class ChattyChecker {
 public:
  absl::Status Check(int64_t offset, absl::string_view data) {
    if (offset != next_) {
      return absl::DataLossError(absl::StrCat("a chunk at offset ", offset, ", expected ", next_));
    }
    for (size_t done = 0; done < data.size();) {
      const int64_t at = next_ + static_cast<int64_t>(done);
      const int64_t index = at / static_cast<int64_t>(kChattyLineBytes);
      const size_t pos = static_cast<size_t>(at % static_cast<int64_t>(kChattyLineBytes));
      if (index != line_index_) {
        line_ = ChattyLine(index);
        line_index_ = index;
      }
      const size_t n = std::min(kChattyLineBytes - pos, data.size() - done);
      if (std::memcmp(data.data() + done, line_.data() + pos, n) != 0) {
        return absl::DataLossError(absl::StrCat("the bytes at [", at, ", +", n, ") are not line ",
                                                index, " as the step printed it"));
      }
      done += n;
    }
    next_ += static_cast<int64_t>(data.size());
    return absl::OkStatus();
  }
  int64_t bytes() const { return next_; }

 private:
  int64_t next_ = 0;
  int64_t line_index_ = -1;
  std::string line_;
};

// One reader: a thread that follows the job's output (WatchLogs, follow) on a connection of its
// own until the stream ends, checking every chunk. Destroying it cancels the call and joins.
class Follower {
 public:
  Follower(std::unique_ptr<farm::v1::JobService::Stub> stub, std::string job_id,
           absl::Duration timeout)
      : stub_(std::move(stub)), job_id_(std::move(job_id)) {
    ctx_.set_deadline(DeadlineIn(timeout));
    thread_ = std::thread([this] { Run(); });
  }
  ~Follower() {
    ctx_.TryCancel();
    if (thread_.joinable()) thread_.join();
  }

  // Bytes read and checked so far. Any thread.
  int64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  // Whether the stream has ended (then status() is its outcome). Any thread.
  bool ended() const { return ended_.load(std::memory_order_acquire); }
  // OK when every byte the stream carried was as printed and it ended with the job SUCCEEDED.
  // Only once ended().
  const absl::Status& status() const { return status_; }
  // Waits for the stream to end; status().
  absl::Status Join() {
    thread_.join();
    return status_;
  }

 private:
  void Run() {
    farm::v1::WatchLogsRequest req;
    req.set_job_id(job_id_);
    req.set_follow(true);
    auto reader = stub_->WatchLogs(&ctx_, req);
    ChattyChecker checker;
    absl::Status checked;
    farm::v1::JobState final_state = farm::v1::JOB_STATE_UNSPECIFIED;
    farm::v1::WatchLogsResponse msg;
    while (checked.ok() && reader->Read(&msg)) {
      for (const farm::v1::LogChunk& c : msg.chunks()) {
        checked = checker.Check(c.offset(), c.data());
        if (!checked.ok()) break;
      }
      bytes_.store(checker.bytes(), std::memory_order_relaxed);
      if (msg.final_state() != farm::v1::JOB_STATE_UNSPECIFIED) final_state = msg.final_state();
    }
    if (!checked.ok()) ctx_.TryCancel();
    const absl::Status finished = common::FromGrpcStatus(reader->Finish());
    if (!checked.ok()) {
      status_ = checked;
    } else if (!finished.ok()) {
      status_ = finished;
    } else if (final_state != farm::v1::SUCCEEDED) {
      status_ = absl::DataLossError(
          absl::StrCat("the stream ended with the job ", farm::v1::JobState_Name(final_state)));
    }
    ended_.store(true, std::memory_order_release);
  }

  const std::unique_ptr<farm::v1::JobService::Stub> stub_;
  const std::string job_id_;
  grpc::ClientContext ctx_;
  std::atomic<int64_t> bytes_{0};
  absl::Status status_;  // written by the thread, read once ended_ or joined
  std::atomic<bool> ended_{false};
  std::thread thread_;
};

// The bytes of the job's output stored now (WatchLogs without follow).
absl::StatusOr<int64_t> StoredBytes(BenchFarm& farm, const std::string& job_id) {
  farm::v1::WatchLogsRequest req;
  req.set_job_id(job_id);
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(absl::Seconds(30)));
  auto reader = farm.jobs()->WatchLogs(&ctx, req);
  int64_t bytes = 0;
  farm::v1::WatchLogsResponse msg;
  while (reader->Read(&msg)) {
    for (const farm::v1::LogChunk& c : msg.chunks()) {
      bytes = std::max<int64_t>(bytes, c.offset() + static_cast<int64_t>(c.data().size()));
    }
  }
  FARM_RETURN_IF_ERROR(common::FromGrpcStatus(reader->Finish()));
  return bytes;
}

// A reader's failure as the run reports it; the farm is kept for a post-mortem.
absl::Status ReaderFailed(BenchFarm& farm, size_t index, size_t readers, const absl::Status& s) {
  farm.Keep();
  return absl::Status(s.code(), absl::StrCat("reader ", index + 1, " of ", readers, ": ",
                                             s.message(), "; the farm is kept in ", farm.root()));
}

// Until every follower has read at least the output stored now. A follower whose stream ended
// (the job is still running) fails the run at once, with its reason.
absl::Status WaitCaughtUp(BenchFarm& farm, const std::string& job_id,
                          const std::vector<std::unique_ptr<Follower>>& followers,
                          const std::string& when) {
  FARM_ASSIGN_OR_RETURN(const int64_t stored, StoredBytes(farm, job_id));
  auto ended = [&] {
    return std::find_if(followers.begin(), followers.end(),
                        [](const auto& f) { return f->ended(); });
  };
  const absl::Status waited = WaitFor(
      [&] {
        return ended() != followers.end() ||
               std::all_of(followers.begin(), followers.end(),
                           [&](const auto& f) { return f->bytes() >= stored; });
      },
      absl::Seconds(60),
      absl::StrCat(followers.size(), " readers to read the ", stored, " bytes stored ", when),
      absl::Milliseconds(5));
  if (auto it = ended(); it != followers.end()) {
    const absl::Status& s = (*it)->status();
    return ReaderFailed(farm, it - followers.begin(), followers.size(),
                        s.ok() ? absl::DataLossError("the stream ended before the job did") : s);
  }
  return waited;
}

struct Chatty {
  std::string job_id;
  std::string stop_file;
  std::string count_file;
};

// Submits round `round`'s chatty job and returns once some of its output is stored.
absl::StatusOr<Chatty> StartChatty(BenchFarm& farm, const BenchEnv& env, int round,
                                   absl::Duration bound) {
  const std::string files = absl::StrCat(farm.root(), "/chatty-", round);
  Chatty chatty{"", files + ".stop", files + ".count"};
  farm::v1::JobSpec spec;
  spec.set_name("chatty");
  // The job's "shell" is the program itself; the agent appends the script, which it ignores.
  for (const std::string& arg :
       {env.bin_dir + "/farm-bench-chatty", chatty.stop_file, chatty.count_file,
        absl::StrCat(kChattyPeriodUs), absl::StrCat(absl::ToInt64Seconds(bound))}) {
    spec.add_shell(arg);
  }
  spec.add_steps()->set_run("chatty");
  (*spec.mutable_labels())["pool"] = "chatty";
  FARM_ASSIGN_OR_RETURN(chatty.job_id, Submit(farm.jobs(), spec));
  absl::Status last;
  const absl::Status printing = WaitFor(
      [&] {
        absl::StatusOr<int64_t> stored = StoredBytes(farm, chatty.job_id);
        last = stored.status();
        return stored.ok() && *stored > 0;
      },
      absl::Seconds(30), "the chatty job's first output", absl::Milliseconds(10));
  if (!printing.ok()) {
    return absl::Status(printing.code(),
                        absl::StrCat(printing.message(), " (last read: ", last.ToString(), ")"));
  }
  return chatty;
}

// What the chatty step printed, by its own count, and for how long it ran.
struct Printed {
  int64_t bytes = 0;
  double seconds = 0;
};

// Stops the chatty step; checks that the job succeeded with as many bytes of output on record
// as the step printed.
absl::StatusOr<Printed> StopChatty(BenchFarm& farm, const Chatty& chatty) {
  FARM_RETURN_IF_ERROR(testing::WriteFile(chatty.stop_file, "stop\n"));
  FARM_ASSIGN_OR_RETURN(
      const farm::v1::Job job,
      farm.WaitForJobDone(chatty.job_id, absl::Seconds(60), absl::Milliseconds(10)));
  if (job.state() != farm::v1::SUCCEEDED) {
    return absl::InternalError(absl::StrCat("the chatty job ", job.id(), " ended ",
                                            farm::v1::JobState_Name(job.state()), ": ",
                                            job.reason()));
  }
  int64_t lines = 0;
  const std::string count = testing::ReadFileOrEmpty(chatty.count_file);
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(count), &lines)) {
    return absl::InternalError(
        absl::StrCat("farm-bench-chatty left \"", count, "\" in ", chatty.count_file));
  }
  const int64_t printed = lines * static_cast<int64_t>(kChattyLineBytes);
  const farm::v1::Attempt& attempt = job.attempts(job.attempts_size() - 1);
  if (job.attempts_size() != 1 || attempt.steps_size() != 1 ||
      attempt.steps(0).log_bytes() != printed) {
    farm.Keep();
    return absl::DataLossError(
        absl::StrCat("the chatty job ", job.id(), " has ", job.attempts_size(), " attempts and ",
                     attempt.steps_size() == 1 ? attempt.steps(0).log_bytes() : -1,
                     " output bytes on record; its step printed ", printed,
                     "; the farm is kept in ", farm.root()));
  }
  return Printed{printed, static_cast<double>(attempt.steps(0).duration_ms()) / 1e3};
}

// The dispatch samples of one kind (with or without readers) and what the coordinator spent
// while they were taken.
struct Phase {
  std::vector<double> ms;
  double coordinator_cpu_s = 0;
  double seconds = 0;
  double CoordinatorCpuPct() const { return 100 * coordinator_cpu_s / std::max(seconds, 1e-9); }
};

// Dispatches `jobs` jobs and adds their samples to `phase`.
absl::Status MeasureBlock(BenchFarm& farm, const BenchEnv& env, int jobs, Phase* phase) {
  const pid_t coordinator = farm.coordinator()->pid();
  FARM_ASSIGN_OR_RETURN(const ProcSample cpu0, SampleProcess(coordinator));
  const int64_t t0 = MonotonicNs();
  FARM_ASSIGN_OR_RETURN(DispatchSamples samples, MeasureDispatch(farm, env, jobs, kDispatchPool));
  phase->seconds += static_cast<double>(MonotonicNs() - t0) / 1e9;
  FARM_ASSIGN_OR_RETURN(const ProcSample cpu1, SampleProcess(coordinator));
  phase->coordinator_cpu_s += cpu1.cpu_seconds - cpu0.cpu_seconds;
  phase->ms.insert(phase->ms.end(), samples.total_ms.begin(), samples.total_ms.end());
  return absl::OkStatus();
}

// Every follower's end: each must have read exactly `printed` bytes, all checked. The farm is
// kept for a post-mortem when one did not.
absl::Status JoinFollowers(BenchFarm& farm, std::vector<std::unique_ptr<Follower>>& followers,
                           int64_t printed) {
  for (size_t i = 0; i < followers.size(); ++i) {
    absl::Status s = followers[i]->Join();
    if (s.ok() && followers[i]->bytes() != printed) {
      s = absl::DataLossError(
          absl::StrCat("read ", followers[i]->bytes(), " of the ", printed, " bytes printed"));
    }
    if (!s.ok()) return ReaderFailed(farm, i, followers.size(), s);
  }
  return absl::OkStatus();
}

// What all the rounds gave.
struct Rounds {
  Phase baseline;  // without readers
  Phase with;      // with the readers
  int64_t printed_bytes = 0;
  double printing_seconds = 0;
};

// One round: a chatty job, `jobs` dispatches without readers, `readers` readers join, `jobs`
// dispatches with them; the job stops and every reader must have read all of its output.
absl::Status RunRound(BenchFarm& farm, const BenchEnv& env, int round, int64_t readers, int jobs,
                      absl::Duration bound, Rounds* rounds) {
  FARM_ASSIGN_OR_RETURN(const Chatty chatty, StartChatty(farm, env, round, bound));
  // On every way out the step stops, after the readers (below) are cancelled.
  absl::Cleanup stop_chatty = [&] { (void)testing::WriteFile(chatty.stop_file, "stop\n"); };
  FARM_RETURN_IF_ERROR(MeasureBlock(farm, env, jobs, &rounds->baseline));

  std::vector<std::unique_ptr<Follower>> followers;
  for (int64_t i = 0; i < readers; ++i) {
    FARM_ASSIGN_OR_RETURN(auto stub, farm.ConnectedJobClient());
    followers.push_back(
        std::make_unique<Follower>(std::move(stub), chatty.job_id, bound + absl::Seconds(60)));
  }
  FARM_RETURN_IF_ERROR(WaitCaughtUp(farm, chatty.job_id, followers, "when they joined"));
  FARM_RETURN_IF_ERROR(MeasureBlock(farm, env, jobs, &rounds->with));
  // They followed while the jobs ran, not only once the job ended.
  FARM_RETURN_IF_ERROR(WaitCaughtUp(farm, chatty.job_id, followers, "after the dispatches"));

  FARM_ASSIGN_OR_RETURN(const Printed printed, StopChatty(farm, chatty));
  FARM_RETURN_IF_ERROR(JoinFollowers(farm, followers, printed.bytes));
  rounds->printed_bytes += printed.bytes;
  rounds->printing_seconds += printed.seconds;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Metric>> Run(const BenchEnv& env, int64_t readers) {
  const int jobs = static_cast<int>(readers) * kJobsPerReader;
  // A chatty job's bound: far beyond any round that works (dispatch at 100 ms a job).
  const absl::Duration bound = absl::Seconds(120) + absl::Milliseconds(100) * (2 * jobs / kRounds);
  FARM_ASSIGN_OR_RETURN(auto farm, BenchFarm::Create(env));
  FARM_RETURN_IF_ERROR(farm->StartCoordinator());
  FARM_RETURN_IF_ERROR(farm->StartAgent({"dispatch", 1, {"--labels=pool=dispatch"}}));
  FARM_RETURN_IF_ERROR(farm->StartAgent({"chatty", 1, {"--labels=pool=chatty"}}));
  FARM_RETURN_IF_ERROR(farm->WaitForAgents(2));
  // Connections up and the dispatch agent's lease parked, as on a farm that has been running.
  FARM_RETURN_IF_ERROR(MeasureDispatch(*farm, env, 5, kDispatchPool).status());

  Rounds rounds;
  for (int r = 0; r < kRounds; ++r) {
    const int block = jobs * (r + 1) / kRounds - jobs * r / kRounds;
    FARM_RETURN_IF_ERROR(RunRound(*farm, env, r + 1, readers, block, bound, &rounds));
  }

  const std::vector<double>& with = rounds.with.ms;
  const std::vector<double>& without = rounds.baseline.ms;
  const double p50 = Percentile(with, 0.5), p99 = Percentile(with, 0.99);
  const double base_p50 = Percentile(without, 0.5), base_p99 = Percentile(without, 0.99);
  return std::vector<Metric>{
      {"p50_ms", p50, "ms"},
      {"p99_ms", p99, "ms"},
      {"baseline_p50_ms", base_p50, "ms"},
      {"baseline_p99_ms", base_p99, "ms"},
      {"p50_ratio", p50 / base_p50, "x"},
      {"p99_ratio", p99 / base_p99, "x"},
      {"coordinator_cpu_pct", rounds.with.CoordinatorCpuPct(), "%"},
      {"baseline_coordinator_cpu_pct", rounds.baseline.CoordinatorCpuPct(), "%"},
      {"chatty_kb_per_s",
       static_cast<double>(rounds.printed_bytes) / 1e3 / std::max(rounds.printing_seconds, 1e-3),
       "kB/s"},
      {"verified_mib", static_cast<double>(rounds.printed_bytes * readers) / (1 << 20), "MiB"},
  };
}

}  // namespace

Scenario FollowersScenario() {
  Scenario s;
  s.name = "followers";
  s.description =
      "SIZE WatchLogs --follow readers of a chatty job while 20 × SIZE jobs are dispatched; "
      "dispatch with / without the readers";
  s.size_unit = "readers";
  s.small = 10;
  s.large = 50;
  s.quick_small = 5;
  s.quick_large = 10;
  s.growth_metrics = {"p50_ratio", "p99_ratio", "coordinator_cpu_pct"};
  s.targets = {{"p50_ratio", Target::kAtMost, 1.2}, {"p99_ratio", Target::kAtMost, 1.2}};
  s.run = Run;
  return s;
}

}  // namespace farm::bench
