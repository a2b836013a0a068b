// Measures submit → first step running on an idle agent, against a live farm.
//
//   farm-dispatch-latency HOST:PORT [RUNS] [sh|direct]
//
// Each run submits a one-step job whose step prints the wall clock (ns) as soon as it starts;
// the latency is that time minus the time just before the Submit call. `sh` (the default)
// runs `date +%s%N` through /bin/sh as users' steps do; `direct` makes date itself the step's
// program (the job's shell is ["/bin/date"], its script "+%s%N"), which leaves out the shell's
// own start-up. Submits are
// sequential, each after the previous job ended, so the agent is idle every time. Prints
// p50/p90/p99/max in milliseconds. Client and agent must share a clock (same machine).
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "common/channel.h"
#include "farm/v1/farm.grpc.pb.h"

namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * (v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: farm-dispatch-latency HOST:PORT [RUNS]\n";
    return 64;
  }
  const int runs = argc > 2 ? std::atoi(argv[2]) : 50;
  if (runs < 1) {
    std::cerr << "RUNS must be a positive number\n";
    return 64;
  }
  const std::string mode = argc > 3 ? argv[3] : "sh";
  if (mode != "sh" && mode != "direct") {
    std::cerr << "the mode must be sh or direct\n";
    return 64;
  }
  auto channel = farm::common::MakeChannel(argv[1]);
  if (!channel.ok()) {
    std::cerr << channel.status() << "\n";
    return 1;
  }
  auto jobs = farm::v1::JobService::NewStub(*channel);
  std::vector<double> ms;
  // The same interval cut at the points the farm records (millisecond clock): submit → lease
  // granted (coordinator), lease → step about to be spawned (agent), spawn → shell running.
  std::vector<double> to_lease, to_spawn, to_running;
  for (int i = 0; i < runs; ++i) {
    farm::v1::SubmitJobRequest req;
    req.mutable_spec()->set_name("dispatch-latency");
    if (mode == "sh") {
      req.mutable_spec()->add_steps()->set_run("date +%s%N");
    } else {
      req.mutable_spec()->add_shell("/bin/date");
      req.mutable_spec()->add_steps()->set_run("+%s%N");
    }
    farm::v1::SubmitJobResponse resp;
    grpc::ClientContext submit_ctx;
    submit_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    const int64_t t0 = NowNs();
    grpc::Status s = jobs->Submit(&submit_ctx, req, &resp);
    if (!s.ok()) {
      std::cerr << "submit: " << s.error_message() << "\n";
      return 1;
    }
    grpc::ClientContext watch_ctx;
    watch_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    farm::v1::WatchLogsRequest watch;
    watch.set_job_id(resp.job_id());
    watch.set_follow(true);
    auto reader = jobs->WatchLogs(&watch_ctx, watch);
    std::string out;
    farm::v1::WatchLogsResponse msg;
    farm::v1::JobState state = farm::v1::JOB_STATE_UNSPECIFIED;
    while (reader->Read(&msg)) {
      for (const auto& c : msg.chunks()) out += c.data();
      if (msg.final_state() != farm::v1::JOB_STATE_UNSPECIFIED) state = msg.final_state();
    }
    s = reader->Finish();
    if (!s.ok() || state != farm::v1::SUCCEEDED) {
      std::cerr << "job " << resp.job_id() << " did not succeed: " << s.error_message() << "\n";
      return 1;
    }
    const int64_t started_ns = std::stoll(out);
    ms.push_back(static_cast<double>(started_ns - t0) / 1e6);
    farm::v1::GetJobRequest get;
    get.set_job_id(resp.job_id());
    farm::v1::Job job;
    grpc::ClientContext get_ctx;
    get_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (jobs->Get(&get_ctx, get, &job).ok() && job.attempts_size() > 0 &&
        job.attempts(0).steps_size() > 0) {
      const auto& at = job.attempts(0);
      to_lease.push_back(static_cast<double>(at.started_ms() - job.submitted_ms()));
      to_spawn.push_back(static_cast<double>(at.steps(0).started_ms() - at.started_ms()));
      to_running.push_back(static_cast<double>(started_ns / 1'000'000 - at.steps(0).started_ms()));
    }
  }
  std::printf(
      "dispatch (submit -> step running, %s), %d runs: p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  "
      "max %.2f ms\n",
      mode.c_str(), runs, Percentile(ms, 0.5), Percentile(ms, 0.9), Percentile(ms, 0.99),
      *std::max_element(ms.begin(), ms.end()));
  if (!to_lease.empty()) {
    std::printf(
        "  medians (ms clock): submit -> lease %.0f ms, lease -> spawn %.0f ms, spawn -> running "
        "%.0f ms\n",
        Percentile(to_lease, 0.5), Percentile(to_spawn, 0.5), Percentile(to_running, 0.5));
  }
  return 0;
}
