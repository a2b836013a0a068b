// Placeholder: replaced by the real parser.
#include "common/job_file.h"
namespace farm::common {
absl::StatusOr<farm::v1::JobSpec> ParseJobFile(absl::string_view, const std::string&) {
  return absl::UnimplementedError("job files");
}
absl::StatusOr<farm::v1::JobSpec> LoadJobFile(const std::string&) {
  return absl::UnimplementedError("job files");
}
}  // namespace farm::common
