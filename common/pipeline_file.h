// Pipeline files: the YAML (or JSON) documents users submit with `farmctl pipeline submit`,
// parsed into a farm.v1.PipelineSpec. The format is documented in README.md ("Pipelines"):
//
//   name: release
//   env: {VERSION: "1.2"}
//   jobs:
//     build:                         # the key is the job's name: [A-Za-z0-9._-]
//       matrix: {arch: [amd64, arm64]}
//       steps: [{run: make ARCH=$arch}]
//       artifacts: [out/*]
//     test:
//       needs: [build]               # or `needs: build`
//       steps: [{run: ./test.sh inputs/build/*/out}]
//
// Each job takes every key of a job file (common/job_file.h) except `name`, plus `needs` and
// `matrix`; unlike a job file's, a pipeline's job may have no steps (a "gate" that succeeds as
// soon as the jobs it needs have). A job file (its root has `steps` and no `jobs`) is accepted
// as a pipeline of that one job.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "farm/v1/farm.pb.h"

namespace farm::common {

// Parses `text` (`filename` is only used in messages) and checks the result with
// ExpandPipeline (common/pipeline.h), so that a spec it returns is one the coordinator accepts.
// Errors are INVALID_ARGUMENT "FILE:LINE:COLUMN: message" (1-based) pointing at the text at
// fault: those of ParseJobFile for each job (with paths such as "jobs.test.steps[0].run"), a
// duplicate job name at its second key, `job "test" needs "buld", which is not a job of this
// pipeline` at the entry, `jobs form a cycle: a → b → a` at the first job's need on the cycle,
// bad matrix axes and values where they are written, and the limits of job_limits.h. Errors
// about the file as a whole are "FILE: message".
//
// A job file becomes a pipeline of one job without a matrix. The pipeline's name is the job's
// `name`, else the file's base name without its extension ("ci" for "dir/ci.yaml"); the job's
// name is the same made a valid job name: each run of characters other than [A-Za-z0-9._-]
// becomes one '-', leading and trailing '-' and '.' are dropped, and "job" stands in for an
// empty result ("Hello world!" → "Hello-world").
//
// Thread-safe; never throws.
absl::StatusOr<farm::v1::PipelineSpec> ParsePipelineFile(absl::string_view text,
                                                         const std::string& filename);

// Reads and parses a file; NOT_FOUND / PERMISSION_DENIED when it cannot be read (message
// "PATH: ..."), INVALID_ARGUMENT when it is a directory or larger than kMaxPipelineFileBytes,
// and ParsePipelineFile's errors.
absl::StatusOr<farm::v1::PipelineSpec> LoadPipelineFile(const std::string& path);

}  // namespace farm::common
