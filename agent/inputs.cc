#include "agent/inputs.h"

#include <filesystem>
#include <system_error>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/digest.h"
#include "common/job_limits.h"
#include "common/posix_io.h"
#include "common/status_macros.h"

namespace farm::agent {
namespace {

std::string Where(const farm::v1::JobInput& input, const farm::v1::Artifact& artifact) {
  return absl::StrCat(input.dir(), "/", artifact.path());
}

}  // namespace

absl::Status ValidateInputs(const google::protobuf::RepeatedPtrField<farm::v1::JobInput>& inputs) {
  absl::flat_hash_set<std::string> paths;
  for (int i = 0; i < inputs.size(); ++i) {
    const farm::v1::JobInput& input = inputs[i];
    // A dir is a path like any other ("build/amd64"), with the same rules.
    if (absl::Status s = common::ValidateArtifactPath(input.dir()); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("inputs[", i, "] (from job ", input.job_id(), "): dir: ", s.message()));
    }
    for (const farm::v1::Artifact& artifact : input.artifacts()) {
      if (absl::Status s = common::ValidateArtifactPath(artifact.path()); !s.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("input ", input.dir(), ": path: ", s.message()));
      }
      const std::string where = Where(input, artifact);
      if (absl::Status s = common::MakeDigest(artifact.hash(), artifact.size()).status(); !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("input ", where, ": ", s.message()));
      }
      if (!paths.insert(where).second) {
        return absl::InvalidArgumentError(absl::StrCat("input ", where, " is listed twice"));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<StagingStats> StageInputs(
    const google::protobuf::RepeatedPtrField<farm::v1::JobInput>& inputs,
    const std::string& workspace, BlobCache& cache, common::CancelSource* cancel) {
  FARM_RETURN_IF_ERROR(ValidateInputs(inputs));
  StagingStats stats;
  for (const farm::v1::JobInput& input : inputs) {
    for (const farm::v1::Artifact& artifact : input.artifacts()) {
      const std::string where = Where(input, artifact);
      auto fail = [&](const absl::Status& cause) {
        return absl::Status(cause.code(),
                            absl::StrCat("cannot stage input ", where, ": ", cause.ToString()));
      };
      const std::string dest = absl::StrCat(workspace, "/", kInputsDir, "/", where);
      std::error_code ec;
      std::filesystem::create_directories(std::filesystem::path(dest).parent_path(), ec);
      if (ec) {
        return fail(common::ErrnoStatus(ec.value(), "cannot create its directory"));
      }
      const common::Digest digest{artifact.hash(), artifact.size()};
      if (absl::Status s = cache.Materialize(digest, dest, artifact.executable(), cancel);
          !s.ok()) {
        return fail(s);
      }
      ++stats.files;
      stats.bytes += artifact.size();
    }
  }
  return stats;
}

}  // namespace farm::agent
