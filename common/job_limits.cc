#include "common/job_limits.h"

#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace farm::common {
namespace {

bool ValidEnvName(const std::string& name) {
  if (name.empty()) return false;
  if (name[0] >= '0' && name[0] <= '9') return false;
  for (char c : name) {
    if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) {
      return false;
    }
  }
  return true;
}

absl::Status ValidateEnv(const google::protobuf::Map<std::string, std::string>& env,
                         const std::string& where) {
  if (env.size() > static_cast<size_t>(kMaxEnvVars)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, "env has ", env.size(), " variables; the limit is ", kMaxEnvVars));
  }
  for (const auto& [k, v] : env) {
    if (!ValidEnvName(k)) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, "env name \"", k, "\" is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)"));
    }
    if (v.size() > static_cast<size_t>(kMaxEnvValueBytes)) {
      return absl::InvalidArgumentError(absl::StrCat(where, "env ", k, " is ", v.size(),
                                                     " bytes; the limit is ", kMaxEnvValueBytes));
    }
    if (v.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(where, "env ", k, " contains a NUL byte"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateTimeout(int64_t ms, const std::string& what) {
  if (ms < 0 || ms > kMaxTimeoutMs) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " must be between 0 and ", kMaxTimeoutMs / 3600'000, "h"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateJobSpec(const farm::v1::JobSpec& spec) {
  if (spec.ByteSizeLong() > static_cast<size_t>(kMaxSerializedSpecBytes)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "job is ", spec.ByteSizeLong(), " bytes encoded; the limit is ", kMaxSerializedSpecBytes));
  }
  if (spec.name().size() > static_cast<size_t>(kMaxNameBytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("name is ", spec.name().size(), " bytes; the limit is ", kMaxNameBytes));
  }
  if (spec.steps().empty())
    return absl::InvalidArgumentError("steps: a job needs at least one step");
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
      return absl::InvalidArgumentError(absl::StrCat("labels: \"", k,
                                                     "\" must be a non-empty key, and key and "
                                                     "value at most ",
                                                     kMaxLabelBytes, " bytes"));
    }
    if (k.find_first_of("=,") != std::string::npos || v.find(',') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("labels: \"", k, "\" may not contain '=' or ','"));
    }
  }
  if (auto s = ValidateEnv(spec.env(), ""); !s.ok()) return s;
  if (auto s = ValidateTimeout(spec.timeout_ms(), "timeout"); !s.ok()) return s;
  if (auto s = ValidateTimeout(spec.kill_grace_ms(), "kill_grace"); !s.ok()) return s;
  for (const std::string& arg : spec.shell()) {
    if (arg.empty() || arg.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError("shell: arguments must be non-empty and contain no NUL");
    }
  }
  absl::flat_hash_set<std::string> names;
  for (int i = 0; i < spec.steps_size(); ++i) {
    const farm::v1::StepSpec& step = spec.steps(i);
    const std::string where =
        absl::StrCat("steps[", i, "]", step.name().empty() ? "" : " (" + step.name() + ")", ": ");
    if (step.name().size() > static_cast<size_t>(kMaxNameBytes)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "name is longer than ", kMaxNameBytes, " bytes"));
    }
    if (!step.name().empty() && !names.insert(step.name()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "duplicate step name \"", step.name(), "\""));
    }
    if (step.run().empty()) return absl::InvalidArgumentError(absl::StrCat(where, "run is empty"));
    if (step.run().size() > static_cast<size_t>(kMaxScriptBytes)) {
      return absl::InvalidArgumentError(absl::StrCat(where, "run is ", step.run().size(),
                                                     " bytes; the limit is ", kMaxScriptBytes));
    }
    if (step.run().find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(where, "run contains a NUL byte"));
    }
    if (auto s = ValidateEnv(step.env(), where); !s.ok()) return s;
    if (auto s = ValidateTimeout(step.timeout_ms(), where + "timeout"); !s.ok()) return s;
  }
  return absl::OkStatus();
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
