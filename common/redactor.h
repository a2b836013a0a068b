// Secret redaction for job logs: a job's output with every occurrence of the values of the
// secrets it received replaced by "[REDACTED]", whatever way the output is cut into chunks.
//
// What is redacted. RedactionPatterns turns the secrets into the byte strings searched for:
//  - each value, whole;
//  - for a value with several lines (PEM keys, JSON credentials), also each of its lines on
//    its own, because tools print such values line by line, re-indented or framed. A line is
//    what lies between '\n's, stripped of surrounding spaces, tabs and '\r'. Lines that are
//    then shorter than kMinSecretBytes ("-----", "}", "") are NOT searched on their own: they
//    are too common to hide wherever they appear, and they are hidden only inside an
//    occurrence of the whole value or of a longer line.
// Occurrences may overlap or nest (one value inside another, a prefix of another, a value
// that overlaps itself like "abcabcabc" in "abcabcabcabc"): every byte that belongs to any
// occurrence is hidden, and each maximal run of overlapping occurrences becomes ONE marker, so
// that no part of a secret ever shows beside a marker. Occurrences that only touch
// ("SECRETSECRET") give one marker each. Bytes are bytes: matching is exact and binary-safe
// (no case folding, no encoding).
//
// Streaming. A Redactor is fed one stream (a step's output) in chunks of any size, cut
// anywhere, and appends the redacted stream to its caller's string. The output is a function of
// the concatenated input only, never of where the chunks were cut. To get there it holds back
// the end of a chunk that may be the start of an occurrence: at most max_length() - 1 bytes
// (held_bytes()), until later input decides them; Flush() at the end of the stream releases
// them. So output lags input by at most max_length() - 1 bytes (a prompt printed without a
// newline shows once more output comes or the step ends).
//
// Offsets. The output is not as long as the input (each run of hidden bytes, whatever its
// length, becomes the 10 bytes of kRedactedMarker), and there is no fixed relation between an
// input offset and an output offset. What holds after every Feed():
//  - the input before input_bytes() - held_bytes() is decided, and its output is exactly the
//    output_bytes() bytes appended so far: output offsets are the positions in the redacted
//    stream, counted by output_bytes();
//  - both counters only grow; output_bytes() never runs ahead of the input it stands for.
// Wiring it into the farm's offset-addressed logs (agent/log_sender.h, coordinator/logs/):
//  - Agent: one Redactor per step, fed by the step runner's sink before LogSender::Append.
//    Append the output (when not empty) at offset output_bytes() as it was before the Feed;
//    at the step's end Flush() and Append the rest, then LogSender::Flush(step). Offsets on the
//    wire are then offsets of the redacted output, which is the step's output as far as the
//    farm knows (StepResult.log_bytes too: output_bytes() after the Flush). LogSender resends
//    chunks it queued, already redacted, so a resend after any failure carries the same bytes
//    at the same offsets.
//  - Coordinator (again, for agents that did not): one Redactor per step of a running attempt,
//    fed exactly the bytes LogIngest::Accept keeps (what remains after skipping bytes already
//    committed), in order. The records it stores are then keyed by the Redactor's output
//    offsets (output_bytes() before the Feed), which is what readers and followers use, while
//    the `committed` length acknowledged to the agent stays in the agent's offsets
//    (input_bytes()). Keep both per step: the committed input length can no longer be derived
//    from the stored records after a restart, so it must be stored with them. The held bytes
//    (at most max_length() - 1 per step) are acknowledged but only in memory until Flush() at the
//    step's end (StepFinished, or the attempt's end): a coordinator crash loses them (never
//    shows them) unless they are stored as well.
//  - A truncation marker or any other text the farm adds goes around the Redactor, not through
//    it.
//
// Cost: RedactionPatterns is an Aho-Corasick automaton over all the searched strings, built
// once per job and shared by the job's streams; memory is at most 28 bytes per byte of the
// searched strings. Feed is linear in its chunk whatever the number of secrets, with a fast path
// for bytes that start no secret (tests/bench's farm-micro-bench measures MB/s).
//
// Thread-safety: RedactionPatterns is immutable and thread-safe. A Redactor is
// thread-compatible (one stream, one thread at a time).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace farm::common {

// Shorter secret values are refused: they would hide common words all over the logs.
inline constexpr size_t kMinSecretBytes = 6;
inline constexpr absl::string_view kRedactedMarker = "[REDACTED]";

// A secret as the agent receives it with a lease: its name (used in errors) and its value.
struct NamedSecret {
  std::string name;
  std::string value;
};

class RedactionPatterns {
 public:
  // INVALID_ARGUMENT when a value is shorter than kMinSecretBytes; the message names the secret
  // by its name, never shows its value. No secrets at all is fine: nothing is redacted.
  static absl::StatusOr<std::shared_ptr<const RedactionPatterns>> Create(
      absl::Span<const NamedSecret> secrets);

  // The longest searched string (0 when there is none).
  size_t max_length() const { return max_length_; }
  // How many strings are searched (values and lines; duplicates counted once).
  size_t pattern_count() const { return pattern_count_; }

 private:
  friend class Redactor;

  // A node of the automaton: the longest suffix of the input read so far that is a prefix of
  // some searched string. Node 0 is the root (the empty string).
  struct Node {
    uint32_t fail = 0;        // the node of this node's longest proper suffix that is a node
    uint32_t depth = 0;       // length of this node's string
    uint32_t match = 0;       // length of the longest searched string ending here, 0 for none
    uint32_t first_edge = 0;  // children: edges_[first_edge, first_edge + edge_count)
    uint32_t edge_count = 0;
  };
  struct Edge {
    uint8_t byte = 0;
    uint32_t child = 0;
  };

  RedactionPatterns() = default;
  void Build(const std::vector<std::string>& patterns);

  // The node after `node` reads `c`.
  uint32_t Next(uint32_t node, uint8_t c) const {
    while (node != 0) {
      const Node& n = nodes_[node];
      for (uint32_t i = n.first_edge, end = n.first_edge + n.edge_count; i < end; ++i) {
        if (edges_[i].byte == c) return edges_[i].child;
      }
      node = n.fail;
    }
    return root_next_[c];
  }

  std::vector<Node> nodes_;
  std::vector<Edge> edges_;
  uint32_t root_next_[256] = {};  // the root's transitions, complete (0: stays at the root)
  size_t max_length_ = 0;
  size_t pattern_count_ = 0;
};

class Redactor {
 public:
  // One stream redacted with `patterns` (not null).
  explicit Redactor(std::shared_ptr<const RedactionPatterns> patterns);
  // The same with patterns made from `secrets` (RedactionPatterns::Create's errors).
  static absl::StatusOr<Redactor> Create(absl::Span<const NamedSecret> secrets);

  // Appends to `*out` the redacted output that `chunk` (the next bytes of the stream) decides.
  void Feed(absl::string_view chunk, std::string* out);
  // The stream ended: appends the output of the held bytes. A later Feed starts a new stream
  // (an occurrence cut by a Flush is not found); the counters go on.
  void Flush(std::string* out);

  // A whole stream at once: Feed(text) and Flush() on a new Redactor.
  static std::string RedactAll(std::shared_ptr<const RedactionPatterns> patterns,
                               absl::string_view text);

  int64_t input_bytes() const { return static_cast<int64_t>(pos_); }
  int64_t output_bytes() const { return static_cast<int64_t>(output_bytes_); }
  // Input bytes fed but not decided yet (at most max_length() - 1).
  size_t held_bytes() const { return static_cast<size_t>(pos_ - emit_pos_); }
  const RedactionPatterns& patterns() const { return *patterns_; }

 private:
  // A run of hidden input bytes [start, end) whose marker is not written yet.
  struct Run {
    uint64_t start = 0;
    uint64_t end = 0;
  };

  // An occurrence [start, end) was found; end is the current position.
  void OnMatch(uint64_t start, uint64_t end, uint64_t frontier, std::string* out);
  // Writes what no later input can change: everything before `frontier`, the position from
  // which later input may still complete an occurrence.
  void Emit(uint64_t frontier, std::string* out);
  // Appends the input bytes [from, to), which are in held_ and chunk_.
  void AppendInput(uint64_t from, uint64_t to, std::string* out);

  std::shared_ptr<const RedactionPatterns> patterns_;
  uint32_t node_ = 0;      // the automaton's node after the input so far
  uint64_t pos_ = 0;       // input bytes fed (the position of the next one)
  uint64_t emit_pos_ = 0;  // input before this is decided and written
  // End of the last run whose marker is written: an occurrence found later that starts before
  // it extends that run (no second marker).
  uint64_t marked_end_ = 0;
  uint64_t output_bytes_ = 0;
  std::vector<Run> runs_;  // found, not written; sorted, disjoint, none overlapping another
  std::string held_;       // input [held_start_, chunk_start_) not written yet
  uint64_t held_start_ = 0;
  absl::string_view chunk_;  // during Feed: the chunk, input [chunk_start_, chunk_start_ + size)
  uint64_t chunk_start_ = 0;
};

}  // namespace farm::common
