// The service tests' fixture: the real Coordinator in this process, plaintext on 127.0.0.1:0,
// with a RocksDB in a directory of its own (removed after the test), and stubs for its services,
// driven the way farmctl and agents drive them.
#pragma once

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>

#include "common/channel.h"
#include "coordinator/coordinator.h"
#include "farm/v1/farm.grpc.pb.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace farm::coordinator {

// A client context whose deadline is `seconds` from now.
inline std::unique_ptr<grpc::ClientContext> Ctx(int seconds = 10) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  return ctx;
}

class InProcessCoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override { Boot(); }

  // Starts the coordinator (again, on the same data dir, when one runs: a restart). The options
  // are plaintext on 127.0.0.1:0, the defaults, then what Configure() changes.
  void Boot() {
    coordinator_.reset();
    CoordinatorOptions options;
    options.listen = "127.0.0.1:0";
    options.insecure = true;
    options.data_dir = dir_.Join("data");
    Configure(options);
    coordinator_ = std::make_unique<Coordinator>(options);
    ASSERT_OK(coordinator_->Init());
    ASSERT_OK(coordinator_->Start());
    ASSERT_OK_AND_ASSIGN(channel_, common::MakeChannel(coordinator_->address()));
    jobs_ = farm::v1::JobService::NewStub(channel_);
    agents_ = farm::v1::AgentService::NewStub(channel_);
    admin_ = farm::v1::AdminService::NewStub(channel_);
  }

  // What a test's fixture changes in the coordinator's options.
  virtual void Configure(CoordinatorOptions& options) {}

  testing::TempDir dir_ = *testing::TempDir::Create("farm-service-test");
  std::unique_ptr<Coordinator> coordinator_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<farm::v1::JobService::Stub> jobs_;
  std::unique_ptr<farm::v1::AgentService::Stub> agents_;
  std::unique_ptr<farm::v1::AdminService::Stub> admin_;
};

}  // namespace farm::coordinator
