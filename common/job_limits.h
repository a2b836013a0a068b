// The explicit limits on a job, and the validation both farmctl (before it sends) and the
// coordinator (on every submit: clients are untrusted) apply.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/safe_path.h"
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
inline constexpr int kMaxArtifactPathBytes = kMaxRelativePathBytes;  // common/safe_path.h
// `retry:` (RetryPolicy): attempts counting the first, and the exit codes that retry.
inline constexpr int kMaxRetryAttempts = 10;
inline constexpr int kMaxRetryExitCodes = 32;
inline constexpr int kMinRetryExitCode = 1;
inline constexpr int kMaxRetryExitCode = 255;
// `concurrency:` of a `concurrency_group:` (whose name is 1..kMaxNameBytes of [A-Za-z0-9._-]).
inline constexpr int kMaxConcurrency = 1000;

// Secrets (`farmctl secret set NAME`, `secrets:` in a job). A name becomes an environment
// variable of the steps: [A-Z_][A-Z0-9_]*, at most kMaxSecretNameBytes, not starting with
// "FARM_" (the farm's own variables). A value is kMinSecretBytes (common/redactor.h: shorter
// values would hide common words all over the logs) to kMaxSecretValueBytes of any bytes.
inline constexpr int kMaxSecretNameBytes = 128;
inline constexpr int64_t kMaxSecretValueBytes = 64 << 10;
inline constexpr int kMaxSecretsPerJob = 100;

// Pipelines (common/pipeline.h). A pipeline file has the job file's size limit; the encoded
// PipelineSpec stays well under the 16 MiB gRPC message limit; the specs of all its jobs after
// matrix expansion are bounded too, because the coordinator creates them in one write.
inline constexpr int64_t kMaxPipelineFileBytes = kMaxJobFileBytes;
inline constexpr int64_t kMaxSerializedPipelineBytes = 8 << 20;
inline constexpr int64_t kMaxExpandedPipelineBytes = 32 << 20;
inline constexpr int kMaxPipelineJobs = 1000;       // after matrix expansion
inline constexpr int kMaxNeeds = 100;               // `needs:` entries of one job
inline constexpr int kMaxMatrixAxes = 8;            // per job
inline constexpr int kMaxMatrixCombinations = 256;  // per job: the product of the axis sizes
inline constexpr int kMaxMatrixValueBytes = 64;     // one value: [A-Za-z0-9._+-], not "." or ".."

// What a spec belongs to. A pipeline job may have no steps: a "gate" that only orders the jobs
// around it, and succeeds as soon as it may run. A job submitted on its own needs a step.
enum class JobOrigin { kSingle, kPipeline };

// OK, or INVALID_ARGUMENT naming the field and the limit it breaks. Every string passes
// ValidateRequestText (common/text.h: UTF-8, no NUL, control characters only in scripts and env
// values), so a job file is held to what the coordinator accepts. Besides the limits above:
// a known `when` on every step; retry.max_attempts in 0..kMaxRetryAttempts, at most
// kMaxRetryExitCodes on_exit_codes, each in kMinRetryExitCode..kMaxRetryExitCode; concurrency in
// 0..kMaxConcurrency and non-zero only with a concurrency_group, whose name passes
// ValidateConcurrencyGroup; at most kMaxSecretsPerJob `secrets`, each a valid secret name, none
// twice, none also set in the job's or a step's env. `origin` says whether a spec without steps is
// valid.
absl::Status ValidateJobSpec(const farm::v1::JobSpec& spec, JobOrigin origin = JobOrigin::kSingle);

// An environment: at most kMaxEnvVars variables, each named [A-Za-z_][A-Za-z0-9_]*, values at
// most kMaxEnvValueBytes without NUL. OK or INVALID_ARGUMENT; messages start with `where`
// ("" for the job's env, "steps[0] (build): ").
absl::Status ValidateEnvVars(const google::protobuf::Map<std::string, std::string>& env,
                             absl::string_view where);

// True for an environment variable name: [A-Za-z_][A-Za-z0-9_]*.
bool IsValidEnvName(absl::string_view name);

// A `concurrency_group:` name: 1..kMaxNameBytes bytes of [A-Za-z0-9._-]. OK or INVALID_ARGUMENT
// saying what is wrong (without naming the field: callers prefix it).
absl::Status ValidateConcurrencyGroup(absl::string_view group);

// A secret's name, by the rule above. OK or INVALID_ARGUMENT saying what is wrong (it quotes the
// name; callers prefix the field).
absl::Status ValidateSecretName(absl::string_view name);
// A secret's value: kMinSecretBytes..kMaxSecretValueBytes bytes. INVALID_ARGUMENT naming the
// secret by `name` and the length, never showing the value.
absl::Status ValidateSecretValue(absl::string_view name, absl::string_view value);

// True when `text` is well-formed UTF-8 (what proto3 strings must hold).
bool IsValidUtf8(absl::string_view text);

// One `artifacts:` glob: non-empty, at most kMaxArtifactGlobBytes, no NUL, relative (no leading
// '/'), and no ".." component (a glob names files inside the workspace only). OK, or
// INVALID_ARGUMENT saying which rule `glob` breaks (also: not UTF-8) (without naming the field:
// callers prefix it).
absl::Status ValidateArtifactGlob(absl::string_view glob);

// A path an artifact is recorded or downloaded under: common::CheckRelativePath (non-empty, at
// most kMaxArtifactPathBytes, '/'-separated and relative, with no empty, "." or ".." component,
// valid UTF-8 without control characters). OK or INVALID_ARGUMENT saying what is wrong (callers
// prefix which path).
absl::Status ValidateArtifactPath(absl::string_view path);

// The artifacts an agent reports in CompleteJobRequest: at most kMaxArtifactsPerJob, encoded in
// at most kMaxArtifactListBytes, each with a valid path (no path twice), a 64-digit lowercase
// hex SHA-256 and a size >= 0. OK or INVALID_ARGUMENT naming the first bad entry.
absl::Status ValidateArtifacts(
    const google::protobuf::RepeatedPtrField<farm::v1::Artifact>& artifacts);

// Fills defaults a valid spec may leave out (step names "step-N").
void ApplyJobDefaults(farm::v1::JobSpec& spec);

}  // namespace farm::common
