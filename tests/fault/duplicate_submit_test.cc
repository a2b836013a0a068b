// Fault scenario 7, duplicate submits: 1,000 submits whose replies are dropped and retried make
// 0 duplicate jobs.
//
// The real coordinator runs in-process (127.0.0.1:0, a temporary RocksDB) with a server
// interceptor that drops Submit replies: after the handler has created the job (durably: the
// scheduler answers after the synced write), it turns a random half of the OK replies into
// UNAVAILABLE without the response message, so the client cannot tell "never arrived" from "done,
// but the answer was lost" and must retry. At most kMaxDropsPerRequest replies in a row are
// dropped for one request id, so that every submit is acknowledged within a few tries (and the
// test cannot hang or flake on a long unlucky streak).
//
// Clients: kStubSubmits submits through the farm.v1 stub, each with its own request id, retried
// with the same id until acknowledged; and kFarmctlSubmits runs of the real `farmctl submit`
// ($FARM_BIN_DIR), whose own retry is then what is under test. Every submit carries a job name
// of its own, so the judge counts jobs per submit as a user would see them, whatever request ids
// went over the wire. Prints one line (and the first findings, if any):
//
//   duplicate_submit: submitted=1030 acked=1030 replies_dropped=N jobs=1030 duplicates=0 lost=0
//       unexpected=0 (farmctl: submitted=30 replies_dropped=M)
#include <google/protobuf/util/json_util.h>
#include <grpcpp/client_context.h>
#include <grpcpp/support/server_interceptor.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/backoff.h"
#include "common/channel.h"
#include "coordinator/coordinator.h"
#include "farm/v1/farm.grpc.pb.h"
#include "tests/fault/checker.h"
#include "tests/testing/mini_farm.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace farm::fault {
namespace {

using grpc::experimental::InterceptionHookPoints;

constexpr int kStubSubmits = 1000;
constexpr int kFarmctlSubmits = 30;
constexpr int kClientThreads = 8;
constexpr int kMaxDropsPerRequest = 3;
// A stub submit gives up after this many tries (the dropper lets the 4th through).
constexpr int kMaxTries = 20;
constexpr char kSubmitMethod[] = "/farm.v1.JobService/Submit";
constexpr char kStubRequestPrefix[] = "dup-stub-";

// The interceptor factory that drops Submit replies (see the file comment), and the record of
// what it dropped. Thread-safe: the server calls it from its threads.
class ReplyDropper final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    if (absl::string_view(info->method()) != kSubmitMethod) return nullptr;
    return new Interceptor(this);
  }

  // Decides the fate of an OK reply to a Submit with `request_id`: true to drop it.
  bool DropReply(const std::string& request_id) {
    absl::MutexLock lock(&mu_);
    int& streak = streaks_[request_id];
    const bool drop = streak < kMaxDropsPerRequest && std::bernoulli_distribution(0.5)(rng_);
    streak = drop ? streak + 1 : 0;
    ++(drop ? dropped_ : passed_)[request_id];
    return drop;
  }

  // Replies dropped for request ids that do / do not start with `prefix`.
  int64_t Dropped(absl::string_view prefix, bool with_prefix) const {
    absl::MutexLock lock(&mu_);
    return Count(dropped_, prefix, with_prefix);
  }
  // Submits that reached the handler without a request id (the interceptor could not read it).
  int64_t WithoutRequestId() const {
    absl::MutexLock lock(&mu_);
    auto it = passed_.find("");
    auto jt = dropped_.find("");
    return (it == passed_.end() ? 0 : it->second) + (jt == dropped_.end() ? 0 : jt->second);
  }

 private:
  // One per Submit call: reads the request id when the request arrives, and rewrites the reply
  // (status and message, which the server sends in one batch) when it is to be dropped.
  class Interceptor final : public grpc::experimental::Interceptor {
   public:
    explicit Interceptor(ReplyDropper* dropper) : dropper_(dropper) {}

    void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
      if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE)) {
        const auto* request =
            static_cast<const farm::v1::SubmitJobRequest*>(methods->GetRecvMessage());
        if (request != nullptr) request_id_ = request->request_id();
      }
      if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS) &&
          methods->GetSendStatus().ok() && dropper_->DropReply(request_id_)) {
        // The job exists now; the client is told UNAVAILABLE and is not sent its id.
        methods->ModifySendStatus(
            grpc::Status(grpc::StatusCode::UNAVAILABLE, "reply dropped by duplicate_submit_test"));
        if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE)) {
          methods->ModifySendMessage(&empty_reply_);
        }
      }
      methods->Proceed();
    }

   private:
    ReplyDropper* const dropper_;
    std::string request_id_;
    const farm::v1::SubmitJobResponse empty_reply_;  // outlives the batch that sends it
  };

  static int64_t Count(const absl::flat_hash_map<std::string, int64_t>& counts,
                       absl::string_view prefix, bool with_prefix) {
    int64_t n = 0;
    for (const auto& [id, count] : counts) {
      if (!id.empty() && absl::StartsWith(id, prefix) == with_prefix) n += count;
    }
    return n;
  }

  mutable absl::Mutex mu_;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_) = std::mt19937_64(std::random_device()());
  absl::flat_hash_map<std::string, int> streaks_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int64_t> dropped_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int64_t> passed_ ABSL_GUARDED_BY(mu_);
};

// One logical submit and what its client saw.
struct Submission {
  std::string name;           // the job's name: one per submit
  std::string job_id;         // acknowledged id; empty when never acknowledged
  std::string error;          // the last error when never acknowledged
  int tries = 0;              // Submit calls made (stub clients)
  bool saw_existing = false;  // the acknowledgement said the request id matched an earlier job
};

farm::v1::JobSpec SpecNamed(const std::string& name) {
  farm::v1::JobSpec spec;
  spec.set_name(name);
  spec.add_steps()->set_run("true");
  return spec;
}

// Submits `submission` through `stub` under `request_id`, retrying UNAVAILABLE and
// DEADLINE_EXCEEDED with the same id (as a careful client does) up to kMaxTries times.
// `leaked_replies` counts failed calls that nevertheless delivered a job id.
void SubmitWithRetries(farm::v1::JobService::Stub& stub, const std::string& request_id,
                       Submission& submission, std::atomic<int64_t>& leaked_replies) {
  farm::v1::SubmitJobRequest request;
  *request.mutable_spec() = SpecNamed(submission.name);
  request.set_request_id(request_id);
  common::Backoff backoff(/*initial_ms=*/1, /*max_ms=*/20);
  while (submission.tries < kMaxTries) {
    ++submission.tries;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    farm::v1::SubmitJobResponse response;
    const grpc::Status status = stub.Submit(&context, request, &response);
    if (status.ok()) {
      submission.job_id = response.job_id();
      submission.saw_existing = response.existing();
      return;
    }
    if (!response.job_id().empty()) ++leaked_replies;
    submission.error = absl::StrCat(status.error_code(), ": ", status.error_message());
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE &&
        status.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
      return;
    }
    absl::SleepFor(absl::Milliseconds(backoff.NextDelayMs()));
  }
}

// What the judge found.
struct Verdict {
  int64_t submitted = 0;
  int64_t acked = 0;
  int64_t jobs = 0;
  int64_t duplicates = 0;  // jobs beyond the first for one submit, or for one request id
  int64_t lost = 0;        // acknowledged submits whose job does not exist (or is another's)
  int64_t unexpected = 0;  // jobs that no submit of this test asked for
  std::vector<std::string> problems;  // the first few findings

  void Note(std::string problem) {
    if (problems.size() < 20) problems.push_back(std::move(problem));
  }
};

Verdict Judge(const std::vector<Submission>& submissions, const std::vector<farm::v1::Job>& jobs) {
  Verdict verdict;
  verdict.submitted = static_cast<int64_t>(submissions.size());
  verdict.jobs = static_cast<int64_t>(jobs.size());
  std::map<std::string, std::vector<const farm::v1::Job*>> by_name;
  std::map<std::string, std::vector<const farm::v1::Job*>> by_request_id;
  for (const farm::v1::Job& job : jobs) {
    by_name[job.spec().name()].push_back(&job);
    by_request_id[job.request_id()].push_back(&job);
  }
  for (const Submission& submission : submissions) {
    const auto it = by_name.find(submission.name);
    const size_t count = it == by_name.end() ? 0 : it->second.size();
    if (count > 1) {
      verdict.duplicates += static_cast<int64_t>(count) - 1;
      std::vector<std::string> ids;
      for (const farm::v1::Job* job : it->second) {
        ids.push_back(absl::StrCat(job->id(), " (request ", job->request_id(), ")"));
      }
      verdict.Note(absl::StrCat("duplicate: submit ", submission.name, " made ", count,
                                " jobs: ", absl::StrJoin(ids, ", ")));
    }
    if (submission.job_id.empty()) continue;
    ++verdict.acked;
    bool found = false;
    for (size_t i = 0; i < count; ++i) found |= it->second[i]->id() == submission.job_id;
    if (!found) {
      ++verdict.lost;
      verdict.Note(absl::StrCat("lost: submit ", submission.name, " was acknowledged as job ",
                                submission.job_id, ", which is not its job"));
    }
  }
  std::set<std::string> names;
  for (const Submission& submission : submissions) names.insert(submission.name);
  for (const farm::v1::Job& job : jobs) {
    if (names.count(job.spec().name()) == 0) {
      ++verdict.unexpected;
      verdict.Note(absl::StrCat("unexpected: job ", job.id(), " named \"", job.spec().name(),
                                "\" was never submitted"));
    }
  }
  // The coordinator's own contract, independent of the names: one job per request id.
  for (const auto& [request_id, same] : by_request_id) {
    if (same.size() > 1) {
      verdict.duplicates += static_cast<int64_t>(same.size()) - 1;
      verdict.Note(
          absl::StrCat("duplicate: request id ", request_id, " has ", same.size(), " jobs"));
    }
  }
  return verdict;
}

TEST(DuplicateSubmitTest, DroppedRepliesRetriedMakeNoDuplicateJobs) {
  // TLS on: the farm's certificates serve the in-process coordinator too.
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<testing::MiniFarm> farm,
                       testing::MiniFarm::Create({.tls = true}));
  ASSERT_OK_AND_ASSIGN(testing::TempDir data, testing::TempDir::Create("duplicate-submit"));
  auto dropper = std::make_shared<ReplyDropper>();
  coordinator::CoordinatorOptions options;
  options.listen = "127.0.0.1:0";
  options.tls_cert_file = farm->Path("certs/coordinator.crt");
  options.tls_key_file = farm->Path("certs/coordinator.key");
  options.tls_client_ca_file = farm->Path("certs/ca.crt");
  options.data_dir = data.path();
  options.server_interceptors.push_back(dropper);
  coordinator::Coordinator coordinator(options);
  ASSERT_OK(coordinator.Init());
  ASSERT_OK(coordinator.Start());
  const std::string address = coordinator.address();

  // farmctl first, in the background (started from this thread: see subprocess.h).
  std::vector<Submission> farmctl_submissions(kFarmctlSubmits);
  std::vector<testing::MiniFarm::Background> farmctl_runs;
  for (int i = 0; i < kFarmctlSubmits; ++i) {
    farmctl_submissions[static_cast<size_t>(i)].name = absl::StrCat("farmctl-", i);
    ASSERT_OK_AND_ASSIGN(std::string path, farm->WriteJobFile(absl::StrCat(
                                               "name: farmctl-", i, "\nsteps: [{run: 'true'}]\n")));
    ASSERT_OK_AND_ASSIGN(testing::MiniFarm::Background run,
                         farm->StartFarmctl({absl::StrCat("--coordinator=", address), "submit",
                                             path, "--output=json"}));
    farmctl_runs.push_back(std::move(run));
  }

  // The stub clients.
  ASSERT_OK_AND_ASSIGN(std::shared_ptr<grpc::Channel> channel,
                       common::MakeChannel(address, farm->admin_security()));
  std::unique_ptr<farm::v1::JobService::Stub> stub = farm::v1::JobService::NewStub(channel);
  std::vector<Submission> stub_submissions(kStubSubmits);
  std::atomic<int64_t> leaked_replies{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < kClientThreads; ++t) {
    clients.emplace_back([&, t] {
      for (int i = t; i < kStubSubmits; i += kClientThreads) {
        Submission& submission = stub_submissions[static_cast<size_t>(i)];
        submission.name = absl::StrCat("stub-", i);
        SubmitWithRetries(*stub, absl::StrCat(kStubRequestPrefix, i), submission, leaked_replies);
      }
    });
  }
  for (std::thread& client : clients) client.join();

  int farmctl_failures = 0;
  for (int i = 0; i < kFarmctlSubmits; ++i) {
    testing::MiniFarm::Background& run = farmctl_runs[static_cast<size_t>(i)];
    Submission& submission = farmctl_submissions[static_cast<size_t>(i)];
    absl::StatusOr<int> code = run.process->Wait(absl::Seconds(60));
    const std::string out = testing::ReadFile(run.stdout_path).value_or("");
    const std::string err = testing::ReadFile(run.stderr_path).value_or("");
    farm::v1::SubmitJobResponse response;
    if (code.ok() && *code == 0 &&
        google::protobuf::util::JsonStringToMessage(out, &response).ok()) {
      submission.job_id = response.job_id();
      submission.saw_existing = response.existing();
    } else {
      ++farmctl_failures;
      ADD_FAILURE() << "farmctl submit " << submission.name << ": "
                    << (code.ok() ? absl::StrCat("exit ", *code) : code.status().ToString())
                    << "\nstdout: " << out << "\nstderr: " << err;
    }
  }

  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Checker> reader,
                       Checker::Create(address, {.security = farm->admin_security()}));
  ASSERT_OK_AND_ASSIGN(std::vector<farm::v1::Job> jobs, reader->ReadAllJobs(absl::Seconds(30)));

  std::vector<Submission> all = stub_submissions;
  all.insert(all.end(), farmctl_submissions.begin(), farmctl_submissions.end());
  const Verdict verdict = Judge(all, jobs);
  const int64_t stub_dropped = dropper->Dropped(kStubRequestPrefix, /*with_prefix=*/true);
  const int64_t farmctl_dropped = dropper->Dropped(kStubRequestPrefix, /*with_prefix=*/false);
  int64_t existing = 0;
  int64_t stub_unacked = 0;
  for (const Submission& submission : all) existing += submission.saw_existing;
  for (const Submission& submission : stub_submissions) {
    if (submission.job_id.empty()) {
      ++stub_unacked;
      ADD_FAILURE() << "stub submit " << submission.name << " never acknowledged after "
                    << submission.tries << " tries: " << submission.error;
    }
  }
  std::cout << "duplicate_submit: submitted=" << verdict.submitted << " acked=" << verdict.acked
            << " replies_dropped=" << stub_dropped + farmctl_dropped << " jobs=" << verdict.jobs
            << " duplicates=" << verdict.duplicates << " lost=" << verdict.lost
            << " unexpected=" << verdict.unexpected << " (farmctl: submitted=" << kFarmctlSubmits
            << " replies_dropped=" << farmctl_dropped << ")" << std::endl;

  for (const std::string& problem : verdict.problems) std::cout << "  " << problem << "\n";
  EXPECT_EQ(verdict.duplicates, 0);
  EXPECT_EQ(verdict.lost, 0);
  EXPECT_EQ(verdict.unexpected, 0);
  EXPECT_EQ(verdict.jobs, verdict.submitted);
  EXPECT_EQ(verdict.acked, verdict.submitted)
      << "stub: " << stub_unacked << " unacknowledged; farmctl: " << farmctl_failures;
  // The fault really happened, to both kinds of client, and the retries met the earlier jobs.
  EXPECT_EQ(dropper->WithoutRequestId(), 0) << "the interceptor could not read request ids";
  EXPECT_GT(stub_dropped, kStubSubmits / 4);
  EXPECT_GT(farmctl_dropped, 0);
  EXPECT_GT(existing, 0) << "no retry was answered with the job of its first try";
  // A dropped reply carries no job id (the client learns nothing from it).
  EXPECT_EQ(leaked_replies.load(), 0);
}

}  // namespace
}  // namespace farm::fault
