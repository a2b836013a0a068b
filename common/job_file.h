// Job files: the YAML (or JSON) documents users submit, parsed into a farm.v1.JobSpec.
// The format is documented in README.md ("Job files").
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "farm/v1/farm.pb.h"

namespace farm::common {

// Parses `text`; `filename` is only used in messages. Errors are INVALID_ARGUMENT with
// "FILE:LINE:COLUMN: what was wrong and what was expected" (1-based line and column), for
// malformed YAML/JSON, several documents in one file, unknown or duplicate keys, wrong types,
// bad durations, missing `run`, missing or empty `steps`, a step's `when` other than on_success,
// on_failure or always, `retry` and `concurrency` out of range, `concurrency` without a
// `concurrency_group`, and a bad group name. Errors about the file as a whole
// (over kMaxJobFileBytes, empty, a limit of job_limits.h broken) are "FILE: message". The
// result has had ApplyJobDefaults applied and has passed ValidateJobSpec.
// Thread-safe; never throws.
absl::StatusOr<farm::v1::JobSpec> ParseJobFile(absl::string_view text, const std::string& filename);

// Reads and parses a file; NOT_FOUND / PERMISSION_DENIED when it cannot be read (message
// "PATH: ..."), INVALID_ARGUMENT when it is a directory or larger than kMaxJobFileBytes, and
// ParseJobFile's errors.
absl::StatusOr<farm::v1::JobSpec> LoadJobFile(const std::string& path);

// A duration as job files and farmctl flags accept it: anything ParseDurationMs accepts
// ("500ms", "10m", "1h30m"), or a bare non-negative number, which is seconds ("600", "1.5").
// INVALID_ARGUMENT otherwise (the message quotes `text` and gives examples).
absl::StatusOr<int64_t> ParseJobDurationMs(absl::string_view text);

}  // namespace farm::common
