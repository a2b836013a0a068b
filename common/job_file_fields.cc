// The readers of single job-file keys (shell, artifacts, concurrency_group, secrets,
// artifacts_when, network, a step's when, retry): SpecFileParser's members, in a file of their
// own so that job_file_parser.cc keeps to documents, entries and the job and step as a whole.
#include <string>

#include "absl/strings/str_cat.h"
#include "common/job_file.h"
#include "common/job_file_parser.h"
#include "common/status_macros.h"

namespace farm::common::internal {

using farm::v1::JobSpec;
using farm::v1::StepSpec;

namespace {
constexpr absl::string_view kRetryKeys[] = {"max_attempts", "on_exit_codes"};
}  // namespace

absl::Status SpecFileParser::ReadShell(const YamlEntry& e, JobSpec& spec) {
  if (e.value.IsNull()) return absl::OkStatus();
  constexpr absl::string_view kExpected =
      "a list of strings, the argv prefix before the script, e.g. [/bin/bash, -e, -c]";
  if (!e.value.IsSequence()) {
    return ErrorAt(
        e, absl::StrCat(e.path, ": expected ", kExpected, ", found ", DescribeYaml(e.value)));
  }
  int index = 0;
  for (auto it = e.value.begin(); it != e.value.end(); ++it, ++index) {
    const YAML::Node& arg = *it;
    if (!arg.IsScalar()) {
      return ErrorAt(
          arg.Mark().is_null() ? e.value.Mark() : arg.Mark(),
          absl::StrCat(e.path, "[", index, "]: expected a string, found ", DescribeYaml(arg)));
    }
    FARM_RETURN_IF_ERROR(Charge(arg.Scalar(), arg.Mark()));
    spec.add_shell(arg.Scalar());
  }
  return absl::OkStatus();
}

absl::Status SpecFileParser::ReadArtifacts(const YamlEntry& e, JobSpec& spec) {
  if (e.value.IsNull()) return absl::OkStatus();
  constexpr absl::string_view kExpected =
      "a list of globs relative to the workspace, e.g. [out/*, \"dist/**/*.tar.gz\"]";
  if (!e.value.IsSequence()) {
    return ErrorAt(
        e, absl::StrCat(e.path, ": expected ", kExpected, ", found ", DescribeYaml(e.value)));
  }
  if (e.value.size() > static_cast<size_t>(kMaxArtifactGlobs)) {
    return ErrorAt(
        e, absl::StrCat(e.path, ": ", e.value.size(), " globs; the limit is ", kMaxArtifactGlobs));
  }
  int index = 0;
  for (auto it = e.value.begin(); it != e.value.end(); ++it, ++index) {
    const YAML::Node& glob = *it;
    const YAML::Mark mark = glob.Mark().is_null() ? e.value.Mark() : glob.Mark();
    if (!glob.IsScalar()) {
      return ErrorAt(mark, absl::StrCat(e.path, "[", index, "]: expected a glob (a string), found ",
                                        DescribeYaml(glob)));
    }
    if (absl::Status s = ValidateArtifactGlob(glob.Scalar()); !s.ok()) {
      return ErrorAt(mark, absl::StrCat(e.path, "[", index, "]: ", s.message()));
    }
    FARM_RETURN_IF_ERROR(Charge(glob.Scalar(), mark));
    spec.add_artifacts(glob.Scalar());
  }
  return absl::OkStatus();
}

absl::Status SpecFileParser::ReadConcurrencyGroup(const YamlEntry& e, JobSpec& spec) {
  FARM_RETURN_IF_ERROR(ReadString(e, "a group name", spec.mutable_concurrency_group()));
  if (absl::Status s = ValidateConcurrencyGroup(spec.concurrency_group()); !s.ok()) {
    return ErrorAt(e, absl::StrCat(e.path, ": ", s.message()));
  }
  return absl::OkStatus();
}

absl::Status SpecFileParser::ReadSecrets(const YamlEntry& e, JobSpec& spec) {
  if (e.value.IsNull()) return absl::OkStatus();
  if (!e.value.IsSequence()) {
    return ErrorAt(e, absl::StrCat(e.path,
                                   ": expected a list of secret names, e.g. [DEPLOY_KEY], "
                                   "found ",
                                   DescribeYaml(e.value)));
  }
  if (e.value.size() > static_cast<size_t>(kMaxSecretsPerJob)) {
    return ErrorAt(
        e, absl::StrCat(e.path, ": ", e.value.size(), " names; the limit is ", kMaxSecretsPerJob));
  }
  int index = 0;
  for (auto it = e.value.begin(); it != e.value.end(); ++it, ++index) {
    const YAML::Node& name = *it;
    const YAML::Mark mark = name.Mark().is_null() ? e.value.Mark() : name.Mark();
    if (!name.IsScalar()) {
      return ErrorAt(mark, absl::StrCat(e.path, "[", index, "]: expected a secret name, found ",
                                        DescribeYaml(name)));
    }
    if (absl::Status s = ValidateSecretName(name.Scalar()); !s.ok()) {
      return ErrorAt(mark, absl::StrCat(e.path, "[", index, "]: ", s.message()));
    }
    for (const std::string& seen : spec.secrets()) {
      if (seen == name.Scalar()) {
        return ErrorAt(mark, absl::StrCat(e.path, "[", index, "]: ", seen, " is listed twice"));
      }
    }
    FARM_RETURN_IF_ERROR(Charge(name.Scalar(), mark));
    spec.add_secrets(name.Scalar());
  }
  return absl::OkStatus();
}

absl::Status SpecFileParser::ReadArtifactsWhen(const YamlEntry& e, JobSpec& spec) {
  constexpr absl::string_view kExpected =
      "on_success (collect artifacts only when every step succeeded) or always";
  const std::string value = e.value.IsScalar() ? e.value.Scalar() : "";
  if (value == "on_success") {
    spec.set_artifacts_when(farm::v1::ARTIFACTS_ON_SUCCESS);
  } else if (value == "always") {
    spec.set_artifacts_when(farm::v1::ARTIFACTS_ALWAYS);
  } else {
    return ErrorAt(
        e, absl::StrCat(e.path, ": expected ", kExpected, ", found ", DescribeYaml(e.value)));
  }
  return absl::OkStatus();
}

absl::Status SpecFileParser::ReadNetwork(const YamlEntry& e, JobSpec& spec) {
  const std::string value = e.value.IsScalar() && e.value.Tag() != "!" ? e.value.Scalar() : "";
  if (value != "true" && value != "false") {
    return ErrorAt(e, absl::StrCat(e.path,
                                   ": expected true (the steps may use the network) or "
                                   "false (they get none), found ",
                                   DescribeYaml(e.value)));
  }
  spec.set_no_network(value == "false");
  return absl::OkStatus();
}

absl::Status SpecFileParser::ReadStepWhen(const YamlEntry& e, StepSpec& step) {
  const std::string value = e.value.IsScalar() ? e.value.Scalar() : "";
  if (value == "on_success") {
    step.set_when(farm::v1::WHEN_ON_SUCCESS);
  } else if (value == "on_failure") {
    step.set_when(farm::v1::WHEN_ON_FAILURE);
  } else if (value == "always") {
    step.set_when(farm::v1::WHEN_ALWAYS);
  } else {
    return ErrorAt(e, absl::StrCat(e.path,
                                   ": expected on_success (run only while every earlier step "
                                   "succeeded), on_failure (only once one failed) or always; "
                                   "found ",
                                   DescribeYaml(e.value)));
  }
  return absl::OkStatus();
}

absl::Status SpecFileParser::ReadRetry(const YamlEntry& e, farm::v1::RetryPolicy& retry) {
  if (e.value.IsNull()) return absl::OkStatus();
  if (!e.value.IsMap()) {
    return ErrorAt(e, absl::StrCat(e.path,
                                   ": expected a mapping such as {max_attempts: 3, on_exit_codes: "
                                   "[75]}, found ",
                                   DescribeYaml(e.value)));
  }
  return ForEachEntry(
      e.value, kRetryKeys, e.path, absl::StrCat(e.path, "."),
      [&](const YamlEntry& item) -> absl::Status {
        if (item.key == "max_attempts") {
          int64_t attempts = 0;
          FARM_RETURN_IF_ERROR(ReadInt(item, 0, kMaxRetryAttempts, &attempts));
          retry.set_max_attempts(static_cast<int32_t>(attempts));
          return absl::OkStatus();
        }
        // on_exit_codes
        if (item.value.IsNull()) return absl::OkStatus();
        if (!item.value.IsSequence()) {
          return ErrorAt(
              item, absl::StrCat(item.path, ": expected a list of exit codes such as [75], found ",
                                 DescribeYaml(item.value)));
        }
        if (item.value.size() > static_cast<size_t>(kMaxRetryExitCodes)) {
          return ErrorAt(item, absl::StrCat(item.path, ": ", item.value.size(),
                                            " codes; the limit is ", kMaxRetryExitCodes));
        }
        int index = 0;
        for (auto it = item.value.begin(); it != item.value.end(); ++it, ++index) {
          YamlEntry code{"", absl::StrCat(item.path, "[", index, "]"), item.key_node, *it};
          int64_t value = 0;
          FARM_RETURN_IF_ERROR(ReadInt(code, kMinRetryExitCode, kMaxRetryExitCode, &value));
          retry.add_on_exit_codes(static_cast<int32_t>(value));
        }
        return absl::OkStatus();
      });
}

}  // namespace farm::common::internal
