// The explicit limits on a job, and the validation both farmctl (before it sends) and the
// coordinator (on every submit: clients are untrusted) apply.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
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
inline constexpr int kMaxArtifactGlobs = 100;          // `artifacts:` entries per job
inline constexpr int kMaxArtifactGlobBytes = 1 << 10;  // one glob
// What one attempt may record: files, and the encoded size of their list (it travels in
// CompleteJobRequest and is stored twice in the job, on the attempt and on the job).
inline constexpr int kMaxArtifactsPerJob = 10'000;
inline constexpr int64_t kMaxArtifactListBytes = 4 << 20;
inline constexpr int kMaxArtifactPathBytes = 4096;  // PATH_MAX

// OK, or INVALID_ARGUMENT naming the field and the limit it breaks.
absl::Status ValidateJobSpec(const farm::v1::JobSpec& spec);

// True when `text` is well-formed UTF-8 (what proto3 strings must hold).
bool IsValidUtf8(absl::string_view text);

// One `artifacts:` glob: non-empty, at most kMaxArtifactGlobBytes, no NUL, relative (no leading
// '/'), and no ".." component (a glob names files inside the workspace only). OK, or
// INVALID_ARGUMENT saying which rule `glob` breaks (also: not UTF-8) (without naming the field:
// callers prefix it).
absl::Status ValidateArtifactGlob(absl::string_view glob);

// A path an artifact is recorded or downloaded under: non-empty, at most kMaxArtifactPathBytes,
// '/'-separated and relative, with no empty, "." or ".." component, no NUL, valid UTF-8. OK or
// INVALID_ARGUMENT saying what is wrong (callers prefix which path).
absl::Status ValidateArtifactPath(absl::string_view path);

// The artifacts an agent reports in CompleteJobRequest: at most kMaxArtifactsPerJob, encoded in
// at most kMaxArtifactListBytes, each with a valid path (no path twice), a 64-digit lowercase
// hex SHA-256 and a size >= 0. OK or INVALID_ARGUMENT naming the first bad entry.
absl::Status ValidateArtifacts(
    const google::protobuf::RepeatedPtrField<farm::v1::Artifact>& artifacts);

// Fills defaults a valid spec may leave out (step names "step-N").
void ApplyJobDefaults(farm::v1::JobSpec& spec);

}  // namespace farm::common
