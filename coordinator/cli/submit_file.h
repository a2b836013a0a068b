// Reading what `farmctl submit` sends: a job file or a pipeline file (YAML or JSON), from a
// path or from stdin, told apart by a top-level `jobs:` key, and parsed completely (a pipeline's
// cycles and unknown needs included) before anything is sent.
#pragma once

#include <istream>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "farm/v1/farm.pb.h"

namespace farm::cli {

// A job, or a pipeline (exactly one of them is set).
struct SubmitSpec {
  std::optional<farm::v1::JobSpec> job;
  std::optional<farm::v1::PipelineSpec> pipeline;
};

// Reads a job or pipeline file from `in` (named `name` in errors), one byte past the file
// limit at most. INVALID_ARGUMENT ("FILE:LINE:COLUMN: ...") for a bad or oversized file,
// DATA_LOSS when `in` cannot be read.
absl::StatusOr<SubmitSpec> ReadSpecFromStream(std::istream& in, const std::string& name);

// Loads the job or pipeline file at `path`. A regular file is looked at first and then loaded
// by LoadPipelineFile or LoadJobFile; a pipe (`<(...)`) or device is read once; a path that
// cannot be read gets LoadJobFile's error.
absl::StatusOr<SubmitSpec> LoadSpec(const std::string& path);

}  // namespace farm::cli
