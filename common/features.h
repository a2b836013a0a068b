// Protocol features a coordinator lists in RegisterResponse.features, so that agents and
// coordinators of different versions work together: an agent uses a feature only when its
// coordinator lists it.
#pragma once

#include "absl/strings/string_view.h"

namespace farm::common {

// CompleteJob records CompleteJobRequest.last_step (the last step's result, sent with the
// completion instead of with StepFinished).
inline constexpr absl::string_view kFeatureCompleteJobLastStep = "complete_job.last_step";

}  // namespace farm::common
