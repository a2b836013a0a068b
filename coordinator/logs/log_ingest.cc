#include "coordinator/logs/log_ingest.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/logs/log_reader.h"
#include "coordinator/store/keys.h"

namespace farm::coordinator {

void LogIngest::Track(uint64_t seq, uint32_t attempt, size_t steps) {
  Attempt& a = attempts_[seq];
  a.number = attempt;
  a.steps.assign(steps, 0);
  a.total = 0;
}

absl::Status LogIngest::Recover(Store* store, uint64_t seq, uint32_t attempt, size_t steps) {
  Attempt a;
  a.number = attempt;
  a.steps.assign(steps, 0);
  for (size_t i = 0; i < steps; ++i) {
    FARM_ASSIGN_OR_RETURN(a.steps[i],
                          CommittedLogLength(store, seq, attempt, static_cast<uint32_t>(i)));
    a.total += a.steps[i];
  }
  attempts_[seq] = std::move(a);
  return absl::OkStatus();
}

void LogIngest::Forget(uint64_t seq) { attempts_.erase(seq); }

int64_t LogIngest::Committed(uint64_t seq, uint32_t step) const {
  auto it = attempts_.find(seq);
  if (it == attempts_.end() || step >= it->second.steps.size()) return 0;
  return it->second.steps[step];
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
  std::string bytes(data.substr(static_cast<size_t>(committed - offset)));
  const int64_t room = max_bytes_per_job_ - a.total;
  const int64_t at = committed;
  if (static_cast<int64_t>(bytes.size()) > room) {
    bytes.resize(static_cast<size_t>(room));
    absl::StrAppend(&bytes, "\n[farm: output truncated: the job reached its limit of ",
                    max_bytes_per_job_, " bytes]\n");
    a.total = max_bytes_per_job_;
  } else {
    a.total += static_cast<int64_t>(bytes.size());
  }
  committed = end;
  out.record.emplace(keys::LogKey(seq, attempt, step, static_cast<uint64_t>(at)), std::move(bytes));
  out.committed = committed;
  return out;
}

}  // namespace farm::coordinator
