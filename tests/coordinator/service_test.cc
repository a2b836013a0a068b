// Service tests: the real Coordinator in-process on 127.0.0.1:0 with a temporary RocksDB,
// driven through the generated stubs the way farmctl and agents drive it.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/channel.h"
#include "coordinator/coordinator.h"
#include "farm/v1/farm.grpc.pb.h"
#include "tests/coordinator/in_process_coordinator.h"
#include "tests/testing/status_matchers.h"

namespace farm::coordinator {
namespace {

class ServiceTest : public InProcessCoordinatorTest {
 protected:
  void Configure(CoordinatorOptions& options) override { options.lease_ttl_ms = 5000; }

  std::string Submit(const farm::v1::JobSpec& spec) {
    farm::v1::SubmitJobRequest req;
    *req.mutable_spec() = spec;
    farm::v1::SubmitJobResponse resp;
    grpc::Status s = jobs_->Submit(Ctx().get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.job_id();
  }

  farm::v1::LeaseResponse RegisterAndLease() {
    farm::v1::RegisterRequest reg;
    reg.set_name("agent");
    reg.set_slots(1);
    reg.set_session_id("s");
    farm::v1::RegisterResponse reg_resp;
    EXPECT_TRUE(agents_->Register(Ctx().get(), reg, &reg_resp).ok());
    EXPECT_EQ(reg_resp.lease_ttl_ms(), 5000);
    farm::v1::LeaseRequest lr;
    lr.set_agent("agent");
    lr.set_session_id("s");
    lr.set_wait_ms(5000);
    farm::v1::LeaseResponse lease;
    grpc::Status s = agents_->Lease(Ctx().get(), lr, &lease);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return lease;
  }

  grpc::Status Upload(const farm::v1::LeaseRef& ref, uint32_t step, int64_t offset,
                      const std::string& data, farm::v1::LogUploadResponse* resp) {
    auto ctx = Ctx();
    auto writer = agents_->UploadLogs(ctx.get(), resp);
    farm::v1::LogUploadChunk c;
    *c.mutable_lease() = ref;
    c.set_step_index(step);
    c.set_offset(offset);
    c.set_data(data);
    writer->Write(c);
    writer->WritesDone();
    return writer->Finish();
  }

  static farm::v1::JobSpec TwoSteps() {
    farm::v1::JobSpec spec;
    spec.set_name("two");
    spec.add_steps()->set_run("echo one");
    spec.add_steps()->set_run("echo two");
    return spec;
  }
};

TEST_F(ServiceTest, HealthServiceReportsServing) {
  grpc::GenericStub generic(channel_);
  // The standard health check, through its generated-free wire form: an empty request.
  auto ctx = Ctx();
  std::unique_ptr<grpc::ByteBuffer> resp;
  grpc::Status status;
  // An empty HealthCheckRequest asks about the whole server.
  grpc::Slice empty_slice(std::string{});
  grpc::ByteBuffer req(&empty_slice, 1);
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::ByteBuffer out;
  generic.UnaryCall(ctx.get(), "/grpc.health.v1.Health/Check", grpc::StubOptions(), &req, &out,
                    [&](grpc::Status s) {
                      std::lock_guard<std::mutex> lock(mu);
                      status = s;
                      done = true;
                      cv.notify_all();
                    });
  std::unique_lock<std::mutex> lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return done; }));
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(out.Dump(&slices).ok());
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  // HealthCheckResponse{status: SERVING (1)} is field 1, varint 1.
  EXPECT_EQ(bytes, std::string("\x08\x01", 2));
}

TEST_F(ServiceTest, BadInputGetsTheSpecificCode) {
  farm::v1::Job job;
  farm::v1::GetJobRequest get;
  get.set_job_id("12345");
  EXPECT_EQ(jobs_->Get(Ctx().get(), get, &job).error_code(), grpc::StatusCode::NOT_FOUND);
  get.set_job_id("not-an-id");
  EXPECT_EQ(jobs_->Get(Ctx().get(), get, &job).error_code(), grpc::StatusCode::NOT_FOUND);

  farm::v1::SubmitJobRequest empty;
  farm::v1::SubmitJobResponse resp;
  grpc::Status s = jobs_->Submit(Ctx().get(), empty, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("step"), std::string::npos) << s.error_message();

  // Over the job size limit but under the gRPC message limit: the limit is named.
  farm::v1::SubmitJobRequest big;
  big.mutable_spec()->add_steps()->set_run(std::string(5 << 20, 'x'));
  s = jobs_->Submit(Ctx().get(), big, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("limit"), std::string::npos) << s.error_message();
}

TEST_F(ServiceTest, FollowStreamsOutputLiveAndEndsWithTheJobState) {
  const std::string id = Submit(TwoSteps());
  farm::v1::LeaseResponse lease = RegisterAndLease();
  ASSERT_TRUE(lease.has_job());
  ASSERT_EQ(lease.job().id(), id);

  farm::v1::WatchLogsRequest watch;
  watch.set_job_id(id);
  watch.set_follow(true);
  auto ctx = Ctx(30);
  auto reader = jobs_->WatchLogs(ctx.get(), watch);

  farm::v1::LogUploadResponse up;
  ASSERT_TRUE(Upload(lease.lease(), 0, 0, "one\n", &up).ok());
  EXPECT_EQ(up.committed().at(0), 4);
  // The follower sees the first step's output while the job is still running.
  farm::v1::WatchLogsResponse msg;
  ASSERT_TRUE(reader->Read(&msg));
  ASSERT_EQ(msg.chunks_size(), 1);
  EXPECT_EQ(msg.chunks(0).data(), "one\n");
  EXPECT_EQ(msg.chunks(0).step(), "step-1");

  farm::v1::StepFinishedRequest fin;
  *fin.mutable_lease() = lease.lease();
  fin.set_step_index(0);
  fin.mutable_result()->set_state(farm::v1::STEP_SUCCEEDED);
  farm::v1::Ack ack;
  ASSERT_TRUE(agents_->StepFinished(Ctx().get(), fin, &ack).ok());
  ASSERT_TRUE(Upload(lease.lease(), 1, 0, "two\n", &up).ok());
  ASSERT_TRUE(reader->Read(&msg));
  ASSERT_EQ(msg.chunks_size(), 1);
  EXPECT_EQ(msg.chunks(0).data(), "two\n");
  EXPECT_EQ(msg.chunks(0).step_index(), 1u);

  farm::v1::CompleteJobRequest complete;
  *complete.mutable_lease() = lease.lease();
  complete.set_outcome(farm::v1::ATTEMPT_SUCCEEDED);
  farm::v1::CompleteJobResponse completed;
  ASSERT_TRUE(agents_->CompleteJob(Ctx().get(), complete, &completed).ok());
  ASSERT_TRUE(reader->Read(&msg));
  EXPECT_EQ(msg.final_state(), farm::v1::SUCCEEDED);
  EXPECT_FALSE(reader->Read(&msg));
  EXPECT_TRUE(reader->Finish().ok());

  // A stale epoch is refused and changes nothing.
  farm::v1::LeaseRef stale = lease.lease();
  stale.set_epoch(stale.epoch() + 1);
  grpc::Status s = Upload(stale, 0, 4, "late", &up);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);

  // Without follow, the stored output comes back whole, steps in order.
  watch.set_follow(false);
  auto ctx2 = Ctx();
  auto all = jobs_->WatchLogs(ctx2.get(), watch);
  std::string text;
  while (all->Read(&msg)) {
    for (const auto& c : msg.chunks()) text += c.data();
  }
  EXPECT_TRUE(all->Finish().ok());
  EXPECT_EQ(text, "one\ntwo\n");
}

// A stream's chunks are appended while earlier ones are still being written: all of them must
// be committed, in order, whatever the interleaving (a chunk that overtook its predecessor was
// once refused as a gap, and the agent dropped the rest of the step's output).
TEST_F(ServiceTest, ManyChunksInOneStreamAreAllCommittedInOrder) {
  const std::string id = Submit(TwoSteps());
  farm::v1::LeaseResponse lease = RegisterAndLease();
  ASSERT_TRUE(lease.has_job());
  std::string expected;
  int64_t offset = 0;
  for (int stream = 0; stream < 40; ++stream) {
    // As an agent does (every third of the TTL): 80 MB may take longer than one TTL here.
    farm::v1::HeartbeatRequest beat;
    beat.set_agent("agent");
    beat.set_session_id("s");
    *beat.add_leases() = lease.lease();
    farm::v1::HeartbeatResponse beat_resp;
    ASSERT_TRUE(agents_->Heartbeat(Ctx().get(), beat, &beat_resp).ok());
    ASSERT_TRUE(beat_resp.leases(0).valid());
    auto ctx = Ctx(30);
    farm::v1::LogUploadResponse up;
    auto writer = agents_->UploadLogs(ctx.get(), &up);
    for (int i = 0; i < 1000; ++i) {
      farm::v1::LogUploadChunk c;
      *c.mutable_lease() = lease.lease();
      c.set_step_index(0);
      c.set_offset(offset);
      c.set_data(absl::StrCat("stream ", stream, " chunk ", i, std::string(2000, '.'), "\n"));
      offset += static_cast<int64_t>(c.data().size());
      expected += c.data();
      if (!writer->Write(c)) break;  // the server ended the stream: Finish says why
    }
    writer->WritesDone();
    const grpc::Status status = writer->Finish();
    ASSERT_TRUE(status.ok()) << "stream " << stream << ": " << status.error_message();
    ASSERT_EQ(up.committed().at(0), offset);
  }
  farm::v1::WatchLogsRequest watch;
  watch.set_job_id(id);
  auto ctx = Ctx(30);
  auto reader = jobs_->WatchLogs(ctx.get(), watch);
  std::string got;
  farm::v1::WatchLogsResponse msg;
  while (reader->Read(&msg)) {
    for (const auto& c : msg.chunks()) got += c.data();
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(got, expected);
}

TEST_F(ServiceTest, JobsSurviveARestartOfTheCoordinator) {
  const std::string id = Submit(TwoSteps());
  coordinator_.reset();
  Boot();
  farm::v1::GetJobRequest get;
  get.set_job_id(id);
  farm::v1::Job job;
  ASSERT_TRUE(jobs_->Get(Ctx().get(), get, &job).ok());
  EXPECT_EQ(job.state(), farm::v1::QUEUED);
  farm::v1::LeaseResponse lease = RegisterAndLease();
  ASSERT_TRUE(lease.has_job());
  EXPECT_EQ(lease.job().id(), id);
}

TEST_F(ServiceTest, ShutdownAnswersParkedCallsPromptly) {
  farm::v1::RegisterRequest reg;
  reg.set_name("agent");
  reg.set_slots(1);
  reg.set_session_id("s");
  farm::v1::RegisterResponse reg_resp;
  ASSERT_TRUE(agents_->Register(Ctx().get(), reg, &reg_resp).ok());
  auto admin = farm::v1::AdminService::NewStub(channel_);
  auto last_seen = [&]() -> int64_t {
    farm::v1::ListAgentsResponse agents;
    if (!admin->ListAgents(Ctx().get(), {}, &agents).ok() || agents.agents_size() != 1) return 0;
    return agents.agents(0).last_seen_ms();
  };
  // The Lease below marks the agent seen when it parks; make that visible as a later time
  // than the registration's (the clock has millisecond resolution).
  const int64_t registered = last_seen();
  ASSERT_GT(registered, 0);
  while (absl::ToUnixMillis(absl::Now()) <= registered) {
  }
  grpc::Status parked_status;
  std::thread parked([&] {
    farm::v1::LeaseRequest lr;
    lr.set_agent("agent");
    lr.set_session_id("s");
    lr.set_wait_ms(50'000);
    farm::v1::LeaseResponse lease;
    parked_status = agents_->Lease(Ctx(60).get(), lr, &lease);
  });
  // Wait until the call is parked: the agent shows as seen after its registration.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  bool seen = false;
  while (!seen && std::chrono::steady_clock::now() < deadline) seen = last_seen() > registered;
  ASSERT_TRUE(seen);
  const auto start = std::chrono::steady_clock::now();
  coordinator_->Shutdown();
  parked.join();
  // The parked call gets an answer instead of holding the shutdown for its whole wait.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(parked_status.error_code(), grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace farm::coordinator
