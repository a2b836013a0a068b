#include "coordinator/scheduler/step_fingerprint.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "common/digest.h"
#include "coordinator/store/keys.h"

namespace farm::coordinator {
namespace {

// Length-prefixed, so that no two different inputs hash the same bytes.
void Field(common::Sha256Hasher& h, absl::string_view s) {
  std::string len;
  keys::AppendU64(len, s.size());
  h.Update(len);
  h.Update(s);
}

void Map(common::Sha256Hasher& h, const google::protobuf::Map<std::string, std::string>& m) {
  std::vector<std::pair<absl::string_view, absl::string_view>> sorted(m.begin(), m.end());
  std::sort(sorted.begin(), sorted.end());
  Field(h, std::to_string(sorted.size()));
  for (const auto& [k, v] : sorted) {
    Field(h, k);
    Field(h, v);
  }
}

}  // namespace

std::string StepFingerprint(const farm::v1::Job& job, int step_index) {
  if (step_index < 0 || step_index >= job.spec().steps_size()) return "";
  const farm::v1::StepSpec& step = job.spec().steps(step_index);
  common::Sha256Hasher h;
  Field(h, std::to_string(job.spec().shell_size()));
  for (const std::string& arg : job.spec().shell()) Field(h, arg);
  Map(h, job.spec().env());
  Map(h, step.env());
  Field(h, step.run());
  for (const farm::v1::JobInput& input : job.inputs()) {
    Field(h, input.dir());
    for (const farm::v1::Artifact& a : input.artifacts()) {
      Field(h, a.path());
      Field(h, a.hash());
    }
  }
  return h.Finish().hash;
}

}  // namespace farm::coordinator
