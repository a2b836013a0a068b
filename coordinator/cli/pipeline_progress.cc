#include "coordinator/cli/pipeline_progress.h"

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/job_state.h"
#include "coordinator/cli/format.h"

namespace farm::cli {
namespace {

using farm::v1::JobState;
using farm::v1::Pipeline;
using farm::v1::PipelineJob;

constexpr int kBarCells = 20;
constexpr size_t kStateWidth = 9;    // "SUCCEEDED", "CANCELLED"
constexpr size_t kElapsedWidth = 5;  // "12.3s", "4m05s", "1h02m"
constexpr absl::string_view kIndent = "  ";

std::string Pad(std::string text, size_t width) {
  if (text.size() < width) text.resize(width, ' ');
  return text;
}

// The job's time: while it runs, since it started; once ended, from start to end. Empty when it
// has not started (or never will).
std::string JobElapsed(const PipelineJob& job, int64_t now_ms) {
  if (job.started_ms() <= 0) return "";
  if (common::IsTerminal(job.state())) {
    if (job.finished_ms() <= 0) return "";
    return FormatElapsed(job.finished_ms() - job.started_ms());
  }
  return FormatElapsed(now_ms - job.started_ms());
}

// "attempt 3" while a retry is under way, "3 attempts" once the job has ended; empty for a
// first attempt.
std::string AttemptNote(const PipelineJob& job) {
  if (job.attempts() <= 1) return "";
  if (common::IsTerminal(job.state())) return absl::StrCat(job.attempts(), " attempts");
  return absl::StrCat("attempt ", job.attempts());
}

// NAME  STATE  ELAPSED  NOTE, without trailing blanks.
std::string JobColumns(const PipelineJob& job, int64_t now_ms, size_t name_width) {
  std::string line =
      absl::StrCat(Pad(job.name(), name_width), "  ", Pad(JobStateName(job.state()), kStateWidth),
                   "  ", Pad(JobElapsed(job, now_ms), kElapsedWidth), "  ", AttemptNote(job));
  absl::StripTrailingAsciiWhitespace(&line);
  return line;
}

// Cut to at most `max` bytes, not inside a UTF-8 sequence.
void Truncate(std::string& line, size_t max) {
  if (line.size() <= max) return;
  size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(line[cut]) & 0xC0) == 0x80) --cut;
  line.resize(cut);
}

// Which jobs the frame shows first when not all fit: lower is more interesting.
int Interest(JobState state) {
  switch (state) {
    case farm::v1::RUNNING:
      return 0;
    case farm::v1::FAILED:
      return 1;
    case farm::v1::CANCELLED:
      return 2;
    case farm::v1::QUEUED:
      return 3;
    case farm::v1::WAITING:
      return 4;
    case farm::v1::SKIPPED:
      return 5;
    case farm::v1::SUCCEEDED:
      return 6;
    default:
      return 7;
  }
}

std::string Bar(const Pipeline& pipeline, int64_t now_ms) {
  const int total = pipeline.jobs_size();
  const int done = CountDoneJobs(pipeline);
  // Full only when every job has ended.
  const int filled = total == 0 ? kBarCells : done * kBarCells / total;
  std::string line = absl::StrCat("[", std::string(static_cast<size_t>(filled), '#'),
                                  std::string(static_cast<size_t>(kBarCells - filled), '-'), "] ",
                                  done, "/", total, "  ", JobStateName(pipeline.state()));
  if (pipeline.submitted_ms() > 0) {
    const int64_t end = common::IsTerminal(pipeline.state()) && pipeline.finished_ms() > 0
                            ? pipeline.finished_ms()
                            : now_ms;
    absl::StrAppend(&line, "  ", FormatElapsed(end - pipeline.submitted_ms()));
  }
  return line;
}

}  // namespace

std::vector<std::string> RenderPipelineFrame(const Pipeline& pipeline, int64_t now_ms, int width,
                                             int height) {
  const int jobs = pipeline.jobs_size();
  std::vector<int> shown;  // indices into pipeline.jobs(), ascending
  int hidden = 0;
  const int max_lines = height > 0 ? std::max(1, height - 1) : 0;
  if (max_lines == 0 || jobs + 1 <= max_lines) {
    for (int i = 0; i < jobs; ++i) shown.push_back(i);
  } else {
    const int room = std::max(0, max_lines - 2);  // less the bar and the "more" line
    std::vector<int> order(static_cast<size_t>(jobs));
    for (int i = 0; i < jobs; ++i) order[static_cast<size_t>(i)] = i;
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
      return Interest(pipeline.jobs(a).state()) < Interest(pipeline.jobs(b).state());
    });
    shown.assign(order.begin(), order.begin() + room);
    std::sort(shown.begin(), shown.end());
    hidden = jobs - room;
  }

  size_t name_width = 0;
  for (int i : shown) name_width = std::max(name_width, pipeline.jobs(i).name().size());
  std::vector<std::string> lines;
  for (int i : shown) {
    lines.push_back(absl::StrCat(kIndent, JobColumns(pipeline.jobs(i), now_ms, name_width)));
  }
  if (hidden > 0) {
    std::vector<bool> is_shown(static_cast<size_t>(jobs), false);
    for (int i : shown) is_shown[static_cast<size_t>(i)] = true;
    std::map<int, std::pair<JobState, int>> counts;  // by interest
    for (int i = 0; i < jobs; ++i) {
      if (is_shown[static_cast<size_t>(i)]) continue;
      const JobState state = pipeline.jobs(i).state();
      auto& [s, count] = counts[Interest(state)];
      s = state;
      ++count;
    }
    std::vector<std::string> parts;
    for (const auto& [interest, count] : counts) {
      parts.push_back(
          absl::StrCat(count.second, " ", absl::AsciiStrToLower(JobStateName(count.first))));
    }
    if (max_lines >= 2) {
      lines.push_back(absl::StrCat(kIndent, "... and ", hidden, shown.empty() ? " jobs" : " more",
                                   ": ", absl::StrJoin(parts, ", ")));
    }
  }
  lines.push_back(Bar(pipeline, now_ms));
  if (width > 1) {
    for (std::string& line : lines) Truncate(line, static_cast<size_t>(width - 1));
  }
  return lines;
}

std::string FormatJobChangeLine(const PipelineJob& job, int64_t now_ms, absl::TimeZone zone,
                                size_t name_width) {
  // A running job's time so far says little in a log; how long an ended one took does.
  PipelineJob shown = job;
  if (!common::IsTerminal(job.state())) shown.set_started_ms(0);
  return absl::StrCat(absl::FormatTime("%H:%M:%S", absl::FromUnixMillis(now_ms), zone), " ",
                      JobColumns(shown, now_ms, name_width));
}

std::string PipelineProgress::Update(const Pipeline& pipeline, int64_t now_ms, int width,
                                     int height) {
  std::string out;
  if (options_.terminal) {
    const std::vector<std::string> lines = RenderPipelineFrame(pipeline, now_ms, width, height);
    // Back to the start of the frame on screen; each line is cleared before it is rewritten,
    // and whatever is left below a shorter frame is cleared at the end.
    if (frame_lines_ > 0) absl::StrAppend(&out, "\r\x1b[", frame_lines_, "A");
    for (const std::string& line : lines) absl::StrAppend(&out, "\x1b[2K", line, "\n");
    if (frame_lines_ > static_cast<int>(lines.size())) absl::StrAppend(&out, "\x1b[J");
    frame_lines_ = static_cast<int>(lines.size());
    return out;
  }
  size_t name_width = 0;
  for (const PipelineJob& job : pipeline.jobs()) {
    name_width = std::max(name_width, job.name().size());
  }
  for (const PipelineJob& job : pipeline.jobs()) {
    const std::pair<JobState, uint32_t> now(job.state(), job.attempts());
    auto [it, inserted] = seen_.try_emplace(job.job_id().empty() ? job.name() : job.job_id(), now);
    if (!inserted && it->second == now) continue;
    it->second = now;
    absl::StrAppend(&out, FormatJobChangeLine(job, now_ms, options_.time_zone, name_width), "\n");
  }
  return out;
}

}  // namespace farm::cli
