// Pipelines: jobs that need each other (a DAG), some expanded by a matrix into one job per
// combination of values. ExpandPipeline is the one check of a farm.v1.PipelineSpec: the
// coordinator applies it to every SubmitPipeline (clients are untrusted), and
// ParsePipelineFile (common/pipeline_file.h) applies it so that farmctl reports a bad file
// before any RPC. The file format is documented in README.md ("Pipelines").
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "farm/v1/farm.pb.h"

namespace farm::common {

// One job of an expanded pipeline.
struct ExpandedJob {
  // spec.name is the expanded name: the base name, then the matrix values in axis order in
  // parentheses, "build (amd64, linux)"; just "lint" without a matrix. env is the pipeline's,
  // then the job's on top, then the matrix values on top of both (one variable per axis).
  // ApplyJobDefaults has been applied and ValidateJobSpec(spec, JobOrigin::kPipeline) passed:
  // the spec may have no steps (a "gate" that succeeds as soon as it may run).
  farm::v1::JobSpec spec;
  std::string base_name;  // the key under `jobs:`, "build"
  // Where the jobs that need this one find its artifacts under inputs/: the base name, then one
  // path component per matrix value in axis order, "build/amd64/linux"; "lint".
  std::string input_dir;
  // Indices into the expanded vector of the jobs this one waits for, ascending. Needing a
  // matrix job means needing every one of its expansions.
  std::vector<int> needs;
};

// Which part of a PipelineSpec ExpandPipeline found wrong, for a caller that can point at the
// text the part came from (pipeline_file.cc gives FILE:LINE:COLUMN). Indices are -1 when they
// do not apply.
struct PipelineProblem {
  enum class Part {
    kPipeline,  // the pipeline as a whole (its encoded size)
    kName,      // spec.name
    kEnv,       // spec.env
    kJobs,      // spec.jobs as a list: none, or too many
    kJobName,   // jobs[job].name
    kJob,       // jobs[job].spec (or the job as a whole)
    kNeeds,     // jobs[job].needs as a list
    kNeed,      // jobs[job].needs[need]; for a cycle, the first edge of the cycle
    kMatrix,    // jobs[job].matrix as a whole
    kAxis,      // jobs[job].matrix[axis]
    kValue,     // jobs[job].matrix[axis].values[value]
  };
  Part part = Part::kPipeline;
  int job = -1;
  int need = -1;
  int axis = -1;
  int value = -1;
  // The message for a reader who is shown where the problem is: the returned status's message
  // names the job by index ("jobs[2] (test): needs ..."), this one by name only ("job \"test\"
  // needs ...").
  std::string located_message;
};

// Checks `spec` and expands its matrices. Jobs come out in the order of spec.jobs, the
// expansions of one job in matrix order (the first axis varies slowest). The checks: the limits
// of job_limits.h (kMaxSerializedPipelineBytes, kMaxPipelineJobs after expansion, kMaxNeeds,
// kMaxMatrixAxes, kMaxMatrixCombinations, kMaxExpandedPipelineBytes, and ValidateJobSpec on
// every expanded job); at least one job; job names of 1..kMaxNameBytes bytes of [A-Za-z0-9._-]
// other than "." and "..", unique; every need names another job, at most once, and the needs
// form no cycle; matrix axis names are environment variable names, unique within the job, each
// axis with 1 or more values of 1..kMaxMatrixValueBytes bytes of [A-Za-z0-9._+-] other than "."
// and "..", unique within the axis; the pipeline's env is valid.
//
// Errors are INVALID_ARGUMENT naming the job and the problem: `jobs[2] (test): needs "buld",
// which is not a job of this pipeline`, `jobs form a cycle: a → b → c → a`. When `problem` is
// not null it receives where the (first) problem is. Thread-safe.
absl::StatusOr<std::vector<ExpandedJob>> ExpandPipeline(const farm::v1::PipelineSpec& spec,
                                                        PipelineProblem* problem = nullptr);

}  // namespace farm::common
