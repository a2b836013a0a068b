#include "coordinator/logs/log_ingest.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace farm::coordinator
