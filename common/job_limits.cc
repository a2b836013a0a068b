#include "common/job_limits.h"

#include <algorithm>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/redactor.h"
#include "common/text.h"

namespace farm::common {
namespace {

absl::Status ValidateTimeout(int64_t ms, const std::string& what) {
  if (ms < 0 || ms > kMaxTimeoutMs) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " must be between 0 and ", kMaxTimeoutMs / 3600'000, "h"));
  }
  return absl::OkStatus();
}

absl::Status ValidateRetry(const farm::v1::RetryPolicy& retry) {
  if (retry.max_attempts() < 0 || retry.max_attempts() > kMaxRetryAttempts) {
    return absl::InvalidArgumentError(absl::StrCat("retry.max_attempts: ", retry.max_attempts(),
                                                   " is out of range; expected 0 to ",
                                                   kMaxRetryAttempts));
  }
  if (retry.on_exit_codes_size() > kMaxRetryExitCodes) {
    return absl::InvalidArgumentError(
        absl::StrCat("retry.on_exit_codes: ", retry.on_exit_codes_size(), " codes; the limit is ",
                     kMaxRetryExitCodes));
  }
  for (int i = 0; i < retry.on_exit_codes_size(); ++i) {
    const int32_t code = retry.on_exit_codes(i);
    if (code < kMinRetryExitCode || code > kMaxRetryExitCode) {
      return absl::InvalidArgumentError(absl::StrCat(
          "retry.on_exit_codes[", i, "]: ", code, " is out of range; expected an exit code from ",
          kMinRetryExitCode, " to ", kMaxRetryExitCode));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateConcurrency(const farm::v1::JobSpec& spec) {
  if (spec.concurrency() < 0 || spec.concurrency() > kMaxConcurrency) {
    return absl::InvalidArgumentError(absl::StrCat(
        "concurrency: ", spec.concurrency(), " is out of range; expected 0 to ", kMaxConcurrency));
  }
  if (spec.concurrency_group().empty()) {
    if (spec.concurrency() != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("concurrency: ", spec.concurrency(),
                       " without a concurrency_group; the limit counts the jobs of a group"));
    }
    return absl::OkStatus();
  }
  if (absl::Status s = ValidateConcurrencyGroup(spec.concurrency_group()); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("concurrency_group: ", s.message()));
  }
  return absl::OkStatus();
}

bool IsLowerHex(absl::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// One step (steps[index]); `names` collects the step names seen so far, to refuse duplicates.
absl::Status ValidateStep(const farm::v1::StepSpec& step, int index,
                          absl::flat_hash_set<std::string>& names) {
  // The name is clean text (ValidateJobSpec checks all text first); a long one is left out.
  const bool show_name = !step.name().empty() && step.name().size() <= kMaxNameBytes;
  const std::string where =
      absl::StrCat("steps[", index, "]", show_name ? " (" + step.name() + ")" : "", ": ");
  if (step.name().size() > static_cast<size_t>(kMaxNameBytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, "name is longer than ", kMaxNameBytes, " bytes"));
  }
  if (!step.name().empty() && !names.insert(step.name()).second) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, "duplicate step name ", Quote(step.name())));
  }
  if (step.run().empty()) return absl::InvalidArgumentError(absl::StrCat(where, "run is empty"));
  if (step.run().size() > static_cast<size_t>(kMaxScriptBytes)) {
    return absl::InvalidArgumentError(absl::StrCat(where, "run is ", step.run().size(),
                                                   " bytes; the limit is ", kMaxScriptBytes));
  }
  if (step.run().find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(where, "run contains a NUL byte"));
  }
  if (auto s = ValidateEnvVars(step.env(), where); !s.ok()) return s;
  if (auto s = ValidateTimeout(step.timeout_ms(), where + "timeout"); !s.ok()) return s;
  if (!farm::v1::StepWhen_IsValid(step.when())) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, "when: unknown value ", static_cast<int>(step.when())));
  }
  return absl::OkStatus();
}

}  // namespace

bool IsValidEnvName(absl::string_view name) {
  if (name.empty()) return false;
  if (name[0] >= '0' && name[0] <= '9') return false;
  for (char c : name) {
    if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) {
      return false;
    }
  }
  return true;
}

absl::Status ValidateEnvVars(const google::protobuf::Map<std::string, std::string>& env,
                             absl::string_view where) {
  if (env.size() > static_cast<size_t>(kMaxEnvVars)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, "env has ", env.size(), " variables; the limit is ", kMaxEnvVars));
  }
  for (const auto& [k, v] : env) {
    if (!IsValidEnvName(k)) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, "env name ", Quote(k), " is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)"));
    }
    if (v.size() > static_cast<size_t>(kMaxEnvValueBytes)) {
      return absl::InvalidArgumentError(absl::StrCat(where, "env ", Quote(k), " is ", v.size(),
                                                     " bytes; the limit is ", kMaxEnvValueBytes));
    }
    if (v.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "env ", Quote(k), " contains a NUL byte"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateConcurrencyGroup(absl::string_view group) {
  if (group.empty()) return absl::InvalidArgumentError("the group name is empty");
  if (group.size() > static_cast<size_t>(kMaxNameBytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the group name is ", group.size(), " bytes; the limit is ", kMaxNameBytes));
  }
  for (char c : group) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '-')) {
      return absl::InvalidArgumentError(absl::StrCat(
          Quote(group), " is not a group name: use letters, digits, '.', '_' and '-'"));
    }
  }
  return absl::OkStatus();
}

bool IsValidUtf8(absl::string_view text) {
  for (size_t pos = 0; pos < text.size();) {
    const size_t len = Utf8CharLength(text, pos);
    if (len == 0) return false;
    pos += len;
  }
  return true;
}

absl::Status ValidateArtifactGlob(absl::string_view glob) {
  if (glob.empty()) return absl::InvalidArgumentError("the glob is empty");
  if (glob.size() > static_cast<size_t>(kMaxArtifactGlobBytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the glob is ", glob.size(), " bytes; the limit is ", kMaxArtifactGlobBytes));
  }
  if (glob.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError("the glob contains a NUL byte");
  }
  if (!IsValidUtf8(glob)) return absl::InvalidArgumentError("the glob is not valid UTF-8");
  if (glob[0] == '/') {
    return absl::InvalidArgumentError(
        absl::StrCat(Quote(glob), " is an absolute path; globs are relative to the workspace"));
  }
  for (absl::string_view part : absl::StrSplit(glob, '/')) {
    if (part == "..") {
      return absl::InvalidArgumentError(absl::StrCat(
          Quote(glob), " has a \"..\" component; artifacts must stay inside the workspace"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateArtifactPath(absl::string_view path) { return CheckRelativePath(path); }

absl::Status ValidateArtifacts(
    const google::protobuf::RepeatedPtrField<farm::v1::Artifact>& artifacts) {
  if (artifacts.size() > kMaxArtifactsPerJob) {
    return absl::InvalidArgumentError(absl::StrCat("artifacts: ", artifacts.size(),
                                                   " files; the limit is ", kMaxArtifactsPerJob));
  }
  int64_t bytes = 0;
  absl::flat_hash_set<absl::string_view> paths;
  for (int i = 0; i < artifacts.size(); ++i) {
    const farm::v1::Artifact& artifact = artifacts[i];
    const std::string where = absl::StrCat("artifacts[", i, "]: ");
    if (absl::Status s = ValidateArtifactPath(artifact.path()); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(where, s.message()));
    }
    if (!paths.insert(artifact.path()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, Quote(artifact.path()), " is listed twice"));
    }
    if (artifact.hash().size() != 64 || !IsLowerHex(artifact.hash())) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "hash must be 64 lowercase hex digits (SHA-256)"));
    }
    if (artifact.size() < 0) {
      return absl::InvalidArgumentError(absl::StrCat(where, "size is negative"));
    }
    bytes += static_cast<int64_t>(artifact.ByteSizeLong()) + 4;
  }
  if (bytes > kMaxArtifactListBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "artifacts: the list is ", bytes, " bytes encoded; the limit is ", kMaxArtifactListBytes));
  }
  return absl::OkStatus();
}

absl::Status ValidateSecretName(absl::string_view name) {
  if (name.empty() || name.size() > static_cast<size_t>(kMaxSecretNameBytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("a secret name is 1 to ", kMaxSecretNameBytes, " bytes; got ", name.size()));
  }
  const bool valid =
      !absl::ascii_isdigit(name[0]) && std::all_of(name.begin(), name.end(), [](char c) {
        return absl::ascii_isupper(c) || absl::ascii_isdigit(c) || c == '_';
      });
  if (!valid) {
    return absl::InvalidArgumentError(
        absl::StrCat("secret name ", Quote(name),
                     " is not [A-Z_][A-Z0-9_]* (it becomes an environment variable)"));
  }
  if (absl::StartsWith(name, "FARM_")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "secret name ", Quote(name), " starts with FARM_, which the farm's own variables use"));
  }
  return absl::OkStatus();
}

absl::Status ValidateSecretValue(absl::string_view name, absl::string_view value) {
  if (value.size() < kMinSecretBytes || value.size() > static_cast<size_t>(kMaxSecretValueBytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the value of secret ", name, " is ", value.size(), " bytes; a value is ",
                     kMinSecretBytes, " bytes (shorter ones would hide common words in logs) to ",
                     kMaxSecretValueBytes, " bytes"));
  }
  return absl::OkStatus();
}

namespace {

absl::Status ValidateSecretRefs(const farm::v1::JobSpec& spec) {
  if (spec.secrets_size() > kMaxSecretsPerJob) {
    return absl::InvalidArgumentError(
        absl::StrCat("secrets: ", spec.secrets_size(), " names; the limit is ", kMaxSecretsPerJob));
  }
  absl::flat_hash_set<absl::string_view> seen;
  for (int i = 0; i < spec.secrets_size(); ++i) {
    const std::string& name = spec.secrets(i);
    if (absl::Status s = ValidateSecretName(name); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("secrets[", i, "]: ", s.message()));
    }
    if (!seen.insert(name).second) {
      return absl::InvalidArgumentError(absl::StrCat("secrets: ", name, " is listed twice"));
    }
    bool in_env = spec.env().contains(name);
    for (const auto& step : spec.steps()) in_env = in_env || step.env().contains(name);
    if (in_env) {
      return absl::InvalidArgumentError(absl::StrCat(
          "secrets: ", name, " is also set in env; a secret's variable comes from the secret"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateJobSpec(const farm::v1::JobSpec& spec, JobOrigin origin) {
  if (spec.ByteSizeLong() > static_cast<size_t>(kMaxSerializedSpecBytes)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "job is ", spec.ByteSizeLong(), " bytes encoded; the limit is ", kMaxSerializedSpecBytes));
  }
  if (spec.name().size() > static_cast<size_t>(kMaxNameBytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("name is ", spec.name().size(), " bytes; the limit is ", kMaxNameBytes));
  }
  FARM_RETURN_IF_ERROR(ValidateRequestText(spec));
  if (spec.steps().empty() && origin == JobOrigin::kSingle) {
    return absl::InvalidArgumentError("steps: a job needs at least one step");
  }
  if (spec.steps_size() > kMaxSteps) {
    return absl::InvalidArgumentError(
        absl::StrCat("steps: ", spec.steps_size(), " steps; the limit is ", kMaxSteps));
  }
  if (spec.priority() < kMinPriority || spec.priority() > kMaxPriority) {
    return absl::InvalidArgumentError(absl::StrCat(
        "priority ", spec.priority(), " is out of range [", kMinPriority, ", ", kMaxPriority, "]"));
  }
  if (spec.labels_size() > kMaxLabels) {
    return absl::InvalidArgumentError(
        absl::StrCat("labels: ", spec.labels_size(), " labels; the limit is ", kMaxLabels));
  }
  for (const auto& [k, v] : spec.labels()) {
    if (k.empty() || k.size() > static_cast<size_t>(kMaxLabelBytes) ||
        v.size() > static_cast<size_t>(kMaxLabelBytes)) {
      return absl::InvalidArgumentError(absl::StrCat("labels: ", Quote(k),
                                                     " must be a non-empty key, and key and "
                                                     "value at most ",
                                                     kMaxLabelBytes, " bytes"));
    }
    if (k.find_first_of("=,") != std::string::npos || v.find(',') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("labels: ", Quote(k), " may not contain '=' or ','"));
    }
  }
  if (auto s = ValidateEnvVars(spec.env(), ""); !s.ok()) return s;
  if (auto s = ValidateTimeout(spec.timeout_ms(), "timeout"); !s.ok()) return s;
  if (auto s = ValidateTimeout(spec.kill_grace_ms(), "kill_grace"); !s.ok()) return s;
  for (const std::string& arg : spec.shell()) {
    if (arg.empty() || arg.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError("shell: arguments must be non-empty and contain no NUL");
    }
  }
  if (spec.artifacts_size() > kMaxArtifactGlobs) {
    return absl::InvalidArgumentError(absl::StrCat("artifacts: ", spec.artifacts_size(),
                                                   " globs; the limit is ", kMaxArtifactGlobs));
  }
  for (int i = 0; i < spec.artifacts_size(); ++i) {
    if (absl::Status s = ValidateArtifactGlob(spec.artifacts(i)); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("artifacts[", i, "]: ", s.message()));
    }
  }
  if (!farm::v1::ArtifactsWhen_IsValid(spec.artifacts_when())) {
    return absl::InvalidArgumentError(
        absl::StrCat("artifacts_when: unknown value ", static_cast<int>(spec.artifacts_when())));
  }
  absl::flat_hash_set<std::string> names;
  for (int i = 0; i < spec.steps_size(); ++i) {
    FARM_RETURN_IF_ERROR(ValidateStep(spec.steps(i), i, names));
  }
  if (auto s = ValidateRetry(spec.retry()); !s.ok()) return s;
  FARM_RETURN_IF_ERROR(ValidateSecretRefs(spec));
  return ValidateConcurrency(spec);
}

void ApplyJobDefaults(farm::v1::JobSpec& spec) {
  absl::flat_hash_set<std::string> names;
  for (const auto& step : spec.steps()) names.insert(step.name());
  for (int i = 0; i < spec.steps_size(); ++i) {
    farm::v1::StepSpec* step = spec.mutable_steps(i);
    if (!step->name().empty()) continue;
    std::string name = absl::StrCat("step-", i + 1);
    while (names.contains(name)) name += "'";
    names.insert(name);
    step->set_name(name);
  }
}

}  // namespace farm::common
