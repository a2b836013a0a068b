// Writes the chunks of a WatchLogs stream so that every byte of a step's output appears once,
// in order, even when the stream is reopened after a reconnect and starts over from the
// beginning: chunks carry (attempt, step_index, offset), and what was already written is
// skipped. Not thread-safe; one per followed job.
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "farm/v1/farm.pb.h"

namespace farm::cli {

class LogPrinter {
 public:
  // `out` receives the output bytes, unchanged (binary-safe), flushed per chunk. `notices`
  // (may be null) receives header lines, after `out` is flushed so that the two interleave
  // correctly on a terminal: with `step_headers`, "==> step NAME" before the output of each
  // step (" (attempt N)" added from the second attempt on); without, "==> attempt N" when the
  // output of a retry follows output already written, so that a user sees why lines repeat.
  // Neither stream is owned; both must outlive the printer.
  LogPrinter(std::ostream* out, std::ostream* notices, bool step_headers)
      : out_(out), notices_(notices), step_headers_(step_headers) {}

  // The part of `chunk` not seen before (data empty when it is all old), recorded as seen.
  // Bytes past a gap are new too: the coordinator may have dropped output over its limit.
  farm::v1::LogChunk Fresh(const farm::v1::LogChunk& chunk);

  // Writes Fresh(chunk). False when `out` has failed (e.g. a closed pipe).
  bool Write(const farm::v1::LogChunk& chunk);

 private:
  using StreamKey = std::pair<uint32_t, uint32_t>;  // (attempt, step_index)

  std::ostream* out_;
  std::ostream* notices_;
  bool step_headers_;
  absl::flat_hash_map<StreamKey, int64_t> written_end_;
  std::optional<StreamKey> current_;
};

}  // namespace farm::cli
