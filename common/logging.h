// Minimal leveled logging for operators: `FARM_LOG(INFO) << "...";` writes one line to stderr
// per event, in one of two formats (SetLogFormat):
//
//   text: `I 2026-12-07T11:28:52.123Z scheduler.cc:144] [job=12 attempt=1 agent=a1] leased`
//         (level letter D/I/W/E/F, time RFC 3339 UTC with milliseconds, source file:line);
//   json: `{"time":"2026-12-07T11:28:52.123Z","level":"info","source":"scheduler.cc:144",
//          "msg":"leased","job":"12","attempt":"1","agent":"a1"}` on one line, for log
//         shippers: a leading `[key=value ...]` context of the message becomes fields.
//
// A newline inside a message is written as `\n` in both formats, so one event is one line.
// FATAL aborts after writing. FARM_CHECK(cond) crashes loudly on a broken invariant.
//
// Thread-safe: the level and format may change at any time (a SIGHUP reload); each statement
// is written with one write(2).
#pragma once

#include <sstream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace farm::common {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3, kFatal = 4 };
enum class LogFormat { kText, kJson };

// Messages below this level are dropped. Default kInfo; FARM_LOG_LEVEL=debug|info|warning|error
// in the environment overrides it at start-up.
void SetMinLogLevel(LogLevel level);
// What FARM_LOG_LEVEL asks for, else kInfo.
LogLevel DefaultLogLevel();
LogLevel MinLogLevel();
void SetLogFormat(LogFormat format);
LogFormat CurrentLogFormat();

// "debug", "info", "warning", "error" / "text", "json"; INVALID_ARGUMENT listing the choices.
absl::StatusOr<LogLevel> ParseLogLevel(absl::string_view text);
absl::StatusOr<LogFormat> ParseLogFormat(absl::string_view text);

// One event as the line written for it, '\n' included. `file` is the source path (its base
// name is shown). Pure; for LogMessage and tests.
std::string FormatLogLine(LogFormat format, LogLevel level, absl::Time time, absl::string_view file,
                          int line, absl::string_view message);

// Appends `text` to `out` as a JSON string literal: quotes and backslashes escaped, control
// characters as \n, \t, \r or \u00XX, each byte that is not part of valid UTF-8 as \ufffd.
void AppendJsonString(absl::string_view text, std::string* out);

class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line);
  ~LogMessage();
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;

  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
  const char* file_;
  int line_;
  absl::Time time_;
  std::ostringstream stream_;
};

// Swallows the stream when the level is disabled.
struct LogVoidify {
  void operator&(std::ostream&) {}
};

}  // namespace farm::common

#define FARM_LOG_LEVEL_DEBUG ::farm::common::LogLevel::kDebug
#define FARM_LOG_LEVEL_INFO ::farm::common::LogLevel::kInfo
#define FARM_LOG_LEVEL_WARNING ::farm::common::LogLevel::kWarning
#define FARM_LOG_LEVEL_ERROR ::farm::common::LogLevel::kError
#define FARM_LOG_LEVEL_FATAL ::farm::common::LogLevel::kFatal

#define FARM_LOG(level)                                    \
  (FARM_LOG_LEVEL_##level < ::farm::common::MinLogLevel()) \
      ? (void)0                                            \
      : ::farm::common::LogVoidify() &                     \
            ::farm::common::LogMessage(FARM_LOG_LEVEL_##level, __FILE__, __LINE__).stream()

#define FARM_CHECK(cond)                                                                     \
  (cond) ? (void)0                                                                           \
         : ::farm::common::LogVoidify() &                                                    \
               ::farm::common::LogMessage(FARM_LOG_LEVEL_FATAL, __FILE__, __LINE__).stream() \
                   << "Check failed: " #cond " "
