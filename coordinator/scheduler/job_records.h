// How a job is stored. A job's record (Cf::kJobs) holds its spec, state and finished attempts;
// the attempt that is running keeps its step results apart (Cf::kProgress), so that a step
// report writes a few hundred bytes rather than the whole record (a spec may be 4 MiB, its
// inputs 2 MiB). A pipeline job also has a small summary (Cf::kPipelineJobs: state, times,
// attempts) so that a pipeline is read with one scan instead of one read per job.
//
// The writers (engine thread, through the group's Txn) keep the three consistent: PutJob writes
// the summary with the record; the progress record exists only while the job is RUNNING. The
// readers (any thread, straight from the store) merge them: a progress record counts only when it
// belongs to the job's current attempt (same number and epoch) and the job is RUNNING, so a
// reader that races a change sees either the old or the new state, never a mix.
//
// Errors: DATA_LOSS for a record that does not parse; the store's read errors.
#pragma once

#include <cstdint>
#include <optional>

#include "absl/status/statusor.h"
#include "coordinator/scheduler/engine.h"
#include "coordinator/store/store.h"
#include "farm/v1/farm.pb.h"

namespace farm::coordinator::jobs {

// Engine thread: the job as this group sees it (without the running attempt's progress).
absl::StatusOr<std::optional<farm::v1::Job>> Load(Txn& txn, uint64_t seq);
// Writes the record, and the summary of a pipeline job.
void Put(Txn& txn, const farm::v1::Job& job);
// The running attempt's step results.
void PutProgress(Txn& txn, uint64_t seq, const farm::v1::Attempt& attempt);
void DeleteProgress(Txn& txn, uint64_t seq);

// Any thread: the committed job with its running attempt's progress merged in.
absl::StatusOr<std::optional<farm::v1::Job>> Read(Store* store, uint64_t seq);
// Parses a job record (DATA_LOSS naming the job when it does not parse).
absl::StatusOr<farm::v1::Job> Parse(absl::string_view raw, uint64_t seq);
// Puts `progress` in place of the job's last attempt when it is that attempt's and the job
// still runs. Returns whether it did.
bool MergeProgress(farm::v1::Job& job, const farm::v1::Attempt& progress);
// The summary of a pipeline job (state, times, attempts; no names or ids).
farm::v1::PipelineJob Summary(const farm::v1::Job& job);

}  // namespace farm::coordinator::jobs
