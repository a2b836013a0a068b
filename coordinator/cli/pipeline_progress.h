// How `farmctl submit --follow` shows a pipeline's progress, from the snapshots it polls
// (GetPipeline; there is no pipeline watch stream). Pure: what to write is a function of the
// snapshots, the time and the terminal's size, so that it is tested line by line.
//
// On a terminal the view is a frame redrawn in place: one line per job (state, elapsed time,
// attempt) and a done/total bar, e.g.
//
//     build (amd64)  SUCCEEDED  4.2s
//     build (arm64)  RUNNING    5.7s   attempt 2
//     test           WAITING
//   [######--------------] 1/3  RUNNING  6.3s
//
// Anywhere else (a pipe, a CI log) it is a log without escape codes: one line per job whose
// state (or attempt) changed since the last snapshot, every job on the first, e.g.
//
//   12:00:01 build (amd64)  RUNNING
//   12:00:05 build (amd64)  SUCCEEDED  4.2s
//   12:00:05 test           QUEUED
//
// and at the end FormatPipelineSummary's line (format.h). Not thread-safe; one per followed
// pipeline.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "farm/v1/farm.pb.h"

namespace farm::cli {

// The terminal view of `pipeline` at `now_ms`: a line per job, then the bar line; no escape
// codes, no newlines. Lines are cut to `width` - 1 columns (0: no limit) so that none wraps, and
// when the jobs do not fit in `height` - 1 lines (0: no limit) the most interesting are shown
// (running, then failed, cancelled, queued, waiting, skipped, succeeded; each kind in pipeline
// order, shown in pipeline order) with a line counting the rest.
std::vector<std::string> RenderPipelineFrame(const farm::v1::Pipeline& pipeline, int64_t now_ms,
                                             int width = 0, int height = 0);

// The log line of one job (no newline): "HH:MM:SS NAME  STATE  ELAPSED  attempt N", NAME padded
// to `name_width`, the time `now_ms` in `zone`; ELAPSED for a job that has ended, "attempt N"
// while a retry runs and "N attempts" once a job that needed more than one has ended.
std::string FormatJobChangeLine(const farm::v1::PipelineJob& job, int64_t now_ms,
                                absl::TimeZone zone, size_t name_width);

class PipelineProgress {
 public:
  struct Options {
    bool terminal = false;  // redraw a frame in place (ANSI), or append log lines
    absl::TimeZone time_zone = absl::UTCTimeZone();
  };
  explicit PipelineProgress(Options options) : options_(std::move(options)) {}

  // What to write for a new snapshot. On a terminal: the cursor moved back over the frame
  // written before (if any), the lines cleared and the new frame drawn, `width` and `height`
  // the terminal's size now (0: unknown). Otherwise: FormatJobChangeLine for each job whose
  // state or attempt count differs from the last snapshot (all of them the first time); empty
  // when nothing changed.
  std::string Update(const farm::v1::Pipeline& pipeline, int64_t now_ms, int width = 0,
                     int height = 0);

 private:
  Options options_;
  int frame_lines_ = 0;  // the height of the frame on screen
  // The last (state, attempts) seen of each job, by job id (by name when it has none).
  absl::flat_hash_map<std::string, std::pair<farm::v1::JobState, uint32_t>> seen_;
};

}  // namespace farm::cli
