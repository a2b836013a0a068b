// farmctl's admin queue commands on the command line (admin_queue_options.h).
#include "coordinator/cli/admin_queue_options.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "coordinator/cli/options.h"
#include "tests/coordinator/cli/usage_error.h"
#include "tests/testing/status_matchers.h"

namespace farm::cli {
namespace {

using ::testing::HasSubstr;

TEST(AdminQueueOptionsTest, PauseAndResumeTakeALabelSelector) {
  ASSERT_OK_AND_ASSIGN(CliOptions o, ParseArgs({"admin", "pause", "os=linux, arch=x86"}, ""));
  EXPECT_EQ(o.command, Command::kAdminPause);
  EXPECT_EQ(o.labels, (std::map<std::string, std::string>{{"arch", "x86"}, {"os", "linux"}}));
  ASSERT_OK_AND_ASSIGN(o, ParseArgs({"admin", "resume", "os=linux"}, ""));
  EXPECT_EQ(o.command, Command::kAdminResume);
  EXPECT_EQ(o.labels, (std::map<std::string, std::string>{{"os", "linux"}}));
  ASSERT_OK_AND_ASSIGN(o, ParseArgs({"admin", "resume", "builder-1"}, ""));
  EXPECT_EQ(o.agent_name, "builder-1");
  EXPECT_TRUE(o.labels.empty());
  ExpectUsageError({"admin", "pause"}, "missing LABELS");
  ExpectUsageError({"admin", "pause", "linux"}, "LABELS takes key=value");
  ExpectUsageError({"admin", "pause", "os=a,os=b"}, "given twice");
  ExpectUsageError({"admin", "pause", ","}, "at least one");
  EXPECT_TRUE(IsLabelSelector("os=linux"));
  EXPECT_FALSE(IsLabelSelector("builder-1"));
}

TEST(AdminQueueOptionsTest, ReprioritizeRetryAndQueues) {
  ASSERT_OK_AND_ASSIGN(CliOptions o, ParseArgs({"admin", "reprioritize", "17", "-5"}, ""));
  EXPECT_EQ(o.command, Command::kAdminReprioritize);
  EXPECT_EQ(o.job_id, "17");
  EXPECT_EQ(o.priority, -5);
  ExpectUsageError({"admin", "reprioritize", "17"}, "missing N");
  ExpectUsageError({"admin", "reprioritize", "17", "high"}, "whole number");
  ASSERT_OK_AND_ASSIGN(o, ParseArgs({"admin", "retry", "p3"}, ""));
  EXPECT_EQ(o.command, Command::kAdminRetry);
  EXPECT_EQ(o.job_id, "p3");
  ASSERT_OK_AND_ASSIGN(o, ParseArgs({"admin", "queues", "--output=json"}, ""));
  EXPECT_EQ(o.command, Command::kAdminQueues);
  EXPECT_EQ(o.output, OutputFormat::kJson);
}

TEST(AdminQueueOptionsTest, CancelNeedsLabelsAndTheQueuedState) {
  ASSERT_OK_AND_ASSIGN(CliOptions o,
                       ParseArgs({"admin", "cancel", "--labels=pool=ci", "--state=queued"}, ""));
  EXPECT_EQ(o.command, Command::kAdminCancel);
  EXPECT_EQ(o.labels, (std::map<std::string, std::string>{{"pool", "ci"}}));
  EXPECT_EQ(o.state, farm::v1::QUEUED);
  ExpectUsageError({"admin", "cancel", "--state=queued"}, "needs --labels");
  ExpectUsageError({"admin", "cancel", "--labels=pool=ci"}, "--state=queued");
  ExpectUsageError({"admin", "cancel", "--labels=pool=ci", "--state=running"},
                   "only queued jobs can be cancelled in bulk");
  EXPECT_THAT(CommandUsageText("admin"), HasSubstr("farmctl admin reprioritize JOB N"));
}

}  // namespace
}  // namespace farm::cli
