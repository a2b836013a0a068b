#include "coordinator/logs/log_ingest.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "coordinator/store/keys.h"
#include "tests/coordinator/scheduler/part_test_util.h"

namespace farm::coordinator {
namespace {

using testing::StatusIs;

class LogIngestTest : public PartTest {};

TEST_F(LogIngestTest, ResentBytesAreSkippedAndGapsRefused) {
  LogIngest logs(1000);
  logs.Track(7, 1, 2);
  ASSERT_OK_AND_ASSIGN(LogIngest::Accepted a, logs.Accept(7, 1, 0, 0, "hello "));
  ASSERT_TRUE(a.record.has_value());
  EXPECT_EQ(a.record->first, keys::LogKey(7, 1, 0, 0));
  EXPECT_EQ(a.committed, 6);
  // A resend overlapping what is committed: only the new bytes are stored, at their offset.
  ASSERT_OK_AND_ASSIGN(LogIngest::Accepted b, logs.Accept(7, 1, 0, 3, "lo world"));
  EXPECT_EQ(b.record->first, keys::LogKey(7, 1, 0, 6));
  EXPECT_EQ(b.record->second, "world");
  EXPECT_EQ(b.committed, 11);
  ASSERT_OK_AND_ASSIGN(LogIngest::Accepted c, logs.Accept(7, 1, 0, 0, "hello"));
  EXPECT_FALSE(c.record.has_value());
  EXPECT_EQ(c.committed, 11);
  EXPECT_THAT(logs.Accept(7, 1, 0, 20, "x"), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(logs.Accept(7, 1, 2, 0, "x"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(logs.Accept(7, 1, 0, -1, "x"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(logs.Accept(7, 2, 0, 0, "x"), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(logs.Committed(7, 0), 11);
  logs.Forget(7);
  EXPECT_THAT(logs.Accept(7, 1, 0, 11, "x"), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(LogIngestTest, PastTheJobsLimitOneMarkerIsStoredAndTheRestDropped) {
  LogIngest logs(10);
  logs.Track(1, 1, 2);
  ASSERT_OK_AND_ASSIGN(LogIngest::Accepted a, logs.Accept(1, 1, 0, 0, "0123456"));
  ASSERT_OK_AND_ASSIGN(LogIngest::Accepted b, logs.Accept(1, 1, 1, 0, "abcdef"));
  ASSERT_TRUE(b.record.has_value());
  EXPECT_EQ(b.record->second.substr(0, 3), "abc");
  EXPECT_NE(b.record->second.find("output truncated"), std::string::npos);
  EXPECT_EQ(b.committed, 6);
  ASSERT_OK_AND_ASSIGN(LogIngest::Accepted c, logs.Accept(1, 1, 1, 6, "more"));
  EXPECT_FALSE(c.record.has_value());
  EXPECT_EQ(c.committed, 10);  // accepted, so that the agent moves on
}

TEST_F(LogIngestTest, RecoveryReadsTheCommittedLengthsFromTheStore) {
  Txn txn(&store_);
  txn.Put(Cf::kLogs, keys::LogKey(3, 2, 0, 0), "abcd");
  txn.Put(Cf::kLogs, keys::LogKey(3, 2, 0, 4), "ef");
  txn.Put(Cf::kLogs, keys::LogKey(3, 1, 1, 0), "old attempt");
  Commit(txn);
  LogIngest logs(1000);
  ASSERT_OK(logs.Recover(&store_, 3, 2, 2));
  EXPECT_EQ(logs.Committed(3, 0), 6);
  EXPECT_EQ(logs.Committed(3, 1), 0);
  EXPECT_THAT(logs.Accept(3, 2, 0, 7, "x"), StatusIs(absl::StatusCode::kOutOfRange));
  ASSERT_OK_AND_ASSIGN(LogIngest::Accepted a, logs.Accept(3, 2, 0, 6, "g"));
  EXPECT_EQ(a.committed, 7);
}

// A redacted attempt (a job with secrets, whatever its agent sent): stored records hold the
// output with each value replaced, keyed by offsets of the redacted stream, while the agent
// hears its own offsets; a value split across chunks is found too.
LogIngest::Redaction Patterns(std::vector<common::NamedSecret> secrets) {
  absl::StatusOr<std::shared_ptr<const common::RedactionPatterns>> p =
      common::RedactionPatterns::Create(secrets);
  EXPECT_TRUE(p.ok());
  return p.value_or(nullptr);
}

// The stored output of a step, from the records a test collected, in offset order.
std::string Stored(const std::map<std::string, std::string>& records) {
  std::string out;
  for (const auto& [key, bytes] : records) {
    EXPECT_EQ(keys::DecodeLogKey(key).offset, out.size()) << "a gap or an overlap";
    out += bytes;
  }
  return out;
}

TEST_F(LogIngestTest, ARedactedAttemptStoresNoSecretEvenSplitAcrossChunks) {
  LogIngest logs(1 << 20);
  logs.Track(5, 1, 1, Patterns({{"TOKEN", "s3cr3t-value"}}));
  std::map<std::string, std::string> records;
  const std::vector<std::string> chunks = {"token=s3c", "r3t-va", "lue done\nagain s3cr3t-value",
                                           " end s3cr"};
  int64_t offset = 0;
  for (const std::string& chunk : chunks) {
    ASSERT_OK_AND_ASSIGN(LogIngest::Accepted a, logs.Accept(5, 1, 0, offset, chunk));
    offset += static_cast<int64_t>(chunk.size());
    EXPECT_EQ(a.committed, offset);  // the agent's offsets
    ASSERT_TRUE(a.input_record.has_value());
    EXPECT_EQ(a.input_record->first, keys::LogInputKey(5, 1, 0));
    EXPECT_EQ(keys::ReadU64(a.input_record->second, 0), static_cast<uint64_t>(offset));
    if (a.record.has_value()) records.insert(*a.record);
  }
  // A resend of committed bytes changes nothing.
  ASSERT_OK_AND_ASSIGN(LogIngest::Accepted again, logs.Accept(5, 1, 0, 0, "token=s3c"));
  EXPECT_FALSE(again.record.has_value());
  std::optional<LogIngest::Record> held = logs.FinishStep(5, 0);
  ASSERT_TRUE(held.has_value());  // " s3cr" could have begun the value: held until the end
  records.insert(*held);
  EXPECT_EQ(Stored(records), "token=[REDACTED] done\nagain [REDACTED] end s3cr");
  LogIngest::Ended ended = logs.End(5);
  EXPECT_TRUE(ended.logs.empty());
  EXPECT_EQ(ended.meta_deletes, std::vector<std::string>{keys::LogInputKey(5, 1, 0)});
}

TEST_F(LogIngestTest, ARedactedAttemptRecoversBothOffsets) {
  // Stored: 16 redacted bytes for 12 input bytes the agent was told are committed.
  Txn txn(&store_);
  txn.Put(Cf::kLogs, keys::LogKey(4, 1, 0, 0), "a=[REDACTED] b=");
  txn.Put(Cf::kMeta, keys::LogInputKey(4, 1, 0), keys::U64(20));
  Commit(txn);
  LogIngest logs(1 << 20);
  ASSERT_OK(logs.Recover(&store_, 4, 1, 1, Patterns({{"TOKEN", "s3cr3t-value"}})));
  EXPECT_EQ(logs.Committed(4, 0), 20);
  ASSERT_OK_AND_ASSIGN(LogIngest::Accepted a, logs.Accept(4, 1, 0, 20, "s3cr3t-value\n"));
  EXPECT_EQ(a.committed, 33);
  ASSERT_TRUE(a.record.has_value());
  EXPECT_EQ(a.record->first, keys::LogKey(4, 1, 0, 15));
  EXPECT_EQ(a.record->second, "[REDACTED]\n");
}

TEST_F(LogIngestTest, AnAttemptWithoutSecretsWritesNoExtraRecords) {
  LogIngest logs(1000, [](const farm::v1::JobSpec&) -> LogIngest::Redaction {
    ADD_FAILURE() << "asked for the redaction of a job without secrets";
    return nullptr;
  });
  farm::v1::JobSpec spec;
  spec.add_steps()->set_run("true");
  logs.TrackJob(9, 1, spec);
  ASSERT_OK_AND_ASSIGN(LogIngest::Accepted a, logs.Accept(9, 1, 0, 0, "plain"));
  EXPECT_FALSE(a.input_record.has_value());
  EXPECT_FALSE(logs.FinishStep(9, 0).has_value());
  LogIngest::Ended ended = logs.End(9);
  EXPECT_TRUE(ended.logs.empty());
  EXPECT_TRUE(ended.meta_deletes.empty());
}

}  // namespace
}  // namespace farm::coordinator
