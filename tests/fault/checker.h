// The fault suite's history checker, in the manner of Jepsen: it submits jobs through the public
// farm.v1 API exactly as a careful client would (a fresh request id per job, retried with the
// SAME id on UNAVAILABLE and DEADLINE_EXCEEDED by common::FarmClient, the retry policy farmctl
// uses too), records the outcome of every submit, and at the end reads every job in the farm and
// judges the history:
//
//   submitted=2000 acked=2000 lost=0 duplicated_completions=0 unexpected=0 reruns=7
//
// - submitted: Submit operations started (distinct request ids).
// - acked: those the coordinator acknowledged with a job id.
// - lost: an acknowledged job that is missing, or that has not ended by the deadline, or that
//   was CANCELLED (nobody cancels in these tests).
// - duplicated_completions: a job with more than one accepted result (attempts whose outcome is
//   SUCCEEDED or FAILED), or a step side effect showing one attempt running to completion twice
//   (two executions under one lease: a reused epoch).
// - unexpected: a job the checker never submitted; a second job for one request id; a job for
//   a submit the coordinator definitely refused (a non-retryable error at the first try); a
//   FAILED job; a side effect from an attempt the coordinator has no record of; a SUCCEEDED
//   attempt whose step left no side effect.
// - reruns: attempts beyond the first (at-least-once execution is allowed, and counted).
//
// Side effects: a job's step may append the line "$FARM_JOB_ID $FARM_ATTEMPT" to one shared file
// (EffectStep() builds that step); the checker then cross-checks executions against attempts.
//
// A submit that gave up while still retrying has an unknown outcome (like Jepsen's :info): a job
// for it may or may not exist, and either is accepted.
//
// Thread-safe: Submit may be called from many threads at once; the coordinator may be killed and
// restarted at any moment (every call retries until its own deadline).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/channel.h"
#include "common/farm_client.h"
#include "farm/v1/farm.grpc.pb.h"

namespace farm::fault {

struct CheckReport {
  int64_t submitted = 0;
  int64_t acked = 0;
  int64_t lost = 0;
  int64_t duplicated_completions = 0;
  int64_t unexpected = 0;
  int64_t reruns = 0;
  // One line per finding (the first 50), to print when the check fails.
  std::vector<std::string> problems;

  // "submitted=N acked=N lost=N duplicated_completions=N unexpected=N reruns=N".
  std::string Line() const;
  bool ok() const { return lost == 0 && duplicated_completions == 0 && unexpected == 0; }
};

struct CheckerOptions {
  // Deadline of one RPC.
  absl::Duration rpc_timeout = absl::Seconds(5);
  // How long one Submit keeps retrying before it gives up (its outcome is then unknown).
  absl::Duration submit_give_up = absl::Seconds(90);
  // How to reach the coordinator (MiniFarm::admin_security() for a farm with TLS).
  common::ClientSecurity security = [] {
    common::ClientSecurity insecure;
    insecure.insecure = true;
    return insecure;
  }();
};

class Checker {
 public:
  // A checker talking to the coordinator at `target` ("HOST:PORT"). The address must stay the
  // same across coordinator restarts. INVALID_ARGUMENT for an empty target.
  static absl::StatusOr<std::unique_ptr<Checker>> Create(const std::string& target,
                                                         CheckerOptions options = {});

  // Submits `spec` under a fresh request id and retries it with the same id on UNAVAILABLE and
  // DEADLINE_EXCEEDED (common::FarmClient's policy, with a budget of submit_give_up) until it is
  // acknowledged or the budget is spent. The job id; otherwise the last error (DEADLINE_EXCEEDED
  // when it gave up while retrying: outcome unknown; any other code: the submit was refused).
  absl::StatusOr<std::string> Submit(const farm::v1::JobSpec& spec);

  // Every job in the farm (JobService.List, all pages), retrying UNAVAILABLE until `timeout`.
  absl::StatusOr<std::vector<farm::v1::Job>> ReadAllJobs(absl::Duration timeout);

  // Waits until every acknowledged job has ended (polling ReadAllJobs) or `timeout` passes, then
  // judges the history as described above. `effects_path`: the file EffectStep() steps append to
  // (empty: no side-effect checks). Errors only when the jobs cannot be read at all.
  absl::StatusOr<CheckReport> WaitAndCheck(absl::Duration timeout,
                                           const std::string& effects_path = "");

  int64_t submitted() const;
  int64_t acked() const;

 private:
  enum class Outcome { kPending, kAcked, kRefused, kUnknown };
  struct Record {
    Outcome outcome = Outcome::kPending;
    std::string job_id;
    std::string error;
  };

  Checker(std::unique_ptr<common::FarmClient> client, CheckerOptions options);
  std::string NewRequestId();
  CheckReport Judge(const std::vector<farm::v1::Job>& jobs, const std::string& effects_path);

  const CheckerOptions options_;
  std::unique_ptr<common::FarmClient> client_;

  mutable absl::Mutex mu_;
  std::map<std::string, Record> records_ ABSL_GUARDED_BY(mu_);  // by request id
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  std::string id_prefix_;  // random per checker, so ids never collide across checkers
};

// A step that records its execution for the checker: appends "$FARM_JOB_ID $FARM_ATTEMPT" to
// `effects_path` (one short O_APPEND write, atomic between concurrent steps).
farm::v1::StepSpec EffectStep(const std::string& effects_path);

// Lines of the effects file that are complete (end with a newline); 0 when it does not exist.
int64_t CountEffects(const std::string& effects_path);

}  // namespace farm::fault
