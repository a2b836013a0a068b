// Inputs: the artifacts of the jobs a pipeline job needs (Job.inputs, filled in by the
// coordinator), staged in the workspace before the first step at `inputs/<dir>/<path>`, with
// the executable bit the artifact was recorded with.
//
// The lease is untrusted input like any other: every dir and path is checked again here
// (common::CheckRelativePath: no "..", no absolute path, no empty or "." component, no control
// characters, valid UTF-8) and every hash is checked to be a SHA-256, before anything is
// written. The workspace is fresh and no step has run in it yet, but a process left over from an
// earlier job may still plant links in it: every directory is created and opened beneath the
// workspace's descriptor without following any link (a link met on the way is refused with
// PERMISSION_DENIED) and every file is created in its directory's descriptor with
// O_EXCL | O_NOFOLLOW (common/safe_path.h), so nothing is written outside the workspace.
//
// Thread-compatible free functions; the BlobCache they use is thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/blob_cache.h"
#include "common/cas_client.h"
#include "common/safe_path.h"
#include "farm/v1/farm.pb.h"
#include "google/protobuf/repeated_field.h"

namespace farm::agent {

// The directory under the workspace that inputs are staged in.
inline constexpr char kInputsDir[] = "inputs";

struct StagingStats {
  int files = 0;
  int64_t bytes = 0;
};

// OK, or INVALID_ARGUMENT naming the first input whose dir, path or digest is not acceptable,
// or a path staged twice.
absl::Status ValidateInputs(const google::protobuf::RepeatedPtrField<farm::v1::JobInput>& inputs);

// Validates `inputs`, then creates each at `<workspace>/inputs/<dir>/<path>` through `cache`.
// The error names the input ("cannot stage input build/amd64/out/app: NOT_FOUND: blob ... is not
// in the store") and keeps the cause's code (CANCELLED when `cancel` fired); what was staged
// before stays (the workspace is removed with the attempt).
absl::StatusOr<StagingStats> StageInputs(
    const google::protobuf::RepeatedPtrField<farm::v1::JobInput>& inputs,
    const common::BeneathRoot& workspace, BlobCache& cache, common::CancelSource* cancel);
// The same in the directory at `workspace`, opened now (its errno's code when it cannot be).
absl::StatusOr<StagingStats> StageInputs(
    const google::protobuf::RepeatedPtrField<farm::v1::JobInput>& inputs,
    const std::string& workspace, BlobCache& cache, common::CancelSource* cancel);

}  // namespace farm::agent
