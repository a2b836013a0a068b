#include "common/duration.h"

#include <gtest/gtest.h>

#include "tests/testing/status_matchers.h"

namespace farm::common {
namespace {

using ::farm::testing::StatusIs;

TEST(ParseDurationMsTest, AcceptsTheUnitsUsersWrite) {
  EXPECT_EQ(ParseDurationMs("500ms").value(), 500);
  EXPECT_EQ(ParseDurationMs("60s").value(), 60'000);
  EXPECT_EQ(ParseDurationMs("1.5s").value(), 1'500);
  EXPECT_EQ(ParseDurationMs("10m").value(), 600'000);
  EXPECT_EQ(ParseDurationMs("1h30m").value(), 5'400'000);
  EXPECT_EQ(ParseDurationMs("0").value(), 0);
  EXPECT_EQ(ParseDurationMs("90d").value(), int64_t{90} * 24 * 3600'000);
}

TEST(ParseDurationMsTest, RejectsWhatIsNotADuration) {
  EXPECT_THAT(ParseDurationMs(""), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseDurationMs("soon"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseDurationMs("10"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseDurationMs("10 m"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseDurationMs("inf"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseDurationMs("d"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseDurationMs("1.5d"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseDurationMs("-1d"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseDurationMs("99999999d"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ParseDurationMsTest, RejectsNegativeDurations) {
  EXPECT_THAT(ParseDurationMs("-5s"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(FormatDurationMsTest, PrintsCompactDurations) {
  EXPECT_EQ(FormatDurationMs(12), "12ms");
  EXPECT_EQ(FormatDurationMs(1234), "1.234s");
  EXPECT_EQ(FormatDurationMs(61'000), "1m1s");
  EXPECT_EQ(FormatDurationMs(5'400'000), "1h30m");
}

TEST(FormatDurationMsTest, RoundedKeepsWholeSecondsFromTenSecondsOn) {
  EXPECT_EQ(FormatDurationRoundedMs(3'303), "3.303s");
  EXPECT_EQ(FormatDurationRoundedMs(250'400), "4m10s");
  EXPECT_EQ(FormatDurationRoundedMs(250'600), "4m11s");
  EXPECT_EQ(FormatDurationRoundedMs(0), "0ms");
}

TEST(FormatDurationMsTest, RoundTripsThroughParse) {
  for (int64_t ms : {1, 999, 1000, 1234, 61'000, 3'600'000, 90'061'001}) {
    EXPECT_EQ(ParseDurationMs(FormatDurationMs(ms)).value(), ms) << FormatDurationMs(ms);
  }
}

}  // namespace
}  // namespace farm::common
