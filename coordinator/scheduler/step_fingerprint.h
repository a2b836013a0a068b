// A step's fingerprint: a stable 64-bit hash (16 hex digits) of what decides its outcome, as
// far as the farm can see it: the shell, the job's and the step's environment, the script, and
// the digests of the job's inputs. Two runs with the same fingerprint that passed once and
// failed once are a flaky step (the flow analytics rank them). Any thread; pure.
#pragma once

#include <string>

#include "farm/v1/farm.pb.h"

namespace farm::coordinator {

// Empty when `step_index` is out of range.
std::string StepFingerprint(const farm::v1::Job& job, int step_index);

}  // namespace farm::coordinator
