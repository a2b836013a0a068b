// The job lifecycle: the one place where a job's state changes. Every transition goes through
// Transition, which
//   1. checks that it is legal (the table in job_lifecycle.cc; an illegal one is a bug, INTERNAL),
//   2. sets the state, the reason and the times,
//   3. keeps the indexes that follow from the state (the queue, the WAITING index),
//   4. writes the job (jobs::Put: with its pipeline summary),
//   5. appends the events it makes (submitted, queued, waiting, leased, ended),
//   6. wakes the job's followers once the group commits,
//   7. and when the job ends, runs the end-of-job cascade in the same group: its
//      concurrency-group place goes to the next waiter, and the jobs of its pipeline that need
//      it are skipped, cancelled or made ready (and so on, as far as it reaches).
// No other code assigns a job's state.
//
// The cascade is part of the transition: if any of it fails (a read error), the whole group is
// failed (Txn::Fail; nothing of it is written, memory is rebuilt from the store) and the error
// returned, so a retry finds the job as it was and runs all of it again. Nothing half-done is
// ever committed.
//
// Legal transitions: (new) → WAITING | QUEUED; WAITING → WAITING (another reason) | QUEUED |
// SUCCEEDED (a job without steps) | CANCELLED | SKIPPED | FAILED; QUEUED → RUNNING |
// CANCELLED; RUNNING → QUEUED (requeued) | SUCCEEDED | FAILED | CANCELLED. Final states are
// final.
//
// Engine thread only. Errors: INTERNAL (an illegal transition), the store's read errors and
// DATA_LOSS from the cascade (the group is then failed).
#pragma once

#include <deque>
#include <string>

#include "absl/status/status.h"
#include "common/clock.h"
#include "coordinator/logs/follower_hub.h"
#include "coordinator/scheduler/concurrency_groups.h"
#include "coordinator/scheduler/engine.h"
#include "coordinator/scheduler/event_recorder.h"
#include "coordinator/scheduler/flow_metrics.h"
#include "coordinator/scheduler/job_counts.h"
#include "coordinator/scheduler/pipeline_graph.h"
#include "coordinator/scheduler/queue_index.h"
#include "coordinator/scheduler/retention.h"
#include "farm/v1/farm.pb.h"

namespace farm::coordinator {

class JobLifecycle {
 public:
  struct Parts {
    common::Clock* clock;
    QueueIndex* queue;
    ConcurrencyGroups* groups;
    PipelineGraph* pipelines;
    EventRecorder* events;
    FollowerHub* hub;
    Retention* retention = nullptr;  // indexes jobs that end (none: nothing is ever removed)
    JobCounts* counts = nullptr;     // told of every transition when set (issue 13)
    FlowMetrics* flow = nullptr;     // told of every transition when set (metrics served)
  };
  explicit JobLifecycle(Parts parts) : p_(parts) {}

  // See above. `job` is the caller's copy; it holds the new state afterwards.
  absl::Status Transition(Txn& txn, farm::v1::Job& job, farm::v1::JobState to, std::string reason);

  // A new job (state unset, id and spec set) enters: WAITING for the jobs it needs (with
  // `waiting_reason`), or ready.
  absl::Status Submit(Txn& txn, farm::v1::Job& job, std::string waiting_reason);
  // The job's needs are met: it takes a place in its concurrency group or waits for one
  // (WAITING); then it is queued, or a job without steps succeeds at once.
  absl::Status MakeReady(Txn& txn, farm::v1::Job& job);
  // A user's cancel of a QUEUED or WAITING job: it ends CANCELLED. (A RUNNING one is asked to
  // stop by its lease; see attempts.h.)
  absl::Status CancelNotRunning(Txn& txn, farm::v1::Job& job);
  // Writes a change that is not a state change (a cancel request of a running job), with its
  // event, and wakes the job's followers.
  void Record(Txn& txn, const farm::v1::Job& job, farm::v1::Event event);

  // After the group commits, wakes the followers of job `seq`.
  void NotifyAfterCommit(Txn& txn, uint64_t seq);

 private:
  // Events of a transition from `from` to the job's state; returns the job's label-set id.
  uint64_t AppendEvents(Txn& txn, const farm::v1::Job& job, farm::v1::JobState from, int64_t now);
  // What the cascade needs of a job that ended.
  struct Ended {
    uint64_t seq;
    std::string group;
    std::string pipeline_id;
    std::string pipeline_job;
  };
  absl::Status RunCascade(Txn& txn);
  absl::Status EndCascade(Txn& txn, const Ended& ended);

  Parts p_;
  bool cascading_ = false;
  std::deque<Ended> ended_;  // ended jobs whose cascade has not run yet
};

}  // namespace farm::coordinator
