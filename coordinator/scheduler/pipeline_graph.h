// The pipeline graph: jobs that need other jobs (a DAG, checked and expanded at submit by
// common/pipeline.h). A pipeline is created in one write: its record (Cf::kPipelines: each
// job's name, id, input directory and needs) and its jobs. This part decides what becomes of a
// job that waits for its needs when one of them ends: it is SKIPPED (CANCELLED once the
// pipeline was cancelled) when a need did not succeed, else ready once every need succeeded,
// with their artifacts as its inputs. The job lifecycle (job_lifecycle.h) applies the decision
// in the same group as the end that caused it, so a cascade is never lost.
//
// A pipeline's own state is never stored: it is derived from its jobs when read (FillView).
//
// Engine thread only, except FillView. Errors: DATA_LOSS (a missing or corrupt pipeline
// record), the store's read errors.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/pipeline.h"
#include "coordinator/scheduler/engine.h"
#include "farm/v1/farm.pb.h"

namespace farm::coordinator {

// What becomes of a job that waited for its needs.
struct NeedsDecision {
  farm::v1::Job job;
  // SKIPPED, CANCELLED or FAILED: it ends so; JOB_STATE_UNSPECIFIED: it is ready (its inputs
  // filled in).
  farm::v1::JobState end = farm::v1::JOB_STATE_UNSPECIFIED;
  std::string reason;
};

class PipelineGraph {
 public:
  // A job's inputs (the artifact lists of the jobs it needs) are part of its record and of the
  // lease sent to the agent, next to its spec and its own artifacts: at most this many bytes.
  static constexpr size_t kMaxInputListBytes = 2 << 20;
  // A pipeline's record (each job's name, id, input directory and needs), read back whole.
  static constexpr size_t kMaxRecordBytes = 2 << 20;

  // Loads the pipeline counter.
  absl::Status Recover(Store* store);

  // The size check of a pipeline's record, before anything is created. INVALID_ARGUMENT.
  static absl::Status CheckRecordSize(const std::vector<common::ExpandedJob>& jobs);
  // Creates the pipeline record and its jobs (ids from `next_job_seq`, not yet written, state
  // unset), in expansion order; the pipeline and each job say `submitted_by`.
  farm::v1::Pipeline Create(Txn& txn, const std::string& name, const std::string& request_id,
                            int64_t now_ms, std::vector<common::ExpandedJob> expanded,
                            const std::function<uint64_t()>& next_job_seq,
                            std::vector<farm::v1::Job>* jobs, const std::string& submitted_by = "");
  absl::StatusOr<std::optional<farm::v1::Pipeline>> Load(Txn& txn, uint64_t pseq);
  // Marks the pipeline cancelled (written in this group, before its jobs are cancelled: the
  // cascade reads it to cancel rather than skip).
  void MarkCancelled(Txn& txn, farm::v1::Pipeline& pipeline);

  // The jobs of pipeline `pipeline_id` that wait for its job `ended` (by name) that just
  // ended, and what becomes of each now.
  absl::StatusOr<std::vector<NeedsDecision>> Resolve(Txn& txn, const std::string& pipeline_id,
                                                     const std::string& ended);
  // What becomes of a job waiting for its needs, given their states now (nullopt: it waits on).
  absl::StatusOr<std::optional<NeedsDecision>> Decide(Txn& txn, const farm::v1::Pipeline& pipeline,
                                                      farm::v1::Job job);

 private:
  uint64_t last_pipeline_seq_ = 0;
};

// Fills each job's state, times and attempts from `summary_of` (the job's summary, or nullopt
// when unknown) and derives the pipeline's state. Any thread.
void FillView(farm::v1::Pipeline& pipeline,
              const std::function<std::optional<farm::v1::PipelineJob>(size_t index)>& summary_of);
absl::StatusOr<farm::v1::Pipeline> ParsePipeline(absl::string_view raw, uint64_t seq);

// Scans one family (Txn::Scan or Store::Scan): keys in [start, limit) in order.
using ScanRange = std::function<absl::Status(absl::string_view start, absl::string_view limit,
                                             const Store::ScanFn& fn)>;
// Loads a job (for a pipeline job without a summary: one written before summaries existed).
using LoadJob = std::function<absl::StatusOr<std::optional<farm::v1::Job>>(uint64_t seq)>;
// The pipeline's view from its jobs' summaries (Cf::kPipelineJobs, read with `scan_summaries`:
// one scan, not one read per job). Any thread.
absl::Status FillViewFromSummaries(farm::v1::Pipeline& pipeline, const ScanRange& scan_summaries,
                                   const LoadJob& load_job);
// The same with the summaries already collected (job seq → summary).
absl::Status FillViewFromSummaries(farm::v1::Pipeline& pipeline,
                                   const std::map<uint64_t, farm::v1::PipelineJob>& summaries,
                                   const LoadJob& load_job);

}  // namespace farm::coordinator
