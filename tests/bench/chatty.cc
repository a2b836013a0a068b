// farm-bench-chatty: the followers scenario's chatty step.
//
//   farm-bench-chatty STOP_FILE COUNT_FILE PERIOD_US MAX_SECONDS [ignored...]
//
// Prints ChattyLine(0), ChattyLine(1), ... (chatty.h), one every PERIOD_US microseconds, each
// with one write(2) so that it reaches the agent's pipe at once, until STOP_FILE exists; then
// writes the number of lines it printed to COUNT_FILE (the truth the readers are checked
// against) and exits 0. Bounded: after MAX_SECONDS without the stop file it exits 3 (whoever
// should have stopped it is gone). Exits 2 when writing fails, 64 on bad arguments. Arguments
// after the fourth are ignored: the agent appends the step's script to the job's shell.
#include "tests/bench/chatty.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/posix_io.h"
#include "common/unique_fd.h"

namespace farm::bench {
namespace {

int64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

absl::Status WriteCount(const std::string& path, int64_t lines) {
  common::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (fd.get() < 0) return common::ErrnoStatus(errno, absl::StrCat("open ", path));
  if (absl::Status s = common::WriteAll(fd.get(), absl::StrCat(lines, "\n"), path); !s.ok()) {
    return s;
  }
  if (fd.Close() != 0) return common::ErrnoStatus(errno, absl::StrCat("close ", path));
  return absl::OkStatus();
}

int Main(int argc, char** argv) {
  int64_t period_us = 0, max_seconds = 0;
  if (argc < 5 || !absl::SimpleAtoi(argv[3], &period_us) || period_us <= 0 ||
      !absl::SimpleAtoi(argv[4], &max_seconds) || max_seconds <= 0) {
    std::fprintf(stderr,
                 "usage: farm-bench-chatty STOP_FILE COUNT_FILE PERIOD_US MAX_SECONDS "
                 "(PERIOD_US and MAX_SECONDS positive integers)\n");
    return 64;
  }
  const std::string stop_file = argv[1];
  const std::string count_file = argv[2];
  const int64_t start = MonotonicNs();
  const int64_t end = start + max_seconds * 1'000'000'000;
  int64_t next = start;
  int64_t lines = 0;
  while (::access(stop_file.c_str(), F_OK) != 0) {
    if (MonotonicNs() >= end) {
      std::fprintf(stderr, "farm-bench-chatty: no %s after %lld s\n", stop_file.c_str(),
                   static_cast<long long>(max_seconds));
      return 3;
    }
    if (absl::Status s = common::WriteAll(1, ChattyLine(lines), "stdout"); !s.ok()) {
      std::fprintf(stderr, "farm-bench-chatty: %s\n", s.ToString().c_str());
      return 2;
    }
    ++lines;
    // A steady rate; when the machine has held it up, from now rather than in a burst.
    next = std::max(next + period_us * 1000, MonotonicNs());
    const timespec at = {static_cast<time_t>(next / 1'000'000'000), next % 1'000'000'000};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, nullptr) == EINTR) {
    }
  }
  if (absl::Status s = WriteCount(count_file, lines); !s.ok()) {
    std::fprintf(stderr, "farm-bench-chatty: %s\n", s.ToString().c_str());
    return 2;
  }
  return 0;
}

}  // namespace
}  // namespace farm::bench

int main(int argc, char** argv) { return farm::bench::Main(argc, argv); }
