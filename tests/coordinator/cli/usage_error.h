// Helpers of farmctl's command-line tests.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "coordinator/cli/options.h"
#include "tests/testing/status_matchers.h"

namespace farm::cli {

// What one farmctl run in the test process printed, and its exit code.
struct Result {
  int code = -1;
  std::string out;
  std::string err;
};

// Expects `args` to be refused as a usage error (INVALID_ARGUMENT) whose message holds
// `fragment`.
inline void ExpectUsageError(std::vector<std::string> args, const std::string& fragment) {
  EXPECT_THAT(ParseArgs(args, ""),
              ::farm::testing::StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                                   ::testing::HasSubstr(fragment)))
      << ::testing::PrintToString(args);
}

}  // namespace farm::cli
