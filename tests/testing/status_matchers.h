// gtest helpers for absl::Status / absl::StatusOr (Abseil 20220623 ships none).
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/status_macros.h"

namespace farm::testing {

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

// StatusIs(code) and StatusIs(code, message_matcher) for Status and StatusOr.
MATCHER_P(StatusIs, code,
          std::string(negation ? "isn't" : "is") + " a status with code " +
              absl::StatusCodeToString(code)) {
  const absl::Status& s = ::farm::testing::GetStatus(arg);
  *result_listener << "status is " << s.ToString();
  return s.code() == code;
}

MATCHER_P2(StatusIsWithMessage, code, message_matcher, "") {
  const absl::Status& s = ::farm::testing::GetStatus(arg);
  *result_listener << "status is " << s.ToString();
  return s.code() == code &&
         ::testing::ExplainMatchResult(message_matcher, std::string(s.message()), result_listener);
}

// IsOkAndHolds(matcher) for StatusOr<T>.
MATCHER_P(IsOkAndHolds, value_matcher, "") {
  if (!arg.ok()) {
    *result_listener << "status is " << arg.status().ToString();
    return false;
  }
  return ::testing::ExplainMatchResult(value_matcher, *arg, result_listener);
}

}  // namespace farm::testing

// The status is copied (cheap: it is reference-counted): GetStatus() returns a reference into
// `expr`, which dies at the end of the statement when `expr` is a temporary.
#define ASSERT_OK(expr)                                               \
  do {                                                                \
    const ::absl::Status farm_s_ = ::farm::testing::GetStatus(expr);  \
    ASSERT_TRUE(farm_s_.ok()) << #expr << ": " << farm_s_.ToString(); \
  } while (0)

#define EXPECT_OK(expr)                                               \
  do {                                                                \
    const ::absl::Status farm_s_ = ::farm::testing::GetStatus(expr);  \
    EXPECT_TRUE(farm_s_.ok()) << #expr << ": " << farm_s_.ToString(); \
  } while (0)

// ASSERT_OK_AND_ASSIGN(auto x, StatusOrExpr());
#define ASSERT_OK_AND_ASSIGN(lhs, expr) \
  ASSERT_OK_AND_ASSIGN_IMPL_(FARM_STATUS_CONCAT_(farm_sor_, __LINE__), lhs, expr)
#define ASSERT_OK_AND_ASSIGN_IMPL_(sor, lhs, expr)                   \
  auto sor = (expr);                                                 \
  ASSERT_TRUE(sor.ok()) << #expr << ": " << sor.status().ToString(); \
  lhs = std::move(sor).value()
