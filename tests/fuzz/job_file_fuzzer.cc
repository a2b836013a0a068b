// The job file parser (common/job_file.h) on arbitrary bytes: a spec or an INVALID_ARGUMENT
// error naming the file, never a crash, a hang or a blow-up (YAML alias bombs and deep nesting
// are refused before expansion).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/match.h"
#include "common/job_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<farm::v1::JobSpec> spec = farm::common::ParseJobFile(text, "fuzz.yaml");
  if (spec.ok()) {
    if (spec->steps_size() == 0) {
      std::fprintf(stderr, "a job without steps was accepted\n");
      std::abort();
    }
  } else if (spec.status().code() != absl::StatusCode::kInvalidArgument ||
             !absl::StartsWith(spec.status().message(), "fuzz.yaml")) {
    std::fprintf(stderr, "unexpected error: %s\n", spec.status().ToString().c_str());
    std::abort();
  }
  return 0;
}
