// Service tests of the coordinator's limits on what one caller may hold open: the real
// Coordinator in-process on 127.0.0.1:0 (with TLS and client certificates, so that callers have
// identities; or --insecure, where each connection counts alone). A flooder that opens 1,000
// WatchLogs streams is held at its cap while another caller's calls go on, and the coordinator
// is whole afterwards; parked Lease and Heartbeat calls share a cap of their own.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/certs.h"
#include "common/channel.h"
#include "coordinator/coordinator.h"
#include "coordinator/service/call_caps.h"
#include "farm/v1/farm.grpc.pb.h"
#include "tests/coordinator/test_tls.h"
#include "tests/testing/mini_farm.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace farm::coordinator {
namespace {

using testing::WaitFor;

std::unique_ptr<grpc::ClientContext> Ctx(int seconds = 10) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  return ctx;
}

// How a batch of calls ended. Thread-safe.
class Tally {
 public:
  void Ended(const grpc::Status& status) {
    absl::MutexLock lock(&mu_);
    ++ended_;
    if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      ++refused_;
      if (refusal_.empty()) refusal_ = status.error_message();
    } else {
      other_.push_back(status);
    }
  }
  int ended() const {
    absl::MutexLock lock(&mu_);
    return ended_;
  }
  int refused() const {
    absl::MutexLock lock(&mu_);
    return refused_;
  }
  std::string refusal() const {
    absl::MutexLock lock(&mu_);
    return refusal_;
  }
  // The calls that ended otherwise than RESOURCE_EXHAUSTED.
  std::vector<grpc::Status> other() const {
    absl::MutexLock lock(&mu_);
    return other_;
  }

 private:
  mutable absl::Mutex mu_;
  int ended_ ABSL_GUARDED_BY(mu_) = 0;
  int refused_ ABSL_GUARDED_BY(mu_) = 0;
  std::string refusal_ ABSL_GUARDED_BY(mu_);
  std::vector<grpc::Status> other_ ABSL_GUARDED_BY(mu_);
};

// One WatchLogs --follow stream on the callback API, reading until it ends. Must not be
// destroyed before its end is tallied.
class Watch final : public grpc::ClientReadReactor<farm::v1::WatchLogsResponse> {
 public:
  Watch(farm::v1::JobService::Stub* stub, const std::string& job_id, Tally* tally) : tally_(tally) {
    ctx_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    req_.set_job_id(job_id);
    req_.set_follow(true);
    stub->async()->WatchLogs(&ctx_, &req_, this);
    StartRead(&msg_);
    StartCall();
  }
  void Cancel() { ctx_.TryCancel(); }
  void OnReadDone(bool ok) override {
    if (ok) StartRead(&msg_);
  }
  void OnDone(const grpc::Status& status) override { tally_->Ended(status); }

 private:
  Tally* const tally_;
  grpc::ClientContext ctx_;
  farm::v1::WatchLogsRequest req_;
  farm::v1::WatchLogsResponse msg_;
};

// A parked Lease call on the callback API.
class ParkedLease final {
 public:
  ParkedLease(farm::v1::AgentService::Stub* stub, const std::string& agent, Tally* tally) {
    ctx_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    req_.set_agent(agent);
    req_.set_session_id("s1");
    req_.set_wait_ms(50'000);
    stub->async()->Lease(&ctx_, &req_, &resp_, [tally](grpc::Status s) { tally->Ended(s); });
  }
  void Cancel() { ctx_.TryCancel(); }

 private:
  grpc::ClientContext ctx_;
  farm::v1::LeaseRequest req_;
  farm::v1::LeaseResponse resp_;
};

// Calls of one kind that a test starts, each tallied in tally(). The destructor cancels those
// still open and waits for them to end: a failed assertion must not free a call gRPC still
// runs.
template <typename Call>
class Calls {
 public:
  Calls() = default;
  Calls(const Calls&) = delete;
  Calls& operator=(const Calls&) = delete;
  ~Calls() {
    CancelAll();
    if (!WaitFor([&] { return tally_->ended() == static_cast<int>(calls_.size()); },
                 absl::Seconds(30), "the calls to end")
             .ok()) {
      for (auto& call : calls_) call.release();  // still running: leaked, never freed under it
      tally_.release();
    }
  }
  template <typename Stub>
  void Start(int n, Stub* stub, const std::string& arg) {
    for (int i = 0; i < n; ++i) calls_.push_back(std::make_unique<Call>(stub, arg, tally_.get()));
  }
  void CancelAll() {
    for (auto& call : calls_) call->Cancel();
  }
  const Tally& tally() const { return *tally_; }

 private:
  std::unique_ptr<Tally> tally_ = std::make_unique<Tally>();
  std::vector<std::unique_ptr<Call>> calls_;
};

struct Latencies {
  std::vector<absl::Duration> each;
  int failed = 0;
  std::string first_failure;

  std::string Summary() const {
    std::vector<absl::Duration> sorted = each;
    std::sort(sorted.begin(), sorted.end());
    if (sorted.empty()) return "no calls";
    return absl::StrCat(sorted.size(), " calls, p50 ",
                        absl::FormatDuration(sorted[sorted.size() / 2]), ", max ",
                        absl::FormatDuration(sorted.back()));
  }
};

// What a well-behaved caller does meanwhile: GetJob and SubmitJob calls, one after the other,
// each with a generous deadline (5 s), at least `min_calls` of them and on until `done` (at most
// 5,000).
Latencies OtherCallerWorks(farm::v1::JobService::Stub* jobs, const std::string& job_id,
                           int min_calls, const std::function<bool()>& done) {
  Latencies out;
  for (int i = 0; i < 5'000 && (i < min_calls || !done()); ++i) {
    const absl::Time start = absl::Now();
    grpc::Status s;
    auto ctx = Ctx(5);
    if (i % 10 == 9) {
      farm::v1::SubmitJobRequest submit;
      submit.mutable_spec()->set_name(absl::StrCat("meanwhile-", i));
      submit.mutable_spec()->add_steps()->set_run("true");
      submit.mutable_spec()->mutable_labels()->insert({"pool", "nobody"});
      farm::v1::SubmitJobResponse resp;
      s = jobs->Submit(ctx.get(), submit, &resp);
    } else {
      farm::v1::GetJobRequest get;
      get.set_job_id(job_id);
      farm::v1::Job job;
      s = jobs->Get(ctx.get(), get, &job);
    }
    out.each.push_back(absl::Now() - start);
    if (!s.ok() && out.failed++ == 0) out.first_failure = s.error_message();
  }
  return out;
}

class LimitsTest : public ::testing::Test {
 protected:
  // Starts a coordinator with TLS (client certificates identify callers).
  void StartTls(CoordinatorOptions options) {
    ASSERT_OK_AND_ASSIGN(ca_, ServeTestTls(dir_, options));
    Start(std::move(options));
  }
  void Start(CoordinatorOptions options) {
    options.listen = "127.0.0.1:0";
    options.data_dir = dir_.Join("data");
    coordinator_ = std::make_unique<Coordinator>(options);
    ASSERT_OK(coordinator_->Init());
    ASSERT_OK(coordinator_->Start());
  }

  // A channel of its own (its own connection) as farm://ROLE/NAME.
  std::shared_ptr<grpc::Channel> As(const std::string& role, const std::string& name) {
    absl::StatusOr<common::CertAndKey> cert =
        common::IssueClientCert(ca_.cert_pem, ca_.key_pem, role, name);
    EXPECT_OK(cert);
    common::ClientSecurity s;
    s.ca_pem = ca_.cert_pem;
    s.cert_pem = cert->cert_pem;
    s.key_pem = cert->key_pem;
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
        common::MakeChannel(coordinator_->address(), s);
    EXPECT_OK(channel);
    return *channel;
  }

  // A plaintext channel on a connection of its own (for --insecure).
  std::shared_ptr<grpc::Channel> OwnConnection() {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return grpc::CreateCustomChannel(coordinator_->address(), grpc::InsecureChannelCredentials(),
                                     args);
  }

  // A job no agent takes (it stays QUEUED, so that followers wait on it); its id.
  static std::string QueuedJob(farm::v1::JobService::Stub* jobs) {
    farm::v1::SubmitJobRequest submit;
    submit.mutable_spec()->set_name("followed");
    submit.mutable_spec()->add_steps()->set_run("true");
    submit.mutable_spec()->mutable_labels()->insert({"pool", "nobody"});
    farm::v1::SubmitJobResponse resp;
    const grpc::Status s = jobs->Submit(Ctx().get(), submit, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.job_id();
  }

  testing::TempDir dir_ = *testing::TempDir::Create("farm-limits-test");
  common::CertAndKey ca_;
  std::unique_ptr<Coordinator> coordinator_;
};

// One identity opens 1,000 WatchLogs streams on one connection (which also queues them: the
// connection's stream limit is lower). It holds its cap's worth and the rest are refused, while
// another identity's GetJob and SubmitJob calls all answer well within their deadline. Once the
// flooder's streams close, every counter is back to 0 and a new stream works.
TEST_F(LimitsTest, AFlooderIsHeldAtItsCapWithoutStarvingOthers) {
  constexpr int kFlood = 1000;
  constexpr int kCap = 100;
  CoordinatorOptions options;
  options.max_watch_streams_per_identity = kCap;
  options.max_streams_per_connection = 128;
  ASSERT_NO_FATAL_FAILURE(StartTls(options));
  auto flooder = farm::v1::JobService::NewStub(As("viewer", "flood"));
  auto other = farm::v1::JobService::NewStub(As("submitter", "ci"));
  const std::string job_id = QueuedJob(other.get());

  Calls<Watch> flood;
  Latencies latencies;
  std::thread meanwhile([&] {
    latencies = OtherCallerWorks(other.get(), job_id, 200,
                                 [&] { return flood.tally().ended() >= kFlood - kCap; });
  });
  flood.Start(kFlood, flooder.get(), job_id);
  meanwhile.join();
  std::printf("another caller during the flood: %s\n", latencies.Summary().c_str());
  EXPECT_EQ(latencies.failed, 0) << latencies.first_failure;
  for (absl::Duration d : latencies.each) EXPECT_LT(d, absl::Seconds(5));
  ASSERT_OK(WaitFor([&] { return flood.tally().ended() >= kFlood - kCap; }, absl::Seconds(60),
                    "the streams over the cap to be refused"));

  const Tally& tally = flood.tally();
  EXPECT_EQ(tally.refused(), kFlood - kCap);
  EXPECT_TRUE(tally.other().empty()) << tally.other()[0].error_message();
  EXPECT_NE(tally.refusal().find("--max_watch_streams_per_identity=100"), std::string::npos)
      << tally.refusal();
  EXPECT_NE(tally.refusal().find("viewer flood"), std::string::npos) << tally.refusal();
  EXPECT_EQ(coordinator_->watch_streams().open("viewer flood"), kCap);

  flood.CancelAll();
  ASSERT_OK(WaitFor([&] { return tally.ended() == kFlood; }, absl::Seconds(30),
                    "every flooding stream to end"));
  ASSERT_OK(WaitFor([&] { return coordinator_->watch_streams().total() == 0; }, absl::Seconds(30),
                    "the coordinator to count no open stream"));
  // The flooder is served again, and its cap's worth of streams fits once more.
  farm::v1::GetJobRequest get;
  get.set_job_id(job_id);
  farm::v1::Job job;
  EXPECT_TRUE(flooder->Get(Ctx().get(), get, &job).ok());
  Calls<Watch> again;
  again.Start(kCap, flooder.get(), job_id);
  ASSERT_OK(WaitFor([&] { return coordinator_->watch_streams().open("viewer flood") == kCap; },
                    absl::Seconds(30), "the new streams to open"));
  EXPECT_EQ(again.tally().ended(), 0);
  again.CancelAll();
  ASSERT_OK(WaitFor([&] { return again.tally().ended() == kCap; }, absl::Seconds(30),
                    "the new streams to end"));
  EXPECT_EQ(again.tally().refused(), 0);
}

// Lease and Heartbeat calls that park share one cap per identity; another agent is not held
// back by it, and a refused agent parks again once its calls end.
TEST_F(LimitsTest, ParkedCallsAreCappedPerIdentity) {
  constexpr int kCap = 8;
  CoordinatorOptions options;
  options.max_parked_calls_per_identity = kCap;
  ASSERT_NO_FATAL_FAILURE(StartTls(options));
  auto a1 = farm::v1::AgentService::NewStub(As("agent", "a1"));
  auto a2 = farm::v1::AgentService::NewStub(As("agent", "a2"));
  using Stub = farm::v1::AgentService::Stub;
  for (const auto& [stub, name] : {std::pair<Stub*, const char*>{a1.get(), "a1"},
                                   std::pair<Stub*, const char*>{a2.get(), "a2"}}) {
    farm::v1::RegisterRequest reg;
    reg.set_name(name);
    reg.set_slots(32);
    reg.set_session_id("s1");
    farm::v1::RegisterResponse resp;
    const grpc::Status s = stub->Register(Ctx().get(), reg, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  Calls<ParkedLease> parked;
  parked.Start(3 * kCap, a1.get(), "a1");
  const Tally& tally = parked.tally();
  ASSERT_OK(WaitFor([&] { return tally.ended() >= 2 * kCap; }, absl::Seconds(30),
                    "the leases over the cap to be refused"));
  EXPECT_EQ(tally.refused(), 2 * kCap);
  EXPECT_NE(tally.refusal().find("--max_parked_calls_per_identity=8"), std::string::npos)
      << tally.refusal();
  EXPECT_EQ(coordinator_->parked_calls().open("agent a1"), kCap);
  // A heartbeat counts against the same cap.
  farm::v1::HeartbeatRequest hb;
  hb.set_agent("a1");
  hb.set_session_id("s1");
  hb.set_wait_ms(5'000);
  farm::v1::HeartbeatResponse hb_resp;
  EXPECT_EQ(a1->Heartbeat(Ctx().get(), hb, &hb_resp).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  // Another agent parks as usual.
  Calls<ParkedLease> other;
  other.Start(1, a2.get(), "a2");
  ASSERT_OK(WaitFor([&] { return coordinator_->parked_calls().open("agent a2") == 1; },
                    absl::Seconds(30), "a2's lease to park"));
  other.CancelAll();
  parked.CancelAll();
  ASSERT_OK(WaitFor([&] { return tally.ended() == 3 * kCap && other.tally().ended() == 1; },
                    absl::Seconds(30), "every lease to end"));
  ASSERT_OK(WaitFor([&] { return coordinator_->parked_calls().total() == 0; }, absl::Seconds(30),
                    "the coordinator to count no parked call"));
  hb.set_wait_ms(0);
  const grpc::Status s = a1->Heartbeat(Ctx().get(), hb, &hb_resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
}

// Without authentication (--insecure) every caller is the same admin: the cap then counts
// each client connection apart, so that one test or bench process does not starve another.
TEST_F(LimitsTest, WithoutAuthenticationEachConnectionHasItsOwnCap) {
  constexpr int kCap = 3;
  CoordinatorOptions options;
  options.insecure = true;
  options.max_watch_streams_per_identity = kCap;
  ASSERT_NO_FATAL_FAILURE(Start(options));
  auto first = farm::v1::JobService::NewStub(OwnConnection());
  auto second = farm::v1::JobService::NewStub(OwnConnection());
  const std::string job_id = QueuedJob(first.get());
  Calls<Watch> watches;
  watches.Start(kCap + 1, first.get(), job_id);
  const Tally& tally = watches.tally();
  ASSERT_OK(WaitFor([&] { return tally.refused() == 1; }, absl::Seconds(30),
                    "the stream over the cap to be refused"));
  watches.Start(kCap, second.get(), job_id);
  ASSERT_OK(WaitFor([&] { return coordinator_->watch_streams().total() == 2 * kCap; },
                    absl::Seconds(30), "both connections' streams to open"));
  EXPECT_EQ(tally.ended(), 1);
  EXPECT_NE(tally.refusal().find("connection ipv4:127.0.0.1:"), std::string::npos)
      << tally.refusal();
  watches.CancelAll();
  ASSERT_OK(WaitFor([&] { return tally.ended() == 2 * kCap + 1; }, absl::Seconds(30),
                    "every stream to end"));
  ASSERT_OK(WaitFor([&] { return coordinator_->watch_streams().total() == 0; }, absl::Seconds(30),
                    "the coordinator to count no open stream"));
}

// Keepalive enforcement: a client that pings far more often than the coordinator permits is
// cut off (GOAWAY "too_many_pings"), while one that pings at the farm's clients' pace keeps its
// stream.
TEST_F(LimitsTest, AClientThatPingsTooOftenIsCutOff) {
  CoordinatorOptions options;
  options.insecure = true;
  ASSERT_NO_FATAL_FAILURE(Start(options));
  auto well_behaved = farm::v1::JobService::NewStub(OwnConnection());
  const std::string job_id = QueuedJob(well_behaved.get());
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 100);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  auto pinger = farm::v1::JobService::NewStub(
      grpc::CreateCustomChannel(coordinator_->address(), grpc::InsecureChannelCredentials(), args));
  Calls<Watch> patient;
  patient.Start(1, well_behaved.get(), job_id);
  Calls<Watch> impatient;
  impatient.Start(1, pinger.get(), job_id);
  ASSERT_OK(WaitFor([&] { return impatient.tally().ended() == 1; }, absl::Seconds(30),
                    "the pinging client to be cut off"));
  ASSERT_EQ(impatient.tally().other().size(), 1u);
  EXPECT_EQ(impatient.tally().other()[0].error_code(), grpc::StatusCode::UNAVAILABLE)
      << impatient.tally().other()[0].error_message();
  std::printf("the pinging client's stream ended: %s\n",
              impatient.tally().other()[0].error_message().c_str());
  ASSERT_OK(WaitFor([&] { return coordinator_->watch_streams().total() == 1; }, absl::Seconds(30),
                    "the cut stream to leave the count"));
  EXPECT_EQ(patient.tally().ended(), 0);
}

}  // namespace
}  // namespace farm::coordinator
