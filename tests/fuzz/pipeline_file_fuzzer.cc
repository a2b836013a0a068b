// The pipeline file parser (common/pipeline_file.h) on arbitrary bytes: a spec that the
// coordinator's own check (ExpandPipeline) accepts, or an INVALID_ARGUMENT error naming the file;
// never a crash, a hang or a blow-up.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/match.h"
#include "common/pipeline.h"
#include "common/pipeline_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<farm::v1::PipelineSpec> spec =
      farm::common::ParsePipelineFile(text, "fuzz.yaml");
  if (spec.ok()) {
    const auto expanded = farm::common::ExpandPipeline(*spec);
    if (!expanded.ok()) {
      std::fprintf(stderr, "a parsed pipeline fails ExpandPipeline: %s\n",
                   expanded.status().ToString().c_str());
      std::abort();
    }
  } else if (spec.status().code() != absl::StatusCode::kInvalidArgument ||
             !absl::StartsWith(spec.status().message(), "fuzz.yaml")) {
    std::fprintf(stderr, "unexpected error: %s\n", spec.status().ToString().c_str());
    std::abort();
  }
  return 0;
}
