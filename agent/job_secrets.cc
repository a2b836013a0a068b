#include "agent/job_secrets.h"

#include <openssl/crypto.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace farm::agent {

absl::StatusOr<JobSecrets> JobSecrets::FromLease(
    const farm::v1::JobSpec& spec,
    const google::protobuf::RepeatedPtrField<farm::v1::SecretValue>& values) {
  JobSecrets out;
  for (const std::string& name : spec.secrets()) {
    auto it = std::find_if(values.begin(), values.end(),
                           [&](const farm::v1::SecretValue& v) { return v.name() == name; });
    if (it == values.end()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "secret ", name, " did not come with the lease (removed since the submit?)"));
    }
    out.values_.push_back(common::NamedSecret{name, it->value()});
  }
  if (out.values_.empty()) return out;
  FARM_ASSIGN_OR_RETURN(out.patterns_, common::RedactionPatterns::Create(out.values_));
  return out;
}

JobSecrets::~JobSecrets() {
  for (common::NamedSecret& s : values_) OPENSSL_cleanse(s.value.data(), s.value.size());
}

void JobSecrets::AddToEnv(std::map<std::string, std::string>& env) const {
  for (const common::NamedSecret& s : values_) env[s.name] = s.value;
}

StepOutput::StepOutput(LogSender* logs, uint32_t step_index, const JobSecrets* secrets)
    : logs_(logs), step_index_(step_index) {
  if (secrets != nullptr && secrets->patterns() != nullptr) redactor_.emplace(secrets->patterns());
}

void StepOutput::Write(int64_t offset, absl::string_view data) {
  if (!redactor_.has_value()) {
    logs_->Append(step_index_, offset, data);
    return;
  }
  const int64_t at = redactor_->output_bytes();
  out_.clear();
  redactor_->Feed(data, &out_);
  if (!out_.empty()) logs_->Append(step_index_, at, out_);
}

int64_t StepOutput::Finish(int64_t raw_bytes) {
  if (!redactor_.has_value()) return raw_bytes;
  const int64_t at = redactor_->output_bytes();
  out_.clear();
  redactor_->Flush(&out_);
  if (!out_.empty()) logs_->Append(step_index_, at, out_);
  return redactor_->output_bytes();
}

}  // namespace farm::agent
