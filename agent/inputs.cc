#include "agent/inputs.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/digest.h"
#include "common/job_limits.h"
#include "common/safe_path.h"
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
    const common::BeneathRoot& workspace, BlobCache& cache, common::CancelSource* cancel) {
  FARM_RETURN_IF_ERROR(ValidateInputs(inputs));
  StagingStats stats;
  // The directory of the previous file, kept open: inputs come grouped by directory.
  std::string open_dir;
  common::UniqueFd dir_fd;
  for (const farm::v1::JobInput& input : inputs) {
    for (const farm::v1::Artifact& artifact : input.artifacts()) {
      const std::string where = Where(input, artifact);
      auto fail = [&](const absl::Status& cause) {
        return absl::Status(cause.code(),
                            absl::StrCat("cannot stage input ", where, ": ", cause.ToString()));
      };
      const std::string relative = absl::StrCat(kInputsDir, "/", where);
      const size_t slash = relative.rfind('/');
      const std::string dir = relative.substr(0, slash);
      if (dir != open_dir || dir_fd.get() < 0) {
        // Nothing in a fresh workspace is a link: one there was planted, and is refused.
        absl::StatusOr<common::UniqueFd> opened = common::OpenDirBeneath(
            workspace, dir, {.follow_links = false, .follow_last = false, .create_dirs = true});
        if (!opened.ok()) return fail(opened.status());
        dir_fd = *std::move(opened);
        open_dir = dir;
      }
      const common::Digest digest{artifact.hash(), artifact.size()};
      if (absl::Status s = cache.MaterializeAt(digest, dir_fd.get(), relative.substr(slash + 1),
                                               relative, artifact.executable(), cancel);
          !s.ok()) {
        return fail(s);
      }
      ++stats.files;
      stats.bytes += artifact.size();
    }
  }
  return stats;
}

absl::StatusOr<StagingStats> StageInputs(
    const google::protobuf::RepeatedPtrField<farm::v1::JobInput>& inputs,
    const std::string& workspace, BlobCache& cache, common::CancelSource* cancel) {
  FARM_RETURN_IF_ERROR(ValidateInputs(inputs));
  FARM_ASSIGN_OR_RETURN(common::BeneathRoot root,
                        common::BeneathRoot::Open(workspace, "the workspace"));
  return StageInputs(inputs, root, cache, cancel);
}

}  // namespace farm::agent
