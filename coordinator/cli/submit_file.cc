#include "coordinator/cli/submit_file.h"

#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <fstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/job_file.h"
#include "common/job_limits.h"
#include "common/pipeline_file.h"
#include "common/status_macros.h"

namespace farm::cli {
namespace {

static_assert(common::kMaxPipelineFileBytes == common::kMaxJobFileBytes,
              "submit reads a file before it knows which kind it is");

// Whether `text` is a pipeline file rather than a job file: its root is a mapping with a `jobs`
// key. Text that is not YAML at all counts as a job file, whose parser then says what is wrong.
bool IsPipelineText(const std::string& text) {
  try {
    const YAML::Node root = YAML::Load(text);
    if (!root.IsMap()) return false;
    for (auto it = root.begin(); it != root.end(); ++it) {
      if (it->first.IsScalar() && it->first.Scalar() == "jobs") return true;
    }
    return false;
  } catch (const std::exception&) {  // YAML::Exception: malformed, or nested too deeply
    return false;
  }
}

// Up to one byte past the file limit of `in`.
absl::StatusOr<std::string> ReadLimited(std::istream& in, const std::string& name) {
  std::string text;
  char buffer[64 << 10];
  while (text.size() <= static_cast<size_t>(common::kMaxJobFileBytes) && in.good()) {
    in.read(buffer, sizeof(buffer));
    text.append(buffer, static_cast<size_t>(in.gcount()));
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat(name, ": cannot read"));
  return text;
}

}  // namespace

absl::StatusOr<SubmitSpec> ReadSpecFromStream(std::istream& in, const std::string& name) {
  FARM_ASSIGN_OR_RETURN(const std::string text, ReadLimited(in, name));
  if (text.size() > static_cast<size_t>(common::kMaxJobFileBytes)) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, ": the job file is larger than the limit of ", common::kMaxJobFileBytes, " bytes"));
  }
  SubmitSpec spec;
  if (IsPipelineText(text)) {
    FARM_ASSIGN_OR_RETURN(spec.pipeline, common::ParsePipelineFile(text, name));
  } else {
    FARM_ASSIGN_OR_RETURN(spec.job, common::ParseJobFile(text, name));
  }
  return spec;
}

absl::StatusOr<SubmitSpec> LoadSpec(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) {
    std::ifstream in(path, std::ios::binary);
    if (in.is_open() && !S_ISREG(st.st_mode)) return ReadSpecFromStream(in, path);
    if (in.is_open()) {
      absl::StatusOr<std::string> text = ReadLimited(in, path);
      if (text.ok() && IsPipelineText(*text)) {
        SubmitSpec spec;
        FARM_ASSIGN_OR_RETURN(spec.pipeline, common::LoadPipelineFile(path));
        return spec;
      }
    }
  }
  SubmitSpec spec;
  FARM_ASSIGN_OR_RETURN(spec.job, common::LoadJobFile(path));
  return spec;
}

}  // namespace farm::cli
