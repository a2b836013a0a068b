// Minimal leveled logging for operators: `FARM_LOG(INFO) << "...";` writes one line to stderr
// with a timestamp, the level and the source location. FATAL aborts after writing.
// FARM_CHECK(cond) crashes loudly on a broken invariant.
//
// Thread-safe: each statement is written with one write(2).
#pragma once

#include <sstream>
#include <string_view>

namespace farm::common {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3, kFatal = 4 };

// Messages below this level are dropped. Default kInfo; FARM_LOG_LEVEL=debug|info|warning|error
// in the environment overrides it at start-up.
void SetMinLogLevel(LogLevel level);
LogLevel MinLogLevel();

class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line);
  ~LogMessage();
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;

  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
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
