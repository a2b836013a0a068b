#include "common/logging.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace farm::common {

LogLevel DefaultLogLevel() {
  const char* env = std::getenv("FARM_LOG_LEVEL");
  if (env == nullptr) return LogLevel::kInfo;
  absl::StatusOr<LogLevel> level = ParseLogLevel(env);
  return level.ok() ? *level : LogLevel::kInfo;
}

namespace {

std::atomic<int>& MinLevel() {
  static std::atomic<int> level(static_cast<int>(DefaultLogLevel()));
  return level;
}

std::atomic<int> g_format{static_cast<int>(LogFormat::kText)};

const char* LevelLetter(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "D";
    case LogLevel::kInfo:
      return "I";
    case LogLevel::kWarning:
      return "W";
    case LogLevel::kError:
      return "E";
    case LogLevel::kFatal:
      return "F";
  }
  return "?";
}

const char* LevelWord(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kError:
      return "error";
    case LogLevel::kFatal:
      return "fatal";
  }
  return "unknown";
}

// The length of the valid UTF-8 sequence at text[i], or 0 when the byte there does not start
// one (overlong forms, surrogates and code points above U+10FFFF are invalid).
size_t Utf8Length(absl::string_view text, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char c = byte(i);
  if (c < 0x80) return 1;
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;  // bounds of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > text.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return n;
}

// A leading "[key=value key=value] " of a message: the context of FARM_LOG lines about a job
// (CONVENTIONS.md, "Logs are for operators"). False, with nothing taken, when the message does
// not start with one.
struct Context {
  std::vector<std::pair<absl::string_view, absl::string_view>> fields;
  absl::string_view rest;
};
bool SplitContext(absl::string_view message, Context* context) {
  if (message.empty() || message[0] != '[') return false;
  const size_t close = message.find(']');
  if (close == absl::string_view::npos) return false;
  absl::string_view inside = message.substr(1, close - 1);
  context->fields.clear();
  while (!inside.empty()) {
    const size_t space = inside.find(' ');
    const absl::string_view token = inside.substr(0, space);
    inside = space == absl::string_view::npos ? absl::string_view() : inside.substr(space + 1);
    const size_t eq = token.find('=');
    if (eq == 0 || eq == absl::string_view::npos) return false;
    const absl::string_view key = token.substr(0, eq);
    for (char c : key) {
      if (!absl::ascii_islower(static_cast<unsigned char>(c)) && c != '_') return false;
    }
    // "msg", "time", ... would clash with the line's own fields.
    if (key == "time" || key == "level" || key == "source" || key == "msg") return false;
    context->fields.emplace_back(key, token.substr(eq + 1));
  }
  if (context->fields.empty()) return false;
  absl::string_view rest = message.substr(close + 1);
  if (!rest.empty() && rest[0] == ' ') rest.remove_prefix(1);
  context->rest = rest;
  return true;
}

absl::string_view BaseName(absl::string_view file) {
  const size_t slash = file.rfind('/');
  return slash == absl::string_view::npos ? file : file.substr(slash + 1);
}

}  // namespace

void SetMinLogLevel(LogLevel level) { MinLevel().store(static_cast<int>(level)); }
LogLevel MinLogLevel() { return static_cast<LogLevel>(MinLevel().load(std::memory_order_relaxed)); }
void SetLogFormat(LogFormat format) { g_format.store(static_cast<int>(format)); }
LogFormat CurrentLogFormat() {
  return static_cast<LogFormat>(g_format.load(std::memory_order_relaxed));
}

absl::StatusOr<LogLevel> ParseLogLevel(absl::string_view text) {
  if (text == "debug") return LogLevel::kDebug;
  if (text == "info") return LogLevel::kInfo;
  if (text == "warning") return LogLevel::kWarning;
  if (text == "error") return LogLevel::kError;
  return absl::InvalidArgumentError(
      absl::StrCat("\"", text, "\" is not a log level (debug, info, warning or error)"));
}

absl::StatusOr<LogFormat> ParseLogFormat(absl::string_view text) {
  if (text == "text") return LogFormat::kText;
  if (text == "json") return LogFormat::kJson;
  return absl::InvalidArgumentError(
      absl::StrCat("\"", text, "\" is not a log format (text or json)"));
}

void AppendJsonString(absl::string_view text, std::string* out) {
  out->push_back('"');
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    const size_t n = Utf8Length(text, i);
    if (n == 0) {
      out->append("\\ufffd");
      ++i;
      continue;
    }
    if (n > 1) {
      out->append(text.data() + i, n);
      i += n;
      continue;
    }
    ++i;
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (c < 0x20 || c == 0x7F) {
          static const char kHex[] = "0123456789abcdef";
          out->append("\\u00");
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 0xF]);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

std::string FormatLogLine(LogFormat format, LogLevel level, absl::Time time, absl::string_view file,
                          int line, absl::string_view message) {
  const std::string when = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", time, absl::UTCTimeZone());
  std::string out;
  if (format == LogFormat::kText) {
    out = absl::StrCat(LevelLetter(level), " ", when, " ", BaseName(file), ":", line, "] ");
    for (char c : message) {
      if (c == '\n') {
        out.append("\\n");
      } else {
        out.push_back(c);
      }
    }
    out.push_back('\n');
    return out;
  }
  Context context;
  const bool has_context = SplitContext(message, &context);
  absl::StrAppend(&out, "{\"time\":\"", when, "\",\"level\":\"", LevelWord(level),
                  "\",\"source\":");
  AppendJsonString(absl::StrCat(BaseName(file), ":", line), &out);
  out.append(",\"msg\":");
  AppendJsonString(has_context ? context.rest : message, &out);
  if (has_context) {
    for (const auto& [key, value] : context.fields) {
      absl::StrAppend(&out, ",\"", key, "\":");
      AppendJsonString(value, &out);
    }
  }
  out.append("}\n");
  return out;
}

LogMessage::LogMessage(LogLevel level, const char* file, int line)
    : level_(level), file_(file), line_(line), time_(absl::Now()) {}

LogMessage::~LogMessage() {
  const std::string s =
      FormatLogLine(CurrentLogFormat(), level_, time_, file_, line_, stream_.str());
  // One write so that concurrent lines do not interleave.
  (void)!::write(STDERR_FILENO, s.data(), s.size());
  if (level_ == LogLevel::kFatal) std::abort();
}

}  // namespace farm::common
