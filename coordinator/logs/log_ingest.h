// Log ingest: decides what of an uploaded chunk of a running attempt's output is stored, and
// keeps the byte accounting that decision needs. Output is addressed by (job, attempt, step,
// byte offset); an upload may be resent after any failure, so a chunk's bytes that are already
// committed are skipped, a chunk that would leave a gap is refused, and past the job's limit
// one truncation marker is stored and the rest accepted but dropped (so that the agent moves
// on). The decision is pure: the caller writes the returned record (in the same group as
// everything else) and answers the committed length once it is durable.
//
// Redaction (common/redactor.h, the coordinator's half): an attempt of a job with secrets is
// tracked with the patterns of their values, and its output is stored redacted, whatever the
// agent did. Stored records are then keyed by offsets in the redacted stream (what readers and
// followers see) while `committed`, answered to the agent, stays in the agent's offsets; the
// latter is stored beside (Cf::kMeta, keys::LogInputKey) so that a restart resumes both. Bytes
// the redactor holds back (the start of a possible secret at a chunk's end) are stored when the
// step or the attempt ends; a crash in between loses them (they never show). Attempts without
// secrets take none of these paths.
//
// Owns: per running attempt, the committed length of each step's output and the job's total.
// Engine thread only (it is the scheduler's, beside the leases). Errors: INVALID_ARGUMENT (a
// bad step index or offset), OUT_OF_RANGE (a gap), FAILED_PRECONDITION (an attempt it does not
// track: the lease ended).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/redactor.h"
#include "coordinator/store/store.h"
#include "farm/v1/farm.pb.h"

namespace farm::coordinator {

class LogIngest {
 public:
  using Redaction = std::shared_ptr<const common::RedactionPatterns>;
  // The redaction of a job's output: the patterns of its secrets' values, null for none.
  using RedactionSource = std::function<Redaction(const farm::v1::JobSpec&)>;

  // `source` (may be empty: nothing is redacted) is asked only for jobs that name secrets.
  explicit LogIngest(int64_t max_bytes_per_job, RedactionSource source = {})
      : max_bytes_per_job_(max_bytes_per_job), source_(std::move(source)) {}

  using Record = std::pair<std::string, std::string>;  // key, value

  // Starts accounting for a running attempt with `steps` steps and nothing stored yet; its
  // output is redacted with `redaction` when that is not null.
  void Track(uint64_t seq, uint32_t attempt, size_t steps, Redaction redaction = nullptr);
  // The same after a restart: reads the committed length of each step from the store.
  absl::Status Recover(Store* store, uint64_t seq, uint32_t attempt, size_t steps,
                       Redaction redaction = nullptr);
  // Track and Recover for a job: redacted when it names secrets and the source has patterns.
  void TrackJob(uint64_t seq, uint32_t attempt, const farm::v1::JobSpec& spec);
  absl::Status RecoverJob(Store* store, uint64_t seq, uint32_t attempt,
                          const farm::v1::JobSpec& spec);
  // The attempt ended.
  void Forget(uint64_t seq);

  // A step of a redacted attempt ended: the output its redactor held back, to store in
  // Cf::kLogs (nullopt when there is none, or the attempt is not redacted).
  std::optional<Record> FinishStep(uint64_t seq, uint32_t step);
  // The attempt ended: forgets it, after returning what remains to store in Cf::kLogs (every
  // step's held output) and the Cf::kMeta keys to delete (its committed input lengths).
  struct Ended {
    std::vector<Record> logs;
    std::vector<std::string> meta_deletes;
  };
  Ended End(uint64_t seq);
  // Forgets every attempt (before recovery).
  void Clear() { attempts_.clear(); }

  struct Accepted {
    // What to store, when there is something: the key in Cf::kLogs and the bytes.
    std::optional<Record> record;
    // For a redacted attempt: the step's committed input length, to store in Cf::kMeta with
    // `record`.
    std::optional<Record> input_record;
    int64_t committed = 0;  // the step's committed length once `record` is written
  };
  absl::StatusOr<Accepted> Accept(uint64_t seq, uint32_t attempt, uint32_t step, int64_t offset,
                                  absl::string_view data);

  // The committed length of a step's output (0 for an untracked attempt).
  int64_t Committed(uint64_t seq, uint32_t step) const;

 private:
  // A redacted step: its stream's redactor, and where its next output goes when stored.
  struct RedactedStep {
    common::Redactor redactor;
    int64_t stored = 0;
  };
  struct Attempt {
    uint32_t number = 0;
    std::vector<int64_t> steps;  // committed length of each step's output (the agent's offsets)
    int64_t total = 0;           // bytes stored for the job in this attempt
    std::vector<RedactedStep> redacted;  // one per step when redacted, else empty
  };

  // Adds `bytes` (redacted when the attempt is) at the step's stored end to `*out`, within the
  // job's limit (with the truncation marker when it is reached).
  void StoreBytes(uint64_t seq, Attempt& a, uint32_t step, int64_t at, std::string bytes,
                  std::optional<Record>* out);
  static Record InputRecord(uint64_t seq, const Attempt& a, uint32_t step);

  Redaction RedactionOf(const farm::v1::JobSpec& spec) const;

  const int64_t max_bytes_per_job_;
  const RedactionSource source_;
  std::map<uint64_t, Attempt> attempts_;
};

}  // namespace farm::coordinator
