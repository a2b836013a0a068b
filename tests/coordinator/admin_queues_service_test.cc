// AdminService's queue RPCs through gRPC: the real Coordinator in-process on 127.0.0.1:0.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>

#include "common/channel.h"
#include "coordinator/coordinator.h"
#include "farm/v1/farm.grpc.pb.h"
#include "tests/coordinator/in_process_coordinator.h"
#include "tests/testing/status_matchers.h"

namespace farm::coordinator {
namespace {

class AdminQueuesServiceTest : public InProcessCoordinatorTest {
 protected:
  std::string Submit(const std::string& os) {
    farm::v1::SubmitJobRequest req;
    req.mutable_spec()->set_name("j");
    (*req.mutable_spec()->mutable_labels())["os"] = os;
    req.mutable_spec()->add_steps()->set_run("true");
    farm::v1::SubmitJobResponse resp;
    EXPECT_TRUE(jobs_->Submit(Ctx().get(), req, &resp).ok());
    return resp.job_id();
  }
};

TEST_F(AdminQueuesServiceTest, ResumeHandsTheHeldJobToAParkedLease) {
  farm::v1::PauseQueueRequest pause;
  (*pause.mutable_labels())["os"] = "linux";
  farm::v1::PauseQueueResponse paused;
  ASSERT_TRUE(admin_->PauseQueue(Ctx().get(), pause, &paused).ok());
  const std::string id = Submit("linux");

  farm::v1::RegisterRequest reg;
  reg.set_name("a1");
  reg.set_slots(1);
  reg.set_session_id("s");
  (*reg.mutable_labels())["os"] = "linux";
  farm::v1::RegisterResponse registered;
  ASSERT_TRUE(agents_->Register(Ctx().get(), reg, &registered).ok());

  farm::v1::ListQueuesResponse queues;
  ASSERT_TRUE(admin_->ListQueues(Ctx().get(), farm::v1::ListQueuesRequest(), &queues).ok());
  ASSERT_EQ(queues.queues_size(), 1);
  EXPECT_EQ(queues.queues(0).depth(), 1);
  EXPECT_TRUE(queues.queues(0).paused());
  EXPECT_EQ(queues.queues(0).agents(), 1);
  EXPECT_GT(queues.queues(0).oldest_submitted_ms(), 0);

  // A Lease that waits up to 30 s; the resume must answer it long before.
  farm::v1::LeaseResponse lease;
  grpc::Status lease_status;
  std::thread leasing([&] {
    farm::v1::LeaseRequest lr;
    lr.set_agent("a1");
    lr.set_session_id("s");
    lr.set_wait_ms(30'000);
    lease_status = agents_->Lease(Ctx(40).get(), lr, &lease);
  });
  farm::v1::ResumeQueueRequest resume;
  *resume.mutable_labels() = pause.labels();
  farm::v1::ResumeQueueResponse resumed;
  ASSERT_TRUE(admin_->ResumeQueue(Ctx().get(), resume, &resumed).ok());
  leasing.join();
  ASSERT_TRUE(lease_status.ok()) << lease_status.error_message();
  EXPECT_EQ(lease.job().id(), id);
}

TEST_F(AdminQueuesServiceTest, BadInputGetsTheSpecificCode) {
  farm::v1::PauseQueueRequest pause;  // no labels
  farm::v1::PauseQueueResponse paused;
  EXPECT_EQ(admin_->PauseQueue(Ctx().get(), pause, &paused).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  (*pause.mutable_labels())["os\x01"] = "linux";  // not clean text
  EXPECT_EQ(admin_->PauseQueue(Ctx().get(), pause, &paused).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  farm::v1::ResumeQueueRequest resume;
  (*resume.mutable_labels())["os"] = "linux";
  farm::v1::ResumeQueueResponse resumed;
  EXPECT_EQ(admin_->ResumeQueue(Ctx().get(), resume, &resumed).error_code(),
            grpc::StatusCode::NOT_FOUND);

  const std::string id = Submit("linux");
  farm::v1::ReprioritizeJobRequest re;
  re.set_job_id("12345");
  re.set_priority(1);
  farm::v1::Job job;
  EXPECT_EQ(admin_->ReprioritizeJob(Ctx().get(), re, &job).error_code(),
            grpc::StatusCode::NOT_FOUND);
  re.set_job_id(id);
  re.set_priority(-1001);
  EXPECT_EQ(admin_->ReprioritizeJob(Ctx().get(), re, &job).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  re.set_priority(3);
  ASSERT_TRUE(admin_->ReprioritizeJob(Ctx().get(), re, &job).ok());
  EXPECT_EQ(job.spec().priority(), 3);

  farm::v1::RetryRequest retry;
  retry.set_id(id);
  farm::v1::RetryResponse retried;
  grpc::Status s = admin_->Retry(Ctx().get(), retry, &retried);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(s.error_message(), "job " + id + " is QUEUED; only finished jobs can be retried");
  retry.set_id("nope");
  EXPECT_EQ(admin_->Retry(Ctx().get(), retry, &retried).error_code(), grpc::StatusCode::NOT_FOUND);

  farm::v1::BulkCancelRequest bulk;
  (*bulk.mutable_labels())["os"] = "linux";
  bulk.set_state(farm::v1::RUNNING);
  farm::v1::BulkCancelResponse cancelled;
  EXPECT_EQ(admin_->BulkCancel(Ctx().get(), bulk, &cancelled).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  bulk.set_state(farm::v1::QUEUED);
  ASSERT_TRUE(admin_->BulkCancel(Ctx().get(), bulk, &cancelled).ok());
  EXPECT_EQ(cancelled.cancelled(), 1);
}

}  // namespace
}  // namespace farm::coordinator
