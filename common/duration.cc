#include "common/duration.h"

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace farm::common {

absl::StatusOr<int64_t> ParseDurationMs(absl::string_view text) {
  absl::Duration d;
  int64_t days = 0;
  if (text.size() > 1 && text.back() == 'd' &&
      absl::SimpleAtoi(text.substr(0, text.size() - 1), &days) && days >= 0 && days <= 100 * 366) {
    return days * 24 * 3600'000;
  }
  if (text.empty() || !absl::ParseDuration(text, &d) || d == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" is not a duration (examples: 500ms, 30s, 10m, 1h30m, 90d)"));
  }
  if (d < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("duration \"", text, "\" is negative"));
  }
  const int64_t ms = absl::ToInt64Milliseconds(d);
  if (absl::Milliseconds(ms) != d) {
    return absl::InvalidArgumentError(
        absl::StrCat("duration \"", text, "\" is finer than a millisecond"));
  }
  return ms;
}

std::string FormatDurationMs(int64_t ms) {
  if (ms < 1000) return absl::StrCat(ms, "ms");
  return absl::FormatDuration(absl::Milliseconds(ms));
}

std::string FormatDurationRoundedMs(int64_t ms) {
  return FormatDurationMs(ms >= 10'000 ? (ms + 500) / 1000 * 1000 : ms);
}

}  // namespace farm::common
