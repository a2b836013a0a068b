#include "common/job_file.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/duration.h"
#include "common/job_file_parser.h"
#include "common/job_limits.h"
#include "common/status_macros.h"

namespace farm::common {
namespace {

using farm::v1::JobSpec;

bool IsPlainNumber(absl::string_view text) {
  if (text.empty()) return false;
  bool seen_digit = false;
  bool seen_dot = false;
  for (char c : text) {
    if (c >= '0' && c <= '9') {
      seen_digit = true;
    } else if (c == '.' && !seen_dot) {
      seen_dot = true;
    } else {
      return false;
    }
  }
  return seen_digit;
}

}  // namespace

absl::StatusOr<int64_t> ParseJobDurationMs(absl::string_view text) {
  const std::string with_unit = IsPlainNumber(text) ? absl::StrCat(text, "s") : std::string(text);
  absl::StatusOr<int64_t> ms = ParseDurationMs(with_unit);
  if (ms.ok()) return ms;
  if (absl::StartsWith(text, "-")) {
    return absl::InvalidArgumentError(absl::StrCat("duration \"", text, "\" is negative"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("expected ", internal::kDurationExamples, ", found \"", text, "\""));
}

absl::StatusOr<JobSpec> ParseJobFile(absl::string_view text, const std::string& filename) {
  if (text.size() > static_cast<size_t>(kMaxJobFileBytes)) {
    return absl::InvalidArgumentError(absl::StrCat(filename, ": the job file is ", text.size(),
                                                   " bytes; the limit is ", kMaxJobFileBytes,
                                                   " bytes"));
  }
  internal::SpecFileParser parser(filename, kMaxSerializedSpecBytes);
  JobSpec spec;
  FARM_RETURN_IF_ERROR(parser.ParseDocument(
      text, "the file is empty; expected a job: a mapping with at least \"steps\"",
      "a job file holds exactly one job",
      [&](const YAML::Node& root) { return parser.ParseJob(root, {}, spec); }));
  ApplyJobDefaults(spec);
  if (absl::Status s = ValidateJobSpec(spec); !s.ok()) return parser.FileError(s.message());
  return spec;
}

absl::StatusOr<JobSpec> LoadJobFile(const std::string& path) {
  FARM_ASSIGN_OR_RETURN(const std::string text,
                        internal::ReadSpecFile(path, kMaxJobFileBytes, "job file"));
  return ParseJobFile(text, path);
}

}  // namespace farm::common
