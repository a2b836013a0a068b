#include "agent/log_sender.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "agent/coordinator_client.h"
#include "common/channel.h"
#include "tests/agent/fake_agent_service.h"
#include "tests/testing/status_matchers.h"

namespace farm::agent {
namespace {

using ::farm::agent::testing::FakeAgentService;
using ::farm::testing::StatusIs;
using State = FakeAgentService::State;

class LogSenderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string address = fake_.Start();
    ASSERT_FALSE(address.empty());
    ASSERT_OK_AND_ASSIGN(auto channel, common::MakeChannel(address));
    client_ = std::make_unique<CoordinatorClient>(channel);
    // A real lease from the fake, obtained through the client under test.
    farm::v1::RegisterRequest reg;
    reg.set_name("a1");
    ASSERT_OK(client_->Register(reg, nullptr));
    farm::v1::JobSpec spec;
    spec.add_steps()->set_run("true");
    fake_.AddJob("job-1", spec);
    farm::v1::LeaseRequest req;
    req.set_agent("a1");
    req.set_wait_ms(1000);
    ASSERT_OK_AND_ASSIGN(farm::v1::LeaseResponse lease, client_->Lease(req, nullptr));
    ASSERT_TRUE(lease.has_job());
    lease_ = lease.lease();
  }

  std::unique_ptr<LogSender> MakeSender(LogSender::Options options = FastOptions()) {
    auto sender = std::make_unique<LogSender>(client_.get(), lease_, "[test]", nullptr, options);
    sender->Start();
    return sender;
  }

  static LogSender::Options FastOptions() {
    LogSender::Options options;
    options.initial_backoff_ms = 1;
    options.max_backoff_ms = 5;
    return options;
  }

  std::string Log(uint32_t step) {
    State s = fake_.Snapshot();
    return s.jobs["job-1"].logs[step];
  }

  FakeAgentService fake_;
  std::unique_ptr<CoordinatorClient> client_;
  farm::v1::LeaseRef lease_;
};

TEST_F(LogSenderTest, FlushWaitsUntilEverythingIsCommitted) {
  auto sender = MakeSender();
  ASSERT_TRUE(sender->Append(0, 0, "hello "));
  ASSERT_TRUE(sender->Append(0, 6, "world\n"));
  ASSERT_TRUE(sender->Append(1, 0, "second step\n"));
  ASSERT_OK(sender->Flush(0));
  EXPECT_EQ(Log(0), "hello world\n");
  ASSERT_OK(sender->Flush(1));
  EXPECT_EQ(Log(1), "second step\n");
  sender->Stop();
}

TEST_F(LogSenderTest, ResendsAfterUnavailableWithoutDuplicatingBytes) {
  // Each failing stream commits its first chunk and then breaks.
  fake_.FailNext("UploadLogs", 3, grpc::StatusCode::UNAVAILABLE);
  auto sender = MakeSender();
  std::string expected;
  for (int i = 0; i < 10; ++i) {
    const std::string line = "line " + std::to_string(i) + "\n";
    ASSERT_TRUE(sender->Append(0, static_cast<int64_t>(expected.size()), line));
    expected += line;
  }
  ASSERT_OK(sender->Flush(0));
  EXPECT_EQ(Log(0), expected);
  EXPECT_EQ(fake_.Snapshot().failed_calls, 3);
}

TEST_F(LogSenderTest, LargeOutputIsSplitOverSeveralStreams) {
  LogSender::Options options = FastOptions();
  options.max_stream_bytes = 100 << 10;
  auto sender = MakeSender(options);
  std::string expected;
  for (int i = 0; i < 16; ++i) {
    const std::string chunk(64 << 10, static_cast<char>('a' + i));
    ASSERT_TRUE(sender->Append(2, static_cast<int64_t>(expected.size()), chunk));
    expected += chunk;
  }
  ASSERT_OK(sender->Flush(2));
  EXPECT_EQ(Log(2), expected);
  EXPECT_GE(fake_.Snapshot().upload_streams, 8);
}

TEST_F(LogSenderTest, StaleLeaseFailsFlushAndLaterAppends) {
  fake_.InvalidateLease("job-1");
  auto sender = MakeSender();
  ASSERT_TRUE(sender->Append(0, 0, "late output"));
  EXPECT_THAT(sender->Flush(0), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_FALSE(sender->Append(0, 11, "more"));
}

TEST_F(LogSenderTest, FullBufferBlocksAppendUntilTheCoordinatorCatchesUp) {
  fake_.FailNext("UploadLogs", 1'000'000, grpc::StatusCode::UNAVAILABLE);
  LogSender::Options options = FastOptions();
  options.max_buffered_bytes = 10;
  auto sender = MakeSender(options);
  ASSERT_TRUE(sender->Append(0, 0, "0123456789"));
  std::atomic<bool> appended{false};
  std::thread writer([&] {
    sender->Append(0, 10, "abc");
    appended = true;
  });
  // Several uploads fail while the writer waits for room.
  ASSERT_TRUE(fake_.WaitUntil([](const State& s) { return s.failed_calls >= 5; }));
  EXPECT_FALSE(appended.load());
  fake_.FailNext("UploadLogs", 0, grpc::StatusCode::UNAVAILABLE);
  writer.join();
  EXPECT_TRUE(appended.load());
  ASSERT_OK(sender->Flush(0));
  EXPECT_EQ(Log(0), "0123456789abc");
}

TEST_F(LogSenderTest, AbortReleasesAFlushThatCannotComplete) {
  fake_.FailNext("UploadLogs", 1'000'000, grpc::StatusCode::UNAVAILABLE);
  auto sender = MakeSender();
  ASSERT_TRUE(sender->Append(0, 0, "never delivered"));
  std::thread aborter([&] {
    fake_.WaitUntil([](const State& s) { return s.failed_calls >= 2; });
    sender->Abort();
  });
  EXPECT_THAT(sender->Flush(0), StatusIs(absl::StatusCode::kCancelled));
  aborter.join();
  EXPECT_FALSE(sender->Append(0, 15, "x"));
}

}  // namespace
}  // namespace farm::agent
