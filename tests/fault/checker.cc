#include "tests/fault/checker.h"

#include <grpcpp/client_context.h>

#include <fstream>
#include <random>
#include <set>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"

namespace farm::fault {
namespace {

constexpr size_t kMaxProblems = 50;

bool Ended(farm::v1::JobState state) {
  return state == farm::v1::SUCCEEDED || state == farm::v1::FAILED || state == farm::v1::CANCELLED;
}

void Note(CheckReport& report, std::string problem) {
  if (report.problems.size() < kMaxProblems) report.problems.push_back(std::move(problem));
}

}  // namespace

std::string CheckReport::Line() const {
  return absl::StrCat("submitted=", submitted, " acked=", acked, " lost=", lost,
                      " duplicated_completions=", duplicated_completions,
                      " unexpected=", unexpected, " reruns=", reruns);
}

absl::StatusOr<std::unique_ptr<Checker>> Checker::Create(const std::string& target,
                                                         CheckerOptions options) {
  common::RetryPolicy policy;
  policy.call_timeout_ms = absl::ToInt64Milliseconds(options.rpc_timeout);
  policy.budget_ms = absl::ToInt64Milliseconds(options.submit_give_up);
  policy.initial_backoff_ms = 50;
  policy.max_backoff_ms = 1000;
  FARM_ASSIGN_OR_RETURN(std::unique_ptr<common::FarmClient> client,
                        common::FarmClient::Create(target, options.security, std::move(policy)));
  return std::unique_ptr<Checker>(new Checker(std::move(client), options));
}

Checker::Checker(std::unique_ptr<common::FarmClient> client, CheckerOptions options)
    : options_(options), client_(std::move(client)) {
  std::random_device random;
  id_prefix_ = absl::StrFormat("chk-%08x%08x-", random(), random());
}

std::string Checker::NewRequestId() {
  absl::MutexLock lock(&mu_);
  return absl::StrCat(id_prefix_, next_id_++);
}

int64_t Checker::submitted() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(records_.size());
}

int64_t Checker::acked() const {
  absl::MutexLock lock(&mu_);
  int64_t n = 0;
  for (const auto& [id, record] : records_) n += record.outcome == Outcome::kAcked;
  return n;
}

absl::StatusOr<std::string> Checker::Submit(const farm::v1::JobSpec& spec) {
  farm::v1::SubmitJobRequest request;
  *request.mutable_spec() = spec;
  request.set_request_id(NewRequestId());
  {
    absl::MutexLock lock(&mu_);
    records_[request.request_id()] = Record();
  }
  common::CallInfo info;
  absl::StatusOr<farm::v1::SubmitJobResponse> response = client_->Submit(request, &info);
  absl::MutexLock lock(&mu_);
  Record& record = records_[request.request_id()];
  if (response.ok()) {
    record.outcome = Outcome::kAcked;
    record.job_id = response->job_id();
    return response->job_id();
  }
  const absl::Status& last = response.status();
  record.error = last.ToString();
  if (client_->policy().IsRetryable(last)) {
    record.outcome = Outcome::kUnknown;
    return absl::DeadlineExceededError(
        absl::StrCat("submit ", request.request_id(),
                     " still failing when the checker gave up: ", last.ToString()));
  }
  // A refusal after a try that may have taken effect (a retried one: it may have been queued in
  // a coordinator that was about to die) proves nothing about that try.
  record.outcome = info.tries > 1 ? Outcome::kUnknown : Outcome::kRefused;
  return last;
}

absl::StatusOr<std::vector<farm::v1::Job>> Checker::ReadAllJobs(absl::Duration timeout) {
  common::RetryPolicy policy = client_->policy();
  policy.budget_ms = absl::ToInt64Milliseconds(timeout);
  common::RetryLoop retry(policy, client_->channel().get(), /*budget_from_now=*/true);
  std::vector<farm::v1::Job> jobs;
  std::string page_token;
  int limit = 1000;
  while (true) {
    farm::v1::ListJobsRequest request;
    request.set_limit(limit);
    request.set_page_token(page_token);
    absl::StatusOr<farm::v1::ListJobsResponse> response =
        client_->CallOnce(&farm::v1::JobService::Stub::List, client_->jobs(), request);
    if (response.status().code() == absl::StatusCode::kResourceExhausted && limit > 1) {
      // A page of large jobs exceeds the 16 MiB message limit: ask for smaller pages.
      limit /= 2;
      continue;
    }
    if (!response.ok()) {
      if (!retry.Failed(response.status())) return response.status();
      continue;
    }
    for (farm::v1::Job& job : *response->mutable_jobs()) jobs.push_back(std::move(job));
    if (response->next_page_token().empty()) return jobs;
    page_token = response->next_page_token();
  }
}

absl::StatusOr<CheckReport> Checker::WaitAndCheck(absl::Duration timeout,
                                                  const std::string& effects_path) {
  const absl::Time deadline = absl::Now() + timeout;
  std::set<std::string> acked_ids;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, record] : records_) {
      if (record.outcome == Outcome::kAcked) acked_ids.insert(record.job_id);
    }
  }
  std::vector<farm::v1::Job> jobs;
  while (true) {
    FARM_ASSIGN_OR_RETURN(jobs, ReadAllJobs(std::max(deadline - absl::Now(), absl::Seconds(5))));
    size_t ended = 0;
    for (const farm::v1::Job& job : jobs) ended += acked_ids.count(job.id()) && Ended(job.state());
    if (ended == acked_ids.size() || absl::Now() >= deadline) break;
    absl::SleepFor(absl::Milliseconds(200));
  }
  return Judge(jobs, effects_path);
}

CheckReport Checker::Judge(const std::vector<farm::v1::Job>& jobs,
                           const std::string& effects_path) {
  CheckReport report;
  absl::MutexLock lock(&mu_);
  report.submitted = static_cast<int64_t>(records_.size());

  std::map<std::string, const farm::v1::Job*> by_id;
  std::map<std::string, std::vector<const farm::v1::Job*>> by_request;
  for (const farm::v1::Job& job : jobs) {
    by_id[job.id()] = &job;
    by_request[job.request_id()].push_back(&job);
  }

  for (const auto& [request_id, record] : records_) {
    if (record.outcome != Outcome::kAcked) continue;
    ++report.acked;
    auto it = by_id.find(record.job_id);
    if (it == by_id.end()) {
      ++report.lost;
      Note(report, absl::StrCat("lost: acknowledged job ", record.job_id, " (request ", request_id,
                                ") does not exist"));
      continue;
    }
    const farm::v1::JobState state = it->second->state();
    if (!Ended(state) || state == farm::v1::CANCELLED) {
      ++report.lost;
      Note(report, absl::StrCat("lost: acknowledged job ", record.job_id, " is ",
                                farm::v1::JobState_Name(state),
                                " at the deadline: ", it->second->reason()));
    }
  }

  for (const farm::v1::Job& job : jobs) {
    auto record = records_.find(job.request_id());
    if (record == records_.end()) {
      ++report.unexpected;
      Note(report, absl::StrCat("unexpected: job ", job.id(), " has request id \"",
                                job.request_id(), "\", which the checker never sent"));
    } else if (record->second.outcome == Outcome::kRefused) {
      ++report.unexpected;
      Note(report, absl::StrCat("unexpected: job ", job.id(), " exists although its submit was ",
                                "refused: ", record->second.error));
    } else if (const auto& same = by_request[job.request_id()];
               same.size() > 1 &&
               (record->second.outcome == Outcome::kAcked ? record->second.job_id != job.id()
                                                          : same.back()->id() != job.id())) {
      // (Without an acknowledgement, the oldest job of the request is its rightful one.)
      ++report.unexpected;
      Note(report, absl::StrCat("unexpected: job ", job.id(), " is a second job for request ",
                                job.request_id()));
    }
    if (job.state() == farm::v1::FAILED) {
      ++report.unexpected;
      Note(report, absl::StrCat("unexpected: job ", job.id(), " FAILED: ", job.reason()));
    }
    int accepted = 0;
    for (const farm::v1::Attempt& attempt : job.attempts()) {
      accepted += attempt.outcome() == farm::v1::ATTEMPT_SUCCEEDED ||
                  attempt.outcome() == farm::v1::ATTEMPT_FAILED;
    }
    if (accepted > 1) {
      ++report.duplicated_completions;
      Note(report, absl::StrCat("duplicated completion: job ", job.id(), " has ", accepted,
                                " accepted results: ", job.ShortDebugString()));
    }
    if (job.attempts_size() > 1) report.reruns += job.attempts_size() - 1;
  }

  if (effects_path.empty()) return report;
  std::map<std::pair<std::string, uint32_t>, int> executions;
  std::ifstream in(effects_path);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
    uint32_t attempt = 0;
    if (fields.size() != 2 || !absl::SimpleAtoi(fields[1], &attempt)) {
      ++report.unexpected;
      Note(report, absl::StrCat("unexpected: malformed side effect \"", line, "\""));
      continue;
    }
    ++executions[{fields[0], attempt}];
  }
  for (const auto& [key, count] : executions) {
    const auto& [job_id, attempt] = key;
    if (count > 1) {
      ++report.duplicated_completions;
      Note(report, absl::StrCat("duplicated completion: job ", job_id, " attempt ", attempt,
                                " ran to completion ", count, " times (one lease, two runs)"));
    }
    auto it = by_id.find(job_id);
    if (it == by_id.end() || attempt < 1 ||
        attempt > static_cast<uint32_t>(it->second->attempts_size())) {
      ++report.unexpected;
      Note(report, absl::StrCat("unexpected: job ", job_id, " attempt ", attempt,
                                " ran, but the coordinator has no record of that attempt"));
    }
  }
  for (const farm::v1::Job& job : jobs) {
    if (job.state() != farm::v1::SUCCEEDED) continue;
    for (const farm::v1::Attempt& attempt : job.attempts()) {
      if (attempt.outcome() != farm::v1::ATTEMPT_SUCCEEDED) continue;
      if (executions.count({job.id(), attempt.number()}) == 0) {
        ++report.unexpected;
        Note(report, absl::StrCat("unexpected: job ", job.id(), " attempt ", attempt.number(),
                                  " SUCCEEDED but its step left no side effect"));
      }
    }
  }
  return report;
}

farm::v1::StepSpec EffectStep(const std::string& effects_path) {
  farm::v1::StepSpec step;
  step.set_name("effect");
  step.set_run(absl::StrCat("echo \"$FARM_JOB_ID $FARM_ATTEMPT\" >> '", effects_path, "'"));
  return step;
}

int64_t CountEffects(const std::string& effects_path) {
  std::ifstream in(effects_path, std::ios::binary);
  if (!in) return 0;
  int64_t lines = 0;
  char buffer[1 << 16];
  while (in.read(buffer, sizeof(buffer)) || in.gcount() > 0) {
    for (std::streamsize i = 0; i < in.gcount(); ++i) lines += buffer[i] == '\n';
  }
  return lines;
}

}  // namespace farm::fault
