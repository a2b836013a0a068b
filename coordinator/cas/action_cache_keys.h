// Keys of the action cache's age index in Cf::kRetention (action_cache.h).
#pragma once

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "coordinator/store/keys.h"

namespace farm::coordinator {

// "A" | result key → stored_ms(8): when the result was stored.
inline std::string AcStoredKey(absl::string_view key) { return absl::StrCat("A", key); }
// "a" | stored_ms(8) | result key → "": results in the order they age.
inline std::string AgeKey(int64_t ms, absl::string_view key) {
  return absl::StrCat("a", keys::U64(static_cast<uint64_t>(ms)), key);
}
inline constexpr absl::string_view kAcBackfillKey = "retention/ac_backfill";

}  // namespace farm::coordinator
