// The provenance of a finished job's artifacts: an in-toto Statement (v1) whose subjects are
// the artifacts of the attempt that ended the job, with a SLSA provenance (v1) predicate:
//   buildDefinition.buildType          kBuildType (README "Provenance" documents it)
//   buildDefinition.externalParameters the job's spec (protobuf's JSON mapping of JobSpec) and
//                                      its pipeline (id, name in it)
//   buildDefinition.internalParameters the job id, attempt, agent and lease epoch
//   buildDefinition.resolvedDependencies every artifact it was given, and those its inputs' jobs
//                                      were given, back to the first job: the name it was staged
//                                      under (inputs/DIR/PATH), its sha256, and annotations
//                                      (the job that made it, the job that used it, the depth)
//   runDetails.builder.id              the coordinator's builder id
//   runDetails.metadata                invocation id, started and finished (RFC 3339, UTC)
//   runDetails.byproducts              the verdict of every step (state, exit code, duration)
// Blocking (store reads): run it on a read pool. Errors: NOT_FOUND for an unknown job (or an
// input job removed by retention), FAILED_PRECONDITION for a job that has not ended or made no
// artifacts, RESOURCE_EXHAUSTED past kMaxProvenanceJobs.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "coordinator/scheduler/job_reads.h"

namespace farm::coordinator::factory {

inline constexpr absl::string_view kStatementType = "https://in-toto.io/Statement/v1";
inline constexpr absl::string_view kPredicateType = "https://slsa.dev/provenance/v1";
inline constexpr absl::string_view kBuildType = "farm://build-types/job/v1";
// Jobs walked back through their inputs, at most.
inline constexpr int kMaxProvenanceJobs = 1000;

// The statement as JSON.
absl::StatusOr<std::string> ProvenanceStatement(const JobReads& reads, absl::string_view job_id,
                                                absl::string_view builder_id);

}  // namespace farm::coordinator::factory
