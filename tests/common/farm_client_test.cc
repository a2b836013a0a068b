// common::FarmClient's retry policy against a scripted JobService on 127.0.0.1:0: which codes it
// retries, that a retry resends the same request, the budget, and one-try calls.
#include "common/farm_client.h"

#include <gmock/gmock.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <gtest/gtest.h>

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "tests/testing/status_matchers.h"

namespace farm::common {
namespace {

// Answers Submit and Get with the scripted failures first, then OK; records every request.
class ScriptedJobs final : public farm::v1::JobService::Service {
 public:
  void Fail(std::vector<grpc::StatusCode> codes) {
    absl::MutexLock lock(&mu_);
    failures_.assign(codes.begin(), codes.end());
  }
  std::vector<std::string> request_ids() const {
    absl::MutexLock lock(&mu_);
    return request_ids_;
  }
  int gets() const {
    absl::MutexLock lock(&mu_);
    return gets_;
  }

  grpc::Status Submit(grpc::ServerContext*, const farm::v1::SubmitJobRequest* request,
                      farm::v1::SubmitJobResponse* response) override {
    absl::MutexLock lock(&mu_);
    request_ids_.push_back(request->request_id());
    if (grpc::Status failed = NextLocked(); !failed.ok()) return failed;
    response->set_job_id("1");
    return grpc::Status::OK;
  }
  grpc::Status Get(grpc::ServerContext*, const farm::v1::GetJobRequest* request,
                   farm::v1::Job* job) override {
    absl::MutexLock lock(&mu_);
    ++gets_;
    if (grpc::Status failed = NextLocked(); !failed.ok()) return failed;
    job->set_id(request->job_id());
    return grpc::Status::OK;
  }

 private:
  grpc::Status NextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (failures_.empty()) return grpc::Status::OK;
    const grpc::StatusCode code = failures_.front();
    failures_.pop_front();
    return grpc::Status(code, "scripted");
  }

  mutable absl::Mutex mu_;
  std::deque<grpc::StatusCode> failures_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> request_ids_ ABSL_GUARDED_BY(mu_);
  int gets_ ABSL_GUARDED_BY(mu_) = 0;
};

class FarmClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&jobs_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    address_ = absl::StrCat("127.0.0.1:", port);
  }
  void TearDown() override { server_->Shutdown(); }

  std::unique_ptr<FarmClient> Client(RetryPolicy policy) {
    policy.initial_backoff_ms = 1;
    policy.max_backoff_ms = 5;
    absl::StatusOr<std::unique_ptr<FarmClient>> client = FarmClient::Create(address_, policy);
    EXPECT_TRUE(client.ok()) << client.status();
    return *std::move(client);
  }

  static farm::v1::SubmitJobRequest Request() {
    farm::v1::SubmitJobRequest request;
    request.set_request_id(FarmClient::NewRequestId());
    return request;
  }

  ScriptedJobs jobs_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

TEST_F(FarmClientTest, RetriesUnavailableAndTimeoutsWithTheSameRequest) {
  jobs_.Fail({grpc::StatusCode::UNAVAILABLE, grpc::StatusCode::DEADLINE_EXCEEDED,
              grpc::StatusCode::UNAVAILABLE});
  std::vector<absl::StatusCode> retried;
  RetryPolicy policy;
  policy.on_retry = [&](const absl::Status& s) { retried.push_back(s.code()); };
  CallInfo info;
  const farm::v1::SubmitJobRequest request = Request();
  ASSERT_OK_AND_ASSIGN(farm::v1::SubmitJobResponse response,
                       Client(policy)->Submit(request, &info));
  EXPECT_EQ(response.job_id(), "1");
  EXPECT_EQ(info.tries, 4);
  EXPECT_EQ(retried, (std::vector<absl::StatusCode>{absl::StatusCode::kUnavailable,
                                                    absl::StatusCode::kDeadlineExceeded,
                                                    absl::StatusCode::kUnavailable}));
  EXPECT_EQ(jobs_.request_ids(), std::vector<std::string>(4, request.request_id()));
}

TEST_F(FarmClientTest, OtherCodesReturnAtOnce) {
  jobs_.Fail({grpc::StatusCode::INVALID_ARGUMENT});
  CallInfo info;
  EXPECT_THAT(Client({})->Submit(Request(), &info).status(),
              ::farm::testing::StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(info.tries, 1);
}

TEST_F(FarmClientTest, RetriesOnlyTheCodesThePolicyNames) {
  RetryPolicy policy;
  policy.also_retry = {absl::StatusCode::kResourceExhausted};
  jobs_.Fail({grpc::StatusCode::RESOURCE_EXHAUSTED});
  EXPECT_OK(Client(policy)->Submit(Request()).status());
  jobs_.Fail({grpc::StatusCode::DEADLINE_EXCEEDED});
  EXPECT_THAT(Client(policy)->Submit(Request()).status(),
              ::farm::testing::StatusIs(absl::StatusCode::kDeadlineExceeded));
}

TEST_F(FarmClientTest, GivesUpWhenTheBudgetIsSpent) {
  jobs_.Fail(std::vector<grpc::StatusCode>(100'000, grpc::StatusCode::UNAVAILABLE));
  RetryPolicy policy;
  policy.budget_ms = 200;
  CallInfo info;
  EXPECT_THAT(Client(policy)->Submit(Request(), &info).status(),
              ::farm::testing::StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_GT(info.tries, 1);
  EXPECT_LT(info.tries, 100'000);

  policy.budget_ms = 0;  // no retries at all
  jobs_.Fail({grpc::StatusCode::UNAVAILABLE});
  EXPECT_THAT(Client(policy)->Submit(Request(), &info).status(),
              ::farm::testing::StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(info.tries, 1);
}

TEST_F(FarmClientTest, CallOnceMakesOneTry) {
  std::unique_ptr<FarmClient> client = Client({});
  farm::v1::GetJobRequest request;
  request.set_job_id("9");
  jobs_.Fail({grpc::StatusCode::UNAVAILABLE});
  EXPECT_THAT(client->CallOnce(&farm::v1::JobService::Stub::Get, client->jobs(), request).status(),
              ::farm::testing::StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(jobs_.gets(), 1);
  ASSERT_OK_AND_ASSIGN(farm::v1::Job job,
                       client->Call(&farm::v1::JobService::Stub::Get, client->jobs(), request));
  EXPECT_EQ(job.id(), "9");
}

TEST(FarmClientCreateTest, RefusesAnEmptyTarget) {
  EXPECT_THAT(FarmClient::Create("").status(),
              ::farm::testing::StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace farm::common
