// Retention of finished jobs: which of them may be removed, in what order, and removing them a
// bounded number at a time on the engine thread (like the event history's sweep).
//
// The index (Cf::kRetention, keys beginning with "f"):
//   "f" | end_ms(8) | job seq(8) → log bytes(8) | flags(1) | pipeline seq(8) (0: none)
// one entry per finished job that may go, in the order it may go. A job submitted on its own is
// indexed when it ends, at its finished_ms; the jobs of a pipeline when the pipeline's last job
// ends, all at that instant. So a job that has not ended, or whose pipeline still runs, is never
// in the index and never removed. The entry is written in the group of the transition that ends
// the job (or the pipeline), so it is durable exactly when the end is.
//
// Policies (RetentionPolicy), applied by Sweep in index order, oldest first:
//   - job_retention_ms: the job's record, all its output, its step progress and its pipeline
//     summary go, in one group; its pipeline's record once the pipeline's last job has gone. The
//     meta floor of job ids (keys::kNextSeq) is raised so that no id is ever reused.
//   - log_retention_ms and max_log_bytes: only the output goes; a marker takes its place
//     (keys::LogsRemovedKey: the time and the policy), so readers can say what became of it. The
//     log bytes of indexed jobs that still have their output are counted (Cf::kMeta
//     "retention/log_bytes"), from the step results' log_bytes (what the agent reported, at most
//     the per-job limit per attempt); while the count is above max_log_bytes the oldest go.
// Artifacts are not touched here: their pins expire on their own (--artifact_retention) and the
// CAS evicts unpinned blobs by size. Events have their own retention (event_recorder.h).
//
// Data dirs from before the index: jobs that ended before it existed are indexed by a one-time
// backfill that runs a bounded number of job records per sweep (Cf::kMeta
// "retention/backfill": the next seq to look at, and the end), oldest first.
//
// Engine thread only. Errors: the store's read errors, DATA_LOSS for a malformed index entry or
// meta value.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "coordinator/scheduler/engine.h"
#include "coordinator/scheduler/job_counts.h"
#include "farm/v1/farm.pb.h"

namespace farm::coordinator {

struct RetentionPolicy {
  // A finished job is removed this long after it ended (its pipeline's end for a pipeline's
  // job); 0 keeps jobs forever.
  int64_t job_retention_ms = 30LL * 24 * 3600'000;
  // A finished job's output is removed this long after it ended (earlier than the job when
  // shorter); 0: as long as the job.
  int64_t log_retention_ms = 14LL * 24 * 3600'000;
  // Output of finished jobs kept in all; past it the oldest job's output goes. 0: no limit.
  int64_t max_log_bytes = int64_t{50} << 30;
  // Whether the engine's periodic sweep runs passes by itself; else only CollectGarbage does.
  bool background = true;
  // The per-job output limit (what one attempt stores at most), for the byte count.
  int64_t max_log_bytes_per_job = int64_t{1} << 30;
};

// What a sweep removed (or, in a dry run, would remove).
struct RetentionReport {
  int64_t jobs = 0;        // job records removed
  int64_t pipelines = 0;   // pipeline records removed (their last job went)
  int64_t logs = 0;        // jobs whose output was removed (with the record or alone)
  int64_t log_bytes = 0;   // their output's bytes
  int64_t backfilled = 0;  // old finished jobs indexed
  bool more = false;       // the pass stopped at its bound: more is due now
  // Job seqs removed (records or output), for compacting their ranges afterwards.
  uint64_t min_seq = 0;
  uint64_t max_seq = 0;
};

class Retention {
 public:
  // Index entries a sweep handles at most (removals, log removals and backfilled records).
  static constexpr size_t kMaxPerSweep = 2000;
  // The output byte count and the log cursor.
  static constexpr absl::string_view kLogBytesKey = "retention/log_bytes";
  static constexpr absl::string_view kLogCursorKey = "retention/log_cursor";
  static constexpr absl::string_view kBackfillKey = "retention/backfill";

  // `counts` (may be null) is told of every job record a sweep removes, in the same write.
  Retention(common::Clock* clock, RetentionPolicy policy, JobCounts* counts = nullptr)
      : clock_(clock), policy_(policy), counts_(counts) {}

  // Loads the byte count, the log cursor and where the backfill stands.
  absl::Status Recover(Store* store);

  // `job` (as just written in this group) ended: indexes it, or, for a pipeline's job, the whole
  // pipeline once none of its jobs is left unfinished.
  absl::Status OnJobEnded(Txn& txn, const farm::v1::Job& job);

  // One bounded pass: the backfill, then removals of jobs past job_retention_ms, then of output
  // past log_retention_ms or max_log_bytes. With dry_run it writes nothing and reports what a
  // pass would remove (bounded the same way). Without `force`, a pass that found nothing to do
  // waits a second before the next looks again.
  absl::StatusOr<RetentionReport> Sweep(Txn& txn, bool dry_run = false, bool force = false);

  int64_t log_bytes() const { return log_bytes_; }
  // The job seqs removed (records or output) since the last call, as [min, max] (0, 0: none):
  // what to compact.
  std::pair<uint64_t, uint64_t> TakeRemovedRange();
  const RetentionPolicy& policy() const { return policy_; }

  // The index key of a job that may go at end_ms.
  static std::string IndexKey(int64_t end_ms, uint64_t seq);
  // A job's output bytes as its record tells them.
  int64_t LogBytesOf(const farm::v1::Job& job) const;

 private:
  struct Entry {
    std::string key;
    int64_t end_ms = 0;
    uint64_t seq = 0;
    int64_t log_bytes = 0;
    bool logs_removed = false;
    uint64_t pseq = 0;
  };
  // What a sweep knows of a pipeline: whether it exists, whether all its jobs ended (and when),
  // and its last job (the one whose removal takes the pipeline's record along).
  struct PipelineState {
    bool exists = false;
    bool done = false;
    int64_t end_ms = 0;
    uint64_t last_seq = 0;
  };
  // One sweep's progress; committed to the members at its end (never in a dry run).
  struct Pass {
    bool dry_run = false;
    size_t budget = 0;  // index entries or job records it may still look at
    int64_t log_bytes = 0;
    std::string log_cursor;
    int64_t now_ms = 0;
  };
  static std::string EncodeEntry(int64_t log_bytes, bool logs_removed, uint64_t pseq);
  static absl::StatusOr<Entry> DecodeEntry(absl::string_view key, absl::string_view value);
  static absl::StatusOr<std::vector<Entry>> ReadEntries(Txn& txn, absl::string_view start,
                                                        absl::string_view limit, size_t max);

  // Adds an index entry (counting its bytes), unless `only_if_absent` finds it there already.
  absl::Status Index(Txn& txn, const farm::v1::Job& job, int64_t end_ms, bool only_if_absent);
  // Indexes every ended job of the pipeline at end_ms (those not indexed yet).
  absl::Status IndexPipeline(Txn& txn, const farm::v1::Pipeline& pipeline, int64_t end_ms);
  // The pipeline as this sweep sees it (read once per sweep).
  absl::StatusOr<PipelineState> Pipeline(Txn& txn, uint64_t pseq);
  // True for an entry of a pipeline that runs again (it is dropped: indexed anew at its end).
  absl::StatusOr<bool> Stale(Txn& txn, Pass& pass, const Entry& e);

  absl::Status Backfill(Txn& txn, Pass& pass, RetentionReport& report);
  absl::Status RemoveJobs(Txn& txn, Pass& pass, RetentionReport& report);
  absl::Status RemoveLogs(Txn& txn, Pass& pass, RetentionReport& report);
  static void Note(RetentionReport& report, uint64_t seq);
  // Tells counts_ of the removal of job `seq` (its record read for its state).
  absl::Status CountRemoval(Txn& txn, uint64_t seq);
  // Writes the byte count, the log cursor and the backfill's place once, before this group's
  // write.
  void PersistBeforeWrite(Txn& txn);

  common::Clock* const clock_;
  const RetentionPolicy policy_;
  JobCounts* const counts_;
  int64_t log_bytes_ = 0;
  std::string log_cursor_;      // index keys before it have had their output looked at
  uint64_t backfill_next_ = 0;  // 0: not started
  uint64_t backfill_end_ = 0;   // next == end: done
  uint64_t persist_group_ = 0;  // the group whose write persists the above
  int64_t next_sweep_ms_ = 0;   // monotonic
  std::map<uint64_t, PipelineState> pipelines_;  // during one sweep
  RetentionReport removed_;                      // min_seq and max_seq since TakeRemovedRange
};

}  // namespace farm::coordinator
