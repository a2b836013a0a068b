#include "agent/log_sender.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/coordinator_client.h"
#include "agent/job_secrets.h"
#include "common/channel.h"
#include "tests/agent/fake_agent_service.h"
#include "tests/agent/test_util.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace farm::agent {
namespace {

using ::farm::agent::testing::FakeAgentService;
using ::farm::testing::StatusIs;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using State = FakeAgentService::State;

constexpr int kFailForever = 1'000'000;

// Appends `chunks` chunks of `chunk_bytes` on its own thread, round-robin over `steps` steps,
// each chunk filled with its own number, so that a chunk lost, doubled or out of place shows.
// The sender must outlive the writer, or the writer be done.
class Writer {
 public:
  Writer(LogSender* sender, int chunks, int64_t chunk_bytes, int steps = 1)
      : sender_(sender), expected_(steps) {
    thread_ = std::thread([this, chunks, chunk_bytes, steps] {
      for (int k = 0; k < chunks; ++k) {
        const uint32_t step = static_cast<uint32_t>(k % steps);
        std::string data;
        while (static_cast<int64_t>(data.size()) < chunk_bytes) {
          absl::StrAppend(&data, absl::StrFormat("%07d\n", k));
        }
        data.resize(static_cast<size_t>(chunk_bytes));
        if (!sender_->Append(step, static_cast<int64_t>(expected_[step].size()), data)) break;
        expected_[step] += data;
        absl::MutexLock lock(&mu_);
        ++appended_;
      }
      absl::MutexLock lock(&mu_);
      done_ = true;
    });
  }
  // Aborts the sender when an Append() still blocks (a failed test), so that this returns.
  ~Writer() {
    if (!done()) sender_->Abort();
    Join();
  }

  // Waits (20 s at most) until `count` chunks are appended; false when they are not.
  bool WaitForAppended(int count) {
    absl::MutexLock lock(&mu_);
    auto reached = [this, count]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return appended_ >= count; };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), absl::Seconds(20));
  }
  // Waits (20 s at most) until every Append() returned; false when one still blocks.
  bool WaitUntilDone() {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&done_), absl::Seconds(20));
  }
  int appended() const {
    absl::MutexLock lock(&mu_);
    return appended_;
  }
  bool done() const {
    absl::MutexLock lock(&mu_);
    return done_;
  }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }
  // What step `step` should read, once joined.
  const std::string& expected(uint32_t step) const { return expected_[step]; }

 private:
  LogSender* const sender_;
  std::vector<std::string> expected_;  // written by the thread only
  mutable absl::Mutex mu_;
  int appended_ ABSL_GUARDED_BY(mu_) = 0;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// Compares without gtest's diff of two long strings (slow, and huge on a mismatch).
::testing::AssertionResult SameBytes(const std::string& actual, const std::string& expected) {
  if (actual == expected) return ::testing::AssertionSuccess();
  size_t i = 0;
  while (i < actual.size() && i < expected.size() && actual[i] == expected[i]) ++i;
  return ::testing::AssertionFailure()
         << "got " << actual.size() << " bytes, want " << expected.size()
         << "; first difference at byte " << i << ": got \"" << actual.substr(i, 16)
         << "\", want \"" << expected.substr(i, 16) << "\"";
}

std::vector<std::string> FilesIn(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(dir, ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    names.push_back(it->path().filename().string());
  }
  return names;
}

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
    ASSERT_OK_AND_ASSIGN(::farm::testing::TempDir dir, ::farm::testing::TempDir::Create());
    dir_ = std::make_unique<::farm::testing::TempDir>(std::move(dir));
    spill_dir_ = dir_->Join("spill");
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

  // Options that spill to spill_dir_ beyond `memory` bytes, up to `spill` bytes.
  LogSender::Options SpillOptions(int64_t memory, int64_t spill) const {
    LogSender::Options options = FastOptions();
    options.max_memory_bytes = memory;
    options.max_spill_bytes = spill;
    options.spill_dir = spill_dir_;
    return options;
  }

  std::string Log(uint32_t step) {
    State s = fake_.Snapshot();
    return s.jobs["job-1"].logs[step];
  }

  // Expects `writer` to be stuck at `count` chunks, over several more failed uploads.
  void ExpectBlockedAt(const Writer& writer, int count) {
    const int failed = fake_.Snapshot().failed_calls;
    ASSERT_TRUE(fake_.WaitUntil([&](const State& s) { return s.failed_calls >= failed + 5; }));
    EXPECT_EQ(writer.appended(), count);
    EXPECT_FALSE(writer.done());
  }

  // Lets uploads succeed again, then expects every byte of `writer` (done by then) once, in
  // order, and nothing left behind.
  void ExpectDeliveredAfterRecovery(LogSender& sender, Writer& writer, int steps = 1) {
    fake_.FailNext("UploadLogs", 0, grpc::StatusCode::UNAVAILABLE);
    ASSERT_TRUE(writer.WaitUntilDone());
    writer.Join();
    for (int step = 0; step < steps; ++step) {
      ASSERT_OK(sender.Flush(step));
      EXPECT_TRUE(SameBytes(Log(step), writer.expected(step))) << "step " << step;
    }
    const LogSender::Stats stats = sender.GetStats();
    EXPECT_EQ(stats.memory_bytes, 0);
    EXPECT_EQ(stats.spilled_bytes, 0);
    EXPECT_EQ(stats.spill_file_bytes, 0);
    EXPECT_THAT(FilesIn(spill_dir_), IsEmpty());
  }

  FakeAgentService fake_;
  std::unique_ptr<CoordinatorClient> client_;
  farm::v1::LeaseRef lease_;
  std::unique_ptr<::farm::testing::TempDir> dir_;
  std::string spill_dir_;
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
  options.max_memory_bytes = 10;
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

TEST_F(LogSenderTest, SpillsBeyondTheMemoryBudgetWhileTheCoordinatorIsUnreachable) {
  // A partition: every upload fails (each failing stream commits at most its first chunk).
  fake_.FailNext("UploadLogs", kFailForever, grpc::StatusCode::UNAVAILABLE);
  constexpr int64_t kMemory = 256 << 10;
  constexpr int64_t kChunk = 64 << 10;
  constexpr int kChunks = 256;  // 16 MiB, 64 times the memory budget
  LogSender::Options options = SpillOptions(kMemory, 64 << 20);
  options.max_stream_bytes = 512 << 10;  // batches mix chunks in memory and read back
  auto sender = MakeSender(options);
  Writer writer(sender.get(), kChunks, kChunk, /*steps=*/2);

  // Append() never waited for the coordinator.
  if (!writer.WaitUntilDone()) sender->Abort();  // releases the writer; the test fails
  ASSERT_TRUE(writer.done()) << "Append blocked after " << writer.appended() << " chunks";
  const LogSender::Stats stats = sender->GetStats();
  EXPECT_LE(stats.peak_memory_bytes, kMemory);
  EXPECT_LE(stats.memory_bytes, kMemory);
  EXPECT_EQ(stats.memory_bytes + stats.spilled_bytes, kChunks * kChunk);
  EXPECT_EQ(stats.spill_file_bytes, stats.spilled_bytes);
  const std::vector<std::string> files = FilesIn(spill_dir_);
  ASSERT_THAT(files, SizeIs(1));
  EXPECT_EQ(static_cast<int64_t>(std::filesystem::file_size(spill_dir_ + "/" + files[0])),
            stats.spill_file_bytes);
  // The coordinator really was unreachable: it has next to nothing.
  EXPECT_LE(Log(0).size() + Log(1).size(), static_cast<size_t>(kChunk));
  EXPECT_GT(fake_.Snapshot().failed_calls, 0);

  ASSERT_NO_FATAL_FAILURE(ExpectDeliveredAfterRecovery(*sender, writer, /*steps=*/2));
  EXPECT_EQ(Log(0).size() + Log(1).size(), static_cast<size_t>(kChunks * kChunk));
  sender->Stop();
}

TEST_F(LogSenderTest, SpilledOutputSurvivesFailuresInTheMiddleOfStreams) {
  // Each failing stream commits its first chunk, often one read back from the spill file, so
  // the resends overlap what the coordinator has.
  fake_.FailNext("UploadLogs", 40, grpc::StatusCode::UNAVAILABLE);
  LogSender::Options options = SpillOptions(32 << 10, 64 << 20);
  options.max_stream_bytes = 48 << 10;
  auto sender = MakeSender(options);
  Writer writer(sender.get(), 256, 8 << 10, /*steps=*/3);
  ASSERT_TRUE(writer.WaitUntilDone());
  writer.Join();
  for (uint32_t step = 0; step < 3; ++step) {
    ASSERT_OK(sender->Flush(step));
    EXPECT_TRUE(SameBytes(Log(step), writer.expected(step))) << "step " << step;
  }
  EXPECT_EQ(fake_.Snapshot().failed_calls, 40);
  EXPECT_LE(sender->GetStats().peak_memory_bytes, 32 << 10);
  EXPECT_THAT(FilesIn(spill_dir_), IsEmpty());
  sender->Stop();
}

TEST_F(LogSenderTest, AppendBlocksAtTheSpillBound) {
  fake_.FailNext("UploadLogs", kFailForever, grpc::StatusCode::UNAVAILABLE);
  auto sender = MakeSender(SpillOptions(64 << 10, 256 << 10));
  Writer writer(sender.get(), 64, 16 << 10);
  // 4 chunks fill the memory, 16 the spill file; the 21st waits.
  ASSERT_TRUE(writer.WaitForAppended(20));
  ASSERT_NO_FATAL_FAILURE(ExpectBlockedAt(writer, 20));
  const LogSender::Stats stats = sender->GetStats();
  EXPECT_EQ(stats.memory_bytes, 64 << 10);
  EXPECT_EQ(stats.spilled_bytes, 256 << 10);
  EXPECT_EQ(stats.spill_file_bytes, 256 << 10);
  ASSERT_NO_FATAL_FAILURE(ExpectDeliveredAfterRecovery(*sender, writer));
  sender->Stop();
}

TEST_F(LogSenderTest, ZeroSpillBoundBlocksAtTheMemoryBound) {
  fake_.FailNext("UploadLogs", kFailForever, grpc::StatusCode::UNAVAILABLE);
  auto sender = MakeSender(SpillOptions(64 << 10, 0));
  Writer writer(sender.get(), 16, 16 << 10);
  ASSERT_TRUE(writer.WaitForAppended(4));
  ASSERT_NO_FATAL_FAILURE(ExpectBlockedAt(writer, 4));
  EXPECT_FALSE(std::filesystem::exists(spill_dir_));
  ASSERT_NO_FATAL_FAILURE(ExpectDeliveredAfterRecovery(*sender, writer));
  sender->Stop();
}

TEST_F(LogSenderTest, UnusableSpillDirFallsBackToBlockingWithoutLoss) {
  // A path below a regular file cannot be created, not even by root.
  ASSERT_OK(::farm::testing::WriteFile(dir_->Join("file"), "x"));
  LogSender::Options options = SpillOptions(64 << 10, 64 << 20);
  options.spill_dir = dir_->Join("file/spill");
  fake_.FailNext("UploadLogs", kFailForever, grpc::StatusCode::UNAVAILABLE);
  auto sender = MakeSender(options);
  Writer writer(sender.get(), 16, 16 << 10);
  ASSERT_TRUE(writer.WaitForAppended(4));
  ASSERT_NO_FATAL_FAILURE(ExpectBlockedAt(writer, 4));
  const LogSender::Stats stats = sender->GetStats();
  EXPECT_TRUE(stats.spill_failed);
  EXPECT_EQ(stats.spilled_bytes, 0);
  EXPECT_EQ(stats.memory_bytes, 64 << 10);
  ASSERT_NO_FATAL_FAILURE(ExpectDeliveredAfterRecovery(*sender, writer));
  sender->Stop();
}

// Sets the process's file size limit (a stand-in for a full disk: writes past it fail with
// EFBIG) and puts it back at the end. SIGXFSZ is ignored meanwhile, so the write just fails.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    ok_ = ::getrlimit(RLIMIT_FSIZE, &saved_) == 0;
    old_handler_ = ::signal(SIGXFSZ, SIG_IGN);
    struct rlimit limit = saved_;
    limit.rlim_cur = bytes;
    ok_ = ok_ && ::setrlimit(RLIMIT_FSIZE, &limit) == 0;
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    ::signal(SIGXFSZ, old_handler_);
  }
  bool ok() const { return ok_; }

 private:
  struct rlimit saved_ = {};
  sighandler_t old_handler_ = SIG_DFL;
  bool ok_ = false;
};

TEST_F(LogSenderTest, SpillWriteErrorFallsBackToBlockingWithoutLoss) {
  fake_.FailNext("UploadLogs", kFailForever, grpc::StatusCode::UNAVAILABLE);
  auto sender = MakeSender(SpillOptions(64 << 10, 64 << 20));
  std::unique_ptr<Writer> writer;
  {
    // Room for 6 chunks and part of the 7th, which then fails half written.
    FileSizeLimit disk_full(100 << 10);
    ASSERT_TRUE(disk_full.ok());
    writer = std::make_unique<Writer>(sender.get(), 32, 16 << 10);
    // 4 chunks in memory, 6 in the file; the 11th waits for memory.
    ASSERT_TRUE(writer->WaitForAppended(10));
    ASSERT_NO_FATAL_FAILURE(ExpectBlockedAt(*writer, 10));
  }
  const LogSender::Stats stats = sender->GetStats();
  EXPECT_TRUE(stats.spill_failed);
  EXPECT_EQ(stats.memory_bytes, 64 << 10);
  EXPECT_EQ(stats.spilled_bytes, 96 << 10);
  EXPECT_EQ(stats.spill_file_bytes, 96 << 10);
  ASSERT_NO_FATAL_FAILURE(ExpectDeliveredAfterRecovery(*sender, *writer));
  sender->Stop();
}

TEST_F(LogSenderTest, AbortAndDestructionRemoveTheSpillFile) {
  fake_.FailNext("UploadLogs", kFailForever, grpc::StatusCode::UNAVAILABLE);
  {
    auto sender = MakeSender(SpillOptions(16 << 10, 64 << 20));
    Writer writer(sender.get(), 16, 16 << 10);
    ASSERT_TRUE(writer.WaitUntilDone());
    ASSERT_THAT(FilesIn(spill_dir_), SizeIs(1));
    sender->Abort();
    // The sender thread may be reading the file; it deletes it right after.
    EXPECT_TRUE(testing::WaitFor([&] { return FilesIn(spill_dir_).empty(); }));
    EXPECT_EQ(sender->GetStats().spill_file_bytes, 0);
    EXPECT_THAT(sender->Flush(0), StatusIs(absl::StatusCode::kCancelled));
  }
  {
    auto sender = MakeSender(SpillOptions(16 << 10, 64 << 20));
    Writer writer(sender.get(), 16, 16 << 10);
    ASSERT_TRUE(writer.WaitUntilDone());
    writer.Join();
    ASSERT_THAT(FilesIn(spill_dir_), SizeIs(1));
    sender.reset();
    EXPECT_THAT(FilesIn(spill_dir_), IsEmpty());
  }
}

TEST_F(LogSenderTest, StaleLeaseRemovesTheSpillFile) {
  fake_.FailNext("UploadLogs", kFailForever, grpc::StatusCode::UNAVAILABLE);
  auto sender = MakeSender(SpillOptions(16 << 10, 64 << 20));
  Writer writer(sender.get(), 16, 16 << 10);
  ASSERT_TRUE(writer.WaitUntilDone());
  writer.Join();
  ASSERT_THAT(FilesIn(spill_dir_), SizeIs(1));
  fake_.InvalidateLease("job-1");
  fake_.FailNext("UploadLogs", 0, grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(sender->Flush(0), StatusIs(absl::StatusCode::kFailedPrecondition));
  sender->Stop();
  EXPECT_THAT(FilesIn(spill_dir_), IsEmpty());
}

// A step's output through StepOutput (agent/job_secrets.h): the job's secrets leave the agent
// as [REDACTED], also when a value is split across the step's writes, at offsets of the
// redacted output; a job without secrets is passed through as written.
TEST_F(LogSenderTest, StepOutputRedactsTheJobsSecretsAcrossWrites) {
  farm::v1::JobSpec spec;
  spec.add_secrets("TOKEN");
  google::protobuf::RepeatedPtrField<farm::v1::SecretValue> values;
  farm::v1::SecretValue* v = values.Add();
  v->set_name("TOKEN");
  v->set_value("hunter2-secret");
  ASSERT_OK_AND_ASSIGN(JobSecrets secrets, JobSecrets::FromLease(spec, values));
  std::map<std::string, std::string> env;
  secrets.AddToEnv(env);
  EXPECT_EQ(env["TOKEN"], "hunter2-secret");
  auto sender = MakeSender();
  StepOutput output(sender.get(), 0, &secrets);
  int64_t offset = 0;
  for (const std::string piece : {"login hun", "ter2-sec", "ret ok\n", "hunter2-secret", "\nhun"}) {
    output.Write(offset, piece);
    offset += static_cast<int64_t>(piece.size());
  }
  const std::string expected = "login [REDACTED] ok\n[REDACTED]\nhun";
  EXPECT_EQ(output.Finish(offset), static_cast<int64_t>(expected.size()));
  ASSERT_OK(sender->Flush(0));
  EXPECT_EQ(Log(0), expected);

  StepOutput plain(sender.get(), 1, nullptr);
  plain.Write(0, "hunter2-secret");
  EXPECT_EQ(plain.Finish(14), 14);
  ASSERT_OK(sender->Flush(1));
  EXPECT_EQ(Log(1), "hunter2-secret");
}

TEST(JobSecretsTest, ASecretThatDidNotComeWithTheLeaseFailsTheAttempt) {
  farm::v1::JobSpec spec;
  spec.add_secrets("TOKEN");
  spec.add_secrets("REMOVED");
  google::protobuf::RepeatedPtrField<farm::v1::SecretValue> values;
  values.Add()->set_name("TOKEN");
  values.Mutable(0)->set_value("hunter2-secret");
  EXPECT_THAT(JobSecrets::FromLease(spec, values), StatusIs(absl::StatusCode::kFailedPrecondition));
  farm::v1::JobSpec none;
  ASSERT_OK_AND_ASSIGN(JobSecrets empty, JobSecrets::FromLease(none, values));
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(empty.patterns(), nullptr);
}

}  // namespace
}  // namespace farm::agent
