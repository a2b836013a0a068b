#include "coordinator/logs/log_ingest.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/logs/log_reader.h"
#include "coordinator/store/keys.h"

namespace farm::coordinator {

void LogIngest::Track(uint64_t seq, uint32_t attempt, size_t steps, Redaction redaction) {
  Attempt& a = attempts_[seq];
  a.number = attempt;
  a.steps.assign(steps, 0);
  a.total = 0;
  a.redacted.clear();
  if (redaction != nullptr) a.redacted.assign(steps, RedactedStep{common::Redactor(redaction), 0});
}

absl::Status LogIngest::Recover(Store* store, uint64_t seq, uint32_t attempt, size_t steps,
                                Redaction redaction) {
  Attempt a;
  a.number = attempt;
  a.steps.assign(steps, 0);
  if (redaction != nullptr) a.redacted.assign(steps, RedactedStep{common::Redactor(redaction), 0});
  for (size_t i = 0; i < steps; ++i) {
    const auto step = static_cast<uint32_t>(i);
    FARM_ASSIGN_OR_RETURN(int64_t stored, CommittedLogLength(store, seq, attempt, step));
    a.total += stored;
    a.steps[i] = stored;
    if (redaction == nullptr) continue;
    a.redacted[i].stored = stored;
    FARM_ASSIGN_OR_RETURN(std::optional<std::string> input,
                          store->Get(Cf::kMeta, keys::LogInputKey(seq, attempt, step)));
    if (input.has_value()) {
      if (input->size() != 8) {
        return absl::DataLossError(absl::StrCat("the committed input length of job ", seq, " step ",
                                                step, " is malformed"));
      }
      a.steps[i] = static_cast<int64_t>(keys::ReadU64(*input, 0));
    }
  }
  attempts_[seq] = std::move(a);
  return absl::OkStatus();
}

LogIngest::Redaction LogIngest::RedactionOf(const farm::v1::JobSpec& spec) const {
  if (spec.secrets().empty() || !source_) return nullptr;
  return source_(spec);
}

void LogIngest::TrackJob(uint64_t seq, uint32_t attempt, const farm::v1::JobSpec& spec) {
  Track(seq, attempt, static_cast<size_t>(spec.steps_size()), RedactionOf(spec));
}

absl::Status LogIngest::RecoverJob(Store* store, uint64_t seq, uint32_t attempt,
                                   const farm::v1::JobSpec& spec) {
  return Recover(store, seq, attempt, static_cast<size_t>(spec.steps_size()), RedactionOf(spec));
}

void LogIngest::Forget(uint64_t seq) { attempts_.erase(seq); }

int64_t LogIngest::Committed(uint64_t seq, uint32_t step) const {
  auto it = attempts_.find(seq);
  if (it == attempts_.end() || step >= it->second.steps.size()) return 0;
  return it->second.steps[step];
}

LogIngest::Record LogIngest::InputRecord(uint64_t seq, const Attempt& a, uint32_t step) {
  return {keys::LogInputKey(seq, a.number, step), keys::U64(static_cast<uint64_t>(a.steps[step]))};
}

void LogIngest::StoreBytes(uint64_t seq, Attempt& a, uint32_t step, int64_t at, std::string bytes,
                           std::optional<Record>* out) {
  if (bytes.empty() || a.total >= max_bytes_per_job_) return;
  const int64_t room = max_bytes_per_job_ - a.total;
  if (static_cast<int64_t>(bytes.size()) > room) {
    bytes.resize(static_cast<size_t>(room));
    absl::StrAppend(&bytes, "\n[farm: output truncated: the job reached its limit of ",
                    max_bytes_per_job_, " bytes]\n");
    a.total = max_bytes_per_job_;
  } else {
    a.total += static_cast<int64_t>(bytes.size());
  }
  if (!a.redacted.empty()) a.redacted[step].stored = at + static_cast<int64_t>(bytes.size());
  out->emplace(keys::LogKey(seq, a.number, step, static_cast<uint64_t>(at)), std::move(bytes));
}

absl::StatusOr<LogIngest::Accepted> LogIngest::Accept(uint64_t seq, uint32_t attempt, uint32_t step,
                                                      int64_t offset, absl::string_view data) {
  auto it = attempts_.find(seq);
  if (it == attempts_.end() || it->second.number != attempt) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", seq, " attempt ", attempt, " is not running"));
  }
  Attempt& a = it->second;
  if (step >= a.steps.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "step_index ", step, " is out of range: the job has ", a.steps.size(), " steps"));
  }
  if (offset < 0) return absl::InvalidArgumentError("offset is negative");
  int64_t& committed = a.steps[step];
  const int64_t end = offset + static_cast<int64_t>(data.size());
  Accepted out;
  if (a.total >= max_bytes_per_job_) {
    // Past the limit: accept and drop, so that the agent moves on.
    committed = std::max(committed, end);
    if (!a.redacted.empty()) out.input_record = InputRecord(seq, a, step);
    out.committed = committed;
    return out;
  }
  if (offset > committed) {
    return absl::OutOfRangeError(absl::StrCat("output of step ", step, " has a gap: ", committed,
                                              " bytes are committed but the chunk starts at ",
                                              offset));
  }
  if (end <= committed) {  // already have all of it
    out.committed = committed;
    return out;
  }
  const absl::string_view fresh = data.substr(static_cast<size_t>(committed - offset));
  if (a.redacted.empty()) {
    StoreBytes(seq, a, step, committed, std::string(fresh), &out.record);
  } else {
    RedactedStep& r = a.redacted[step];
    std::string redacted;
    r.redactor.Feed(fresh, &redacted);
    StoreBytes(seq, a, step, r.stored, std::move(redacted), &out.record);
  }
  committed = end;
  if (!a.redacted.empty()) out.input_record = InputRecord(seq, a, step);
  out.committed = committed;
  return out;
}

std::optional<LogIngest::Record> LogIngest::FinishStep(uint64_t seq, uint32_t step) {
  auto it = attempts_.find(seq);
  if (it == attempts_.end() || it->second.redacted.empty() || step >= it->second.steps.size()) {
    return std::nullopt;
  }
  Attempt& a = it->second;
  RedactedStep& r = a.redacted[step];
  std::string held;
  r.redactor.Flush(&held);
  std::optional<Record> out;
  StoreBytes(seq, a, step, r.stored, std::move(held), &out);
  return out;
}

LogIngest::Ended LogIngest::End(uint64_t seq) {
  Ended ended;
  auto it = attempts_.find(seq);
  if (it == attempts_.end()) return ended;
  for (uint32_t step = 0; step < it->second.redacted.size(); ++step) {
    if (std::optional<Record> r = FinishStep(seq, step)) ended.logs.push_back(*std::move(r));
    ended.meta_deletes.push_back(keys::LogInputKey(seq, it->second.number, step));
  }
  attempts_.erase(it);
  return ended;
}

}  // namespace farm::coordinator
