// Durations as users write them ("500ms", "60s", "10m", "1h30m") and as farm prints them.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace farm::common {

// "0", "500ms", "1.5s", "10m", "1h30m", "90d" (whole days, up to 100 years) → milliseconds.
// INVALID_ARGUMENT on anything else, on negative values, and on sub-millisecond precision.
absl::StatusOr<int64_t> ParseDurationMs(absl::string_view text);

// 1234 → "1.234s", 61000 → "1m1s", 999 → "999ms", 0 → "0ms".
std::string FormatDurationMs(int64_t ms);
// The same, to whole seconds from 10 s on, as reports say durations: 250400 → "4m10s",
// 3303 → "3.303s".
std::string FormatDurationRoundedMs(int64_t ms);

}  // namespace farm::common
