// Key layouts of the column families. Integers are big-endian and fixed-width so that byte
// order is numeric order and scans come out sorted.
//
//   jobs:     seq(8)                                   → farm.v1.Job
//   queue:    labelset(8) | 1000-priority(4) | pos(8)  → seq(8)
//   active:   seq(8)                                   → ""
//   logs:     seq(8) | attempt(4) | step(4) | offset(8) → bytes
//   requests: "i/" request id                          → seq(8) | submitted_ms(8)
//             "t/" submitted_ms(8) | request id         → ""   (expiry index)
//   meta:     "next_seq" (a floor), "next_epoch" → u64; "labelset/" labelset(8) → canonical labels;
//             "log_input/" seq(8) | attempt(4) | step(4) → u64 (a redacted step's committed
//             input length, while its attempt runs: logs/log_ingest.h)
//   events:   time_ms(8) | event seq(8)              → farm.v1.Event (labels as the labelset id)
//   job_events: job seq(8) | event key(16) → event key(16)...  (a job's events in one group)
//   agents:   agent name                             → farm.internal.AgentRecord
//   progress: seq(8)                                 → farm.v1.Attempt (the running attempt)
//   pipeline_jobs: pipeline seq(8) | job seq(8)      → farm.v1.PipelineJob (state, times)
//   waiting:  seq(8)                                 → ""  (WAITING jobs)
//   retention: "f" | end_ms(8) | seq(8) → finished jobs that may go (scheduler/retention.h);
//             "a"/"A" keys: the action cache's age index (cas/action_cache.h)
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace farm::coordinator::keys {

void AppendU32(std::string& out, uint32_t v);
void AppendU64(std::string& out, uint64_t v);
uint32_t ReadU32(absl::string_view in, size_t pos);
uint64_t ReadU64(absl::string_view in, size_t pos);

std::string U64(uint64_t v);

// Job ids on the wire are the decimal submit sequence.
std::string JobId(uint64_t seq);
std::optional<uint64_t> ParseJobId(absl::string_view id);

std::string JobKey(uint64_t seq);

// Position in a priority class: new jobs after every requeued one, each group in order.
uint64_t NewJobPosition(uint64_t seq);
uint64_t RequeuePosition(uint64_t lost_epoch);

struct QueueKey {
  uint64_t labelset = 0;
  int32_t priority = 0;
  uint64_t pos = 0;

  std::string Encode() const;
  static QueueKey Decode(absl::string_view key);
  // Dispatch order inside one label set: priority descending, then position.
  bool operator<(const QueueKey& o) const {
    if (priority != o.priority) return priority > o.priority;
    return pos < o.pos;
  }
  bool operator==(const QueueKey& o) const {
    return labelset == o.labelset && priority == o.priority && pos == o.pos;
  }
};
std::string QueuePrefix(uint64_t labelset);

std::string LogKey(uint64_t seq, uint32_t attempt, uint32_t step, uint64_t offset);
std::string LogStepPrefix(uint64_t seq, uint32_t attempt, uint32_t step);
// Cf::kMeta: the committed input length of a step whose output is stored redacted.
std::string LogInputKey(uint64_t seq, uint32_t attempt, uint32_t step);
struct LogKeyParts {
  uint64_t seq;
  uint32_t attempt;
  uint32_t step;
  uint64_t offset;
};
LogKeyParts DecodeLogKey(absl::string_view key);
// Cf::kLogs: where a job's output was, once retention removed it (scheduler/retention.h):
// removed_ms(8) | the policy that removed it. After every attempt's keys.
std::string LogsRemovedKey(uint64_t seq);

inline constexpr absl::string_view kNextSeq = "next_seq";
inline constexpr absl::string_view kNextEpoch = "next_epoch";
inline constexpr absl::string_view kLabelSetPrefix = "labelset/";

// A canonical text for a label set ("k=v\n" sorted) and its 64-bit id.
std::string CanonicalLabels(const std::map<std::string, std::string>& labels);
uint64_t LabelSetId(absl::string_view canonical);
std::map<std::string, std::string> ParseCanonicalLabels(absl::string_view canonical);

// Submit request ids, and their expiry index ordered by submit time.
std::string RequestKey(absl::string_view request_id);
std::string RequestTimeKey(int64_t submitted_ms, absl::string_view request_id);
inline constexpr absl::string_view kRequestTimePrefix = "t/";

// Pipeline ids on the wire are "p" and the decimal pipeline sequence.
std::string PipelineId(uint64_t seq);
std::optional<uint64_t> ParsePipelineId(absl::string_view id);
inline constexpr absl::string_view kNextPipelineSeq = "next_pipeline_seq";

// Concurrency-group keys (Cf::kGroups): kGroupAdmitted or kGroupWaiting, the group, a 0 byte,
// the job seq. GroupPrefix is everything before the seq.
inline constexpr char kGroupAdmitted = 'a';
inline constexpr char kGroupWaiting = 'w';
std::string GroupPrefix(char kind, absl::string_view group);
std::string GroupKey(char kind, absl::string_view group, uint64_t seq);

// Events: ordered by time, then by their sequence number (unique, increasing).
struct EventKeyParts {
  int64_t time_ms = 0;
  uint64_t seq = 0;
};
std::string EventKey(int64_t time_ms, uint64_t seq);
// nullopt unless `key` is 16 bytes.
std::optional<EventKeyParts> DecodeEventKey(absl::string_view key);
// The meta key of the highest event sequence number ever deleted by retention.
inline constexpr absl::string_view kEventSeqFloor = "event_seq_floor";

// A pipeline job's summary: the pipeline seq, then the job seq.
std::string PipelineJobKey(uint64_t pipeline_seq, uint64_t seq);

// The smallest key greater than every key that starts with prefix.
std::string PrefixEnd(absl::string_view prefix);

}  // namespace farm::coordinator::keys
