// The secrets of one attempt, as its lease brought them (LeaseResponse.secrets): set as
// environment variables of the job's steps, and redacted from the steps' output before it
// leaves the agent (common/redactor.h: one Redactor per step, offsets of the redacted output on
// the wire). The coordinator redacts again what it stores. Jobs without secrets take none of
// these paths: their output goes to the LogSender as the step runner reads it.
//
// Thread-safety: JobSecrets is immutable after FromLease (any thread). A StepOutput serves one
// step's stream, one thread at a time. Values are wiped when a JobSecrets is destroyed.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/log_sender.h"
#include "common/redactor.h"
#include "farm/v1/farm.pb.h"

namespace farm::agent {

class JobSecrets {
 public:
  JobSecrets() = default;  // none
  // The values of the secrets `spec` names. FAILED_PRECONDITION naming a secret the job names
  // whose value did not come with the lease (it was removed after the submit, or the
  // coordinator cannot decrypt it): the attempt fails rather than run without it.
  static absl::StatusOr<JobSecrets> FromLease(
      const farm::v1::JobSpec& spec,
      const google::protobuf::RepeatedPtrField<farm::v1::SecretValue>& values);
  JobSecrets(JobSecrets&&) = default;
  JobSecrets& operator=(JobSecrets&&) = default;
  ~JobSecrets();

  bool empty() const { return values_.empty(); }
  // Sets each secret as the variable of its name.
  void AddToEnv(std::map<std::string, std::string>& env) const;
  // What redacts the values; null when there are none.
  const std::shared_ptr<const common::RedactionPatterns>& patterns() const { return patterns_; }

 private:
  std::vector<common::NamedSecret> values_;
  std::shared_ptr<const common::RedactionPatterns> patterns_;
};

// One step's output on its way to the LogSender: the step runner's sink. Redacted when the job
// has secrets (`secrets` may be null: none).
class StepOutput {
 public:
  StepOutput(LogSender* logs, uint32_t step_index, const JobSecrets* secrets);

  // The step runner's sink: the next bytes of the step's output, at `offset` of it.
  void Write(int64_t offset, absl::string_view data);
  // The step ended: sends what the redactor held back. Returns the length of the step's output
  // as sent (`raw_bytes`, what the step wrote, when nothing is redacted).
  int64_t Finish(int64_t raw_bytes);

 private:
  LogSender* const logs_;
  const uint32_t step_index_;
  std::optional<common::Redactor> redactor_;
  std::string out_;  // the redacted bytes of one Write (reused)
};

}  // namespace farm::agent
