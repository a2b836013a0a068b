// A helper of farmctl's command-line tests.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "coordinator/cli/options.h"
#include "tests/testing/status_matchers.h"

namespace farm::cli {

// Expects `args` to be refused as a usage error (INVALID_ARGUMENT) whose message holds
// `fragment`.
inline void ExpectUsageError(std::vector<std::string> args, const std::string& fragment) {
  EXPECT_THAT(ParseArgs(args, ""),
              ::farm::testing::StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                                   ::testing::HasSubstr(fragment)))
      << ::testing::PrintToString(args);
}

}  // namespace farm::cli
