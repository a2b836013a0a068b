// Writes the chunks of a WatchLogs stream so that every byte of a step's output appears once,
// in order, even when the stream is reopened after a reconnect and starts over from the
// beginning: chunks carry (attempt, step_index, offset), and what was already written is
// skipped. Not thread-safe; one per followed job.
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
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
  //
  // `escape_controls` (for a terminal): the output's control characters other than \n, \t and
  // \r, and its bytes that are not UTF-8, are written escaped (common::EscapeControls), so that
  // a job's output cannot drive the terminal; the bytes of a UTF-8 character cut between two
  // chunks are held until the rest arrives (written, escaped, if it never does). Step names in
  // the headers are always escaped.
  LogPrinter(std::ostream* out, std::ostream* notices, bool step_headers,
             bool escape_controls = false)
      : out_(out),
        notices_(notices),
        step_headers_(step_headers),
        escape_controls_(escape_controls) {}
  ~LogPrinter();
  LogPrinter(const LogPrinter&) = delete;
  LogPrinter& operator=(const LogPrinter&) = delete;

  // The part of `chunk` not seen before (data empty when it is all old), recorded as seen.
  // Bytes past a gap are new too: the coordinator may have dropped output over its limit.
  farm::v1::LogChunk Fresh(const farm::v1::LogChunk& chunk);

  // Writes Fresh(chunk). False when `out` has failed (e.g. a closed pipe).
  bool Write(const farm::v1::LogChunk& chunk);

 private:
  using StreamKey = std::pair<uint32_t, uint32_t>;  // (attempt, step_index)

  // With escape_controls_: what to write of `data`, the held bytes first, holding back a
  // trailing cut character. Without: `data`.
  std::string Escaped(absl::string_view data);
  // Writes the held bytes (escaped).
  void FlushHeld();

  std::ostream* out_;
  std::ostream* notices_;
  bool step_headers_;
  bool escape_controls_;
  std::string held_;  // the start of a UTF-8 character cut at the end of the last chunk
  absl::flat_hash_map<StreamKey, int64_t> written_end_;
  std::optional<StreamKey> current_;
};

}  // namespace farm::cli
