// Protocol features a coordinator lists in RegisterResponse.features, so that agents and
// coordinators of different versions work together: an agent uses a feature only when its
// coordinator lists it.
#pragma once

#include "absl/strings/string_view.h"

namespace farm::common {

// CompleteJob records CompleteJobRequest.last_step (the last step's result, sent with the
// completion instead of with StepFinished).
inline constexpr absl::string_view kFeatureCompleteJobLastStep = "complete_job.last_step";
// CompleteJob leases the freed slot its next job when CompleteJobRequest.lease_next asks
// (CompleteJobResponse.next): one call and one durable write fewer per job.
inline constexpr absl::string_view kFeatureCompleteJobNextLease = "complete_job.next_lease";

}  // namespace farm::common
