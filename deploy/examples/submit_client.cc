// farm-example-client: submitting a job from your own code.
//
// This program talks to the coordinator through the stubs generated from
// proto/farm/v1/farm.proto, with common::FarmClient (common/farm_client.h) around them for the
// one call worth retrying:
//   1. JobService.Submit   a job built in code, retried while the coordinator is unreachable
//                          (or restarting) with the same request id, so never submitted twice,
//   2. JobService.WatchLogs with follow=true: the output so far, then live output until the job
//      ends,
//   3. JobService.Get      the final state.
// A client in another language makes the same three calls on its own stubs, and retries Submit
// the same way: on UNAVAILABLE (and timeouts), with backoff, keeping the request id.
//
// Usage: farm-example-client HOST:PORT [--insecure]
// Over TLS it verifies the coordinator with the CA in $FARM_TLS_CA and identifies with the
// token in $FARM_TOKEN (role submitter or admin); --insecure talks to a development coordinator
// (started with --insecure) in plaintext.
// Exit code: 0 if the job succeeded, 1 if it did not (or a call failed), 2 on bad usage.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <string>

#include "common/farm_client.h"
#include "farm/v1/farm.grpc.pb.h"

namespace {

// Every call gets a deadline, so that a lost coordinator fails the call instead of hanging it.
void SetTimeout(grpc::ClientContext& context, std::chrono::seconds timeout) {
  context.set_deadline(std::chrono::system_clock::now() + timeout);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3 || (argc == 3 && std::string(argv[2]) != "--insecure")) {
    std::cerr << "usage: " << argv[0] << " HOST:PORT [--insecure]\n";
    return 2;
  }
  farm::common::ClientSecurityFlags flags;
  flags.insecure = argc == 3;
  auto security = farm::common::LoadClientSecurity(flags);  // reads FARM_TLS_CA, FARM_TOKEN
  if (!security.ok()) {
    std::cerr << security.status().message() << "\n";
    return 2;
  }
  // One retry policy for the calls that retry: 10 s per try, 20 s in all (the defaults).
  auto client = farm::common::FarmClient::Create(argv[1], *security);
  if (!client.ok()) {
    std::cerr << client.status().message() << "\n";
    return 2;
  }
  farm::v1::JobService::Stub& jobs = (*client)->jobs();

  // 1. Describe the job: the same structure as a job file (see deploy/examples/hello.yaml).
  farm::v1::SubmitJobRequest submit;
  submit.set_request_id(farm::common::FarmClient::NewRequestId());  // makes retries safe
  farm::v1::JobSpec& spec = *submit.mutable_spec();
  spec.set_name("example-from-code");
  (*spec.mutable_env())["GREETING"] = "hello";
  farm::v1::StepSpec& greet = *spec.add_steps();
  greet.set_name("greet");
  greet.set_run("echo \"$GREETING from $FARM_JOB_ID\"");
  farm::v1::StepSpec& count = *spec.add_steps();
  count.set_name("count");
  count.set_run("for i in 1 2 3; do echo \"tick $i\"; done");
  count.set_timeout_ms(60'000);

  auto submitted = (*client)->Submit(submit);
  if (!submitted.ok()) {
    std::cerr << "submit failed: " << submitted.status().message() << "\n";
    return 1;
  }
  const std::string job_id = submitted->job_id();
  std::cout << "submitted job " << job_id << std::endl;

  // 2. Follow the logs. Each chunk says which step it belongs to; print a header when the step
  //    changes, then the bytes as they are.
  farm::v1::WatchLogsRequest watch;
  watch.set_job_id(job_id);
  watch.set_follow(true);
  grpc::ClientContext watch_context;
  SetTimeout(watch_context, std::chrono::seconds(600));
  std::unique_ptr<grpc::ClientReader<farm::v1::WatchLogsResponse>> stream =
      jobs.WatchLogs(&watch_context, watch);
  farm::v1::WatchLogsResponse response;
  std::string current_step;
  while (stream->Read(&response)) {
    for (const farm::v1::LogChunk& chunk : response.chunks()) {
      if (chunk.step() != current_step) {
        current_step = chunk.step();
        std::cout << "--- step " << current_step << " ---\n";
      }
      std::cout << chunk.data() << std::flush;
    }
  }
  grpc::Status status = stream->Finish();
  if (!status.ok()) {
    std::cerr << "following the logs failed: " << status.error_message() << "\n";
    return 1;
  }

  // 3. The outcome: the stream ended because the job did; Get says how.
  farm::v1::GetJobRequest get;
  get.set_job_id(job_id);
  farm::v1::Job job;
  grpc::ClientContext get_context;
  SetTimeout(get_context, std::chrono::seconds(10));
  status = jobs.Get(&get_context, get, &job);
  if (!status.ok()) {
    std::cerr << "get failed: " << status.error_message() << "\n";
    return 1;
  }
  std::cout << "job " << job_id << " " << farm::v1::JobState_Name(job.state());
  if (!job.reason().empty()) std::cout << " (" << job.reason() << ")";
  std::cout << std::endl;
  return job.state() == farm::v1::SUCCEEDED ? 0 : 1;
}
