// Facts about farm.v1 job and step states that every part of the farm agrees on.
#pragma once

#include "farm/v1/farm.pb.h"

namespace farm::common {

// A job in one of these states never changes again.
inline bool IsTerminal(farm::v1::JobState s) {
  return s == farm::v1::SUCCEEDED || s == farm::v1::FAILED || s == farm::v1::CANCELLED ||
         s == farm::v1::SKIPPED;
}

// A step that has ended one way or another (or was skipped).
inline bool StepDone(farm::v1::StepState s) {
  return s != farm::v1::STEP_STATE_UNSPECIFIED && s != farm::v1::STEP_PENDING &&
         s != farm::v1::STEP_RUNNING;
}

}  // namespace farm::common
