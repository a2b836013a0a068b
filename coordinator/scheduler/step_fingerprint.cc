#include "coordinator/scheduler/step_fingerprint.h"

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"

namespace farm::coordinator {
namespace {

// FNV-1a, 64 bits: stable across processes and builds (unlike std::hash), and cheap enough
// for the engine thread, which computes one per finished step. Not a security property: a
// fingerprint only groups runs of the same step.
class Fnv64 {
 public:
  void Bytes(absl::string_view s) {
    for (unsigned char c : s) {
      h_ ^= c;
      h_ *= 1099511628211ull;
    }
  }
  // Length-prefixed, so that no two different sequences of fields hash the same bytes.
  void Field(absl::string_view s) {
    const uint64_t n = s.size();
    Bytes(absl::string_view(reinterpret_cast<const char*>(&n), sizeof(n)));
    Bytes(s);
  }
  void Map(const google::protobuf::Map<std::string, std::string>& m) {
    std::vector<std::pair<absl::string_view, absl::string_view>> sorted(m.begin(), m.end());
    std::sort(sorted.begin(), sorted.end());
    Field(std::to_string(sorted.size()));
    for (const auto& [k, v] : sorted) {
      Field(k);
      Field(v);
    }
  }
  uint64_t value() const { return h_; }

 private:
  uint64_t h_ = 1469598103934665603ull;
};

}  // namespace

std::string StepFingerprint(const farm::v1::Job& job, int step_index) {
  if (step_index < 0 || step_index >= job.spec().steps_size()) return "";
  const farm::v1::StepSpec& step = job.spec().steps(step_index);
  Fnv64 h;
  h.Field(std::to_string(job.spec().shell_size()));
  for (const std::string& arg : job.spec().shell()) h.Field(arg);
  h.Map(job.spec().env());
  h.Map(step.env());
  h.Field(step.run());
  for (const farm::v1::JobInput& input : job.inputs()) {
    h.Field(input.dir());
    for (const farm::v1::Artifact& a : input.artifacts()) {
      h.Field(a.path());
      h.Field(a.hash());
    }
  }
  return absl::StrFormat("%016x", h.value());
}

}  // namespace farm::coordinator
