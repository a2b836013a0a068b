// Job files: the YAML (or JSON) documents users submit, parsed into a farm.v1.JobSpec.
// The format is documented in README.md ("Job files").
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "farm/v1/farm.pb.h"

namespace farm::common {

// Parses `text`; `filename` is only used in messages. Errors are INVALID_ARGUMENT with
// "FILE:LINE:COLUMN: what was wrong and what was expected" (1-based line and column), for
// malformed YAML/JSON, unknown keys, wrong types, bad durations and empty steps. The result has
// passed ValidateJobSpec and ApplyJobDefaults.
absl::StatusOr<farm::v1::JobSpec> ParseJobFile(absl::string_view text, const std::string& filename);

// Reads and parses a file; NOT_FOUND / PERMISSION_DENIED when it cannot be read,
// INVALID_ARGUMENT when it is larger than kMaxJobFileBytes.
absl::StatusOr<farm::v1::JobSpec> LoadJobFile(const std::string& path);

}  // namespace farm::common
