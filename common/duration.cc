#include "common/duration.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace farm::common {

absl::StatusOr<int64_t> ParseDurationMs(absl::string_view text) {
  absl::Duration d;
  if (text.empty() || !absl::ParseDuration(text, &d) || d == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" is not a duration (examples: 500ms, 30s, 10m, 1h30m)"));
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

}  // namespace farm::common
