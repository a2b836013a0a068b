// The explicit limits on a job, and the validation both farmctl (before it sends) and the
// coordinator (on every submit: clients are untrusted) apply.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "common/status_macros.h"
#include "farm/v1/farm.pb.h"

namespace farm::common {

inline constexpr int64_t kMaxJobFileBytes = 1 << 20;  // 1 MiB
inline constexpr int kMaxSteps = 1000;
inline constexpr int64_t kMaxScriptBytes = 256 << 10;  // one step's `run`
inline constexpr int kMaxNameBytes = 200;              // job and step names
inline constexpr int kMaxEnvVars = 1000;               // per job and per step
inline constexpr int64_t kMaxEnvValueBytes = 64 << 10;
inline constexpr int kMaxLabels = 64;
inline constexpr int kMaxLabelBytes = 256;  // a label key or value
inline constexpr int kMinPriority = -1000;
inline constexpr int kMaxPriority = 1000;
inline constexpr int64_t kMaxTimeoutMs = 7LL * 24 * 3600 * 1000;  // one week
inline constexpr int64_t kMaxSerializedSpecBytes = 4 << 20;       // whole JobSpec message
inline constexpr int64_t kDefaultKillGraceMs = 10'000;

// OK, or INVALID_ARGUMENT naming the field and the limit it breaks.
absl::Status ValidateJobSpec(const farm::v1::JobSpec& spec);

// Fills defaults a valid spec may leave out (step names "step-N").
void ApplyJobDefaults(farm::v1::JobSpec& spec);

}  // namespace farm::common
