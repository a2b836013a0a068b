#include "tests/bench/bench.h"

#include <grpcpp/grpcpp.h>
#include <pwd.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/channel.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"

namespace farm::bench {
namespace {

std::chrono::system_clock::time_point DeadlineIn(absl::Duration d) {
  return std::chrono::system_clock::now() + absl::ToChronoMilliseconds(d);
}

}  // namespace

absl::StatusOr<ProcSample> SampleProcess(pid_t pid) {
  const std::string stat = testing::ReadFileOrEmpty(absl::StrCat("/proc/", pid, "/stat"));
  const std::string status = testing::ReadFileOrEmpty(absl::StrCat("/proc/", pid, "/status"));
  if (stat.empty() || status.empty()) {
    return absl::NotFoundError(absl::StrCat("process ", pid, " is gone"));
  }
  // The command name (field 2) may hold spaces; the fields after its ')' are fixed.
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return absl::InternalError("unexpected /proc/PID/stat");
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(stat).substr(paren + 2), ' ', absl::SkipEmpty());
  // After ')': state is field 3 of stat(5), so utime (14), stime (15), cutime (16) and
  // cstime (17) are at 11 to 14.
  int64_t utime = 0, stime = 0, cutime = 0, cstime = 0;
  if (fields.size() < 15 || !absl::SimpleAtoi(fields[11], &utime) ||
      !absl::SimpleAtoi(fields[12], &stime) || !absl::SimpleAtoi(fields[13], &cutime) ||
      !absl::SimpleAtoi(fields[14], &cstime)) {
    return absl::InternalError("unexpected /proc/PID/stat");
  }
  ProcSample sample;
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  sample.cpu_seconds = static_cast<double>(utime + stime) / tick;
  sample.children_cpu_seconds = static_cast<double>(cutime + cstime) / tick;
  for (absl::string_view line : absl::StrSplit(status, '\n')) {
    auto kb = [&](absl::string_view key, int64_t* out) {
      if (!absl::ConsumePrefix(&line, key)) return;
      line = absl::StripAsciiWhitespace(line);
      absl::ConsumeSuffix(&line, " kB");
      int64_t v = 0;
      if (absl::SimpleAtoi(line, &v)) *out = v * 1024;
    };
    kb("VmRSS:", &sample.rss_bytes);
    kb("VmHWM:", &sample.hwm_bytes);
    kb("RssAnon:", &sample.anon_bytes);
  }
  return sample;
}

absl::StatusOr<double> MachineBusySeconds() {
  const std::string stat = testing::ReadFileOrEmpty("/proc/stat");
  // "cpu  user nice system idle iowait irq softirq steal ..." in clock ticks.
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(stat).substr(0, stat.find('\n')), ' ', absl::SkipEmpty());
  if (fields.size() < 9 || fields[0] != "cpu") return absl::InternalError("unexpected /proc/stat");
  int64_t busy = 0;
  for (size_t i : {1, 2, 3, 6, 7, 8}) {
    int64_t v = 0;
    if (!absl::SimpleAtoi(fields[i], &v)) return absl::InternalError("unexpected /proc/stat");
    busy += v;
  }
  return static_cast<double>(busy) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

int64_t WallNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

int64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  // Nearest rank: the smallest value with at least p of the samples at or below it.
  size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size())));
  if (rank == 0) rank = 1;
  return v[std::min(rank, v.size()) - 1];
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

absl::Status WaitFor(const std::function<bool()>& condition, absl::Duration timeout,
                     const std::string& what, absl::Duration poll) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (condition()) return absl::OkStatus();
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("timed out after ", absl::FormatDuration(timeout), " waiting for ", what));
    }
    absl::SleepFor(poll);
  }
}

absl::StatusOr<std::unique_ptr<BenchFarm>> BenchFarm::Create(const BenchEnv& env) {
  std::error_code ec;
  std::filesystem::create_directories(env.data_root, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot create the data root ", env.data_root, ": ", ec.message()));
  }
  // TempDir creates under $TMPDIR: point it at the data root for this call.
  const char* old = getenv("TMPDIR");
  const std::string saved = old != nullptr ? old : "";
  setenv("TMPDIR", env.data_root.c_str(), 1);
  absl::StatusOr<testing::TempDir> root = testing::TempDir::Create("farm-bench");
  if (old != nullptr) {
    setenv("TMPDIR", saved.c_str(), 1);
  } else {
    unsetenv("TMPDIR");
  }
  if (!root.ok()) return root.status();
  std::unique_ptr<BenchFarm> farm(new BenchFarm(env, std::move(*root)));
  if (env.verbose) farm->root_.Keep();
  return farm;
}

BenchFarm::~BenchFarm() {
  for (auto& [name, agent] : agents_) {
    if (agent->IsRunning()) (void)agent->Signal(SIGTERM);
  }
  for (auto& [name, agent] : agents_) (void)agent->Terminate(absl::Seconds(10));
  if (coordinator_ != nullptr) (void)coordinator_->Terminate(absl::Seconds(10));
}

absl::Status BenchFarm::StartCoordinator(std::vector<std::string> flags) {
  if (coordinator_ != nullptr && coordinator_->IsRunning()) {
    return absl::FailedPreconditionError("the coordinator is already running");
  }
  coordinator_flags_ = std::move(flags);
  return Launch("127.0.0.1:0");
}

absl::Status BenchFarm::StopCoordinator() {
  if (coordinator_ == nullptr) return absl::FailedPreconditionError("no coordinator");
  absl::StatusOr<int> code = coordinator_->Terminate(absl::Seconds(30));
  if (!code.ok()) return code.status();
  if (*code != 0) {
    return absl::InternalError(absl::StrCat("farm-coordinator exited with ", *code));
  }
  return absl::OkStatus();
}

absl::Status BenchFarm::RestartCoordinator() {
  if (address_.empty()) return absl::FailedPreconditionError("never started");
  if (coordinator_ != nullptr && coordinator_->IsRunning()) {
    return absl::FailedPreconditionError("the coordinator is still running");
  }
  return Launch(address_);
}

absl::Status BenchFarm::Launch(const std::string& listen) {
  const std::string port_file = root_.Join("coordinator.port");
  std::error_code ec;
  std::filesystem::remove(port_file, ec);
  std::filesystem::create_directories(data_dir(), ec);
  const int n = ++coordinator_starts_;
  testing::SubprocessOptions options;
  options.binary = env_.bin_dir + "/farm-coordinator";
  options.args = {absl::StrCat("--listen=", listen), absl::StrCat("--data_dir=", data_dir()),
                  absl::StrCat("--port_file=", port_file)};
  for (const std::string& flag : env_.security->CoordinatorFlags()) options.args.push_back(flag);
  for (const std::string& flag : coordinator_flags_) options.args.push_back(flag);
  if (env_.metrics) options.args.push_back("--http_listen=127.0.0.1:0");
  options.stdout_path = root_.Join(absl::StrCat("coordinator-", n, ".log"));
  options.stderr_path = options.stdout_path;
  FARM_ASSIGN_OR_RETURN(coordinator_, testing::Subprocess::Start(options));

  FARM_ASSIGN_OR_RETURN(address_,
                        testing::WaitForAddressFile(*coordinator_, port_file, absl::Seconds(60),
                                                    options.stderr_path));
  channel_ = NewChannel();
  jobs_ = farm::v1::JobService::NewStub(channel_);
  return WaitServing(absl::Seconds(30));
}

absl::Status BenchFarm::WaitServing(absl::Duration timeout) {
  auto admin = farm::v1::AdminService::NewStub(channel_);
  return WaitFor(
      [&] {
        grpc::ClientContext ctx;
        ctx.set_deadline(DeadlineIn(absl::Seconds(1)));
        ctx.set_wait_for_ready(true);
        farm::v1::ListAgentsResponse resp;
        return admin->ListAgents(&ctx, farm::v1::ListAgentsRequest(), &resp).ok();
      },
      timeout, "the coordinator to serve", absl::Milliseconds(1));
}

absl::Status BenchFarm::StartAgent(const BenchAgent& agent) {
  if (address_.empty()) return absl::FailedPreconditionError("start the coordinator first");
  if (agents_.count(agent.name) > 0 && agents_[agent.name]->IsRunning()) {
    return absl::FailedPreconditionError(absl::StrCat("agent ", agent.name, " is running"));
  }
  testing::SubprocessOptions options;
  options.binary = env_.bin_dir + "/farm-agent";
  options.args = {absl::StrCat("--coordinator=", address_), absl::StrCat("--name=", agent.name),
                  absl::StrCat("--slots=", agent.slots),
                  absl::StrCat("--work_dir=", root_.Join("agents/" + agent.name))};
  FARM_ASSIGN_OR_RETURN(std::vector<std::string> security,
                        env_.security->AgentFlags(agent.name, root_.Join("certs/" + agent.name)));
  for (const std::string& flag : security) options.args.push_back(flag);
  for (const std::string& flag : agent.extra_flags) options.args.push_back(flag);
  // Steps run as the bench does (as root, the agent's default user could not reach root_).
  if (const struct passwd* self = ::getpwuid(::geteuid()); self != nullptr) {
    options.args.push_back(absl::StrCat("--run_as=", self->pw_name));
  }
  options.stdout_path = root_.Join(agent.name + ".log");
  options.stderr_path = options.stdout_path;
  FARM_ASSIGN_OR_RETURN(agents_[agent.name], testing::Subprocess::Start(options));
  return absl::OkStatus();
}

absl::Status BenchFarm::WaitForAgents(int count, absl::Duration timeout) {
  auto admin = farm::v1::AdminService::NewStub(channel_);
  return WaitFor(
      [&] {
        grpc::ClientContext ctx;
        ctx.set_deadline(DeadlineIn(absl::Seconds(5)));
        farm::v1::ListAgentsResponse resp;
        if (!admin->ListAgents(&ctx, farm::v1::ListAgentsRequest(), &resp).ok()) return false;
        int online = 0;
        for (const auto& a : resp.agents()) {
          if (a.state() != "offline") ++online;
        }
        return online >= count;
      },
      timeout, absl::StrCat(count, " agents to register"), absl::Milliseconds(20));
}

testing::Subprocess* BenchFarm::agent(const std::string& name) {
  auto it = agents_.find(name);
  return it == agents_.end() ? nullptr : it->second.get();
}

std::shared_ptr<grpc::Channel> BenchFarm::NewChannel(bool own_connection) const {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(common::kMaxGrpcMessageBytes);
  args.SetMaxSendMessageSize(common::kMaxGrpcMessageBytes);
  if (own_connection) {
    // Channels with equal arguments share subchannels (and so one TCP connection); a unique
    // argument gives this one its own, as a separate client process would have.
    static std::atomic<int> counter{0};
    args.SetInt("farm.bench.connection", ++counter);
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  }
  return grpc::CreateCustomChannel(address_, env_.security->ClientCredentials(), args);
}

absl::StatusOr<std::unique_ptr<farm::v1::JobService::Stub>> BenchFarm::ConnectedJobClient() const {
  std::shared_ptr<grpc::Channel> channel = NewChannel(/*own_connection=*/true);
  if (!channel->WaitForConnected(DeadlineIn(absl::Seconds(10)))) {
    return absl::UnavailableError(absl::StrCat("cannot connect to ", address_));
  }
  return farm::v1::JobService::NewStub(channel);
}

absl::StatusOr<farm::v1::Job> BenchFarm::WaitForJobDone(const std::string& job_id,
                                                        absl::Duration timeout,
                                                        absl::Duration poll) {
  farm::v1::Job job;
  absl::Status last;
  absl::Status waited = WaitFor(
      [&] {
        grpc::ClientContext ctx;
        ctx.set_deadline(DeadlineIn(absl::Seconds(10)));
        farm::v1::GetJobRequest req;
        req.set_job_id(job_id);
        last = common::FromGrpcStatus(jobs_->Get(&ctx, req, &job));
        if (!last.ok()) return false;
        return job.state() == farm::v1::SUCCEEDED || job.state() == farm::v1::FAILED ||
               job.state() == farm::v1::CANCELLED;
      },
      timeout, absl::StrCat("job ", job_id, " to end"), poll);
  if (!waited.ok()) {
    return absl::DeadlineExceededError(absl::StrCat(waited.message(), " (state ",
                                                    farm::v1::JobState_Name(job.state()),
                                                    "; last call: ", last.ToString(), ")"));
  }
  return job;
}

farm::v1::JobSpec OneStepJob(const std::string& name, const std::string& run) {
  farm::v1::JobSpec spec;
  spec.set_name(name);
  spec.add_steps()->set_run(run);
  return spec;
}

absl::StatusOr<std::string> Submit(farm::v1::JobService::Stub* jobs, const farm::v1::JobSpec& spec,
                                   const std::string& request_id) {
  farm::v1::SubmitJobRequest req;
  *req.mutable_spec() = spec;
  req.set_request_id(request_id);
  farm::v1::SubmitJobResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(absl::Seconds(30)));
  FARM_RETURN_IF_ERROR(common::FromGrpcStatus(jobs->Submit(&ctx, req, &resp)));
  return resp.job_id();
}

absl::StatusOr<DispatchSamples> MeasureDispatch(BenchFarm& farm, const BenchEnv& env, int runs,
                                                const std::map<std::string, std::string>& labels) {
  DispatchSamples samples;
  for (int i = 0; i < runs; ++i) {
    farm::v1::SubmitJobRequest req;
    farm::v1::JobSpec& spec = *req.mutable_spec();
    spec.set_name("dispatch");
    // The job's "shell" is the stamp program itself: the agent runs `stamp -c x`.
    spec.add_shell(env.bin_dir + "/farm-bench-stamp");
    spec.add_steps()->set_run("x");
    for (const auto& [k, v] : labels) (*spec.mutable_labels())[k] = v;
    farm::v1::SubmitJobResponse resp;
    grpc::ClientContext submit_ctx;
    submit_ctx.set_deadline(DeadlineIn(absl::Seconds(10)));
    const int64_t t0 = WallNs();
    FARM_RETURN_IF_ERROR(common::FromGrpcStatus(farm.jobs()->Submit(&submit_ctx, req, &resp)));
    FARM_ASSIGN_OR_RETURN(farm::v1::Job job, farm.WaitForJobDone(resp.job_id(), absl::Seconds(30),
                                                                 absl::Microseconds(500)));
    if (job.state() != farm::v1::SUCCEEDED) {
      return absl::InternalError(absl::StrCat("dispatch job ", job.id(), " ended ",
                                              farm::v1::JobState_Name(job.state()), ": ",
                                              job.reason()));
    }
    grpc::ClientContext watch_ctx;
    watch_ctx.set_deadline(DeadlineIn(absl::Seconds(10)));
    farm::v1::WatchLogsRequest watch;
    watch.set_job_id(job.id());
    auto reader = farm.jobs()->WatchLogs(&watch_ctx, watch);
    std::string out;
    farm::v1::WatchLogsResponse msg;
    while (reader->Read(&msg)) {
      for (const auto& c : msg.chunks()) out += c.data();
    }
    FARM_RETURN_IF_ERROR(common::FromGrpcStatus(reader->Finish()));
    int64_t running_ns = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(out), &running_ns)) {
      return absl::InternalError(
          absl::StrCat("dispatch job ", job.id(), " printed \"", out, "\", not a clock"));
    }
    samples.total_ms.push_back(static_cast<double>(running_ns - t0) / 1e6);
  }
  return samples;
}

}  // namespace farm::bench
