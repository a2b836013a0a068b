#include "coordinator/cli/parse_util.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/duration.h"

namespace farm::cli {

absl::Status UsageError(absl::string_view message, absl::string_view command) {
  return absl::InvalidArgumentError(
      absl::StrCat(message, " (run 'farmctl help", command.empty() ? "" : " ", command, "')"));
}

absl::StatusOr<std::map<std::string, std::string>> ParseLabelList(absl::string_view text,
                                                                  absl::string_view what,
                                                                  absl::string_view cmd) {
  std::map<std::string, std::string> labels;
  for (absl::string_view entry : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    entry = absl::StripAsciiWhitespace(entry);
    const size_t eq = entry.find('=');
    const absl::string_view key =
        absl::StripAsciiWhitespace(entry.substr(0, std::min(eq, entry.size())));
    if (eq == absl::string_view::npos || key.empty()) {
      return UsageError(absl::StrCat(what, " takes key=value,...; \"", entry, "\" is not"), cmd);
    }
    if (!labels.emplace(key, absl::StripAsciiWhitespace(entry.substr(eq + 1))).second) {
      return UsageError(absl::StrCat(what, ": \"", key, "\" given twice"), cmd);
    }
  }
  return labels;
}

absl::StatusOr<TimeArg> ParseTimeArg(absl::string_view flag, const std::string& value,
                                     absl::string_view cmd) {
  if (absl::StatusOr<int64_t> ago = common::ParseDurationMs(value); ago.ok()) {
    return TimeArg{*ago, /*ago=*/true};
  }
  absl::Time time;
  std::string error;
  if (absl::ParseTime(absl::RFC3339_full, value, &time, &error)) {
    return TimeArg{absl::ToUnixMillis(time), /*ago=*/false};
  }
  return UsageError(absl::StrCat("--", flag,
                                 " takes a duration back from now (1h, 30m) or a time "
                                 "(2026-11-29T10:00:00Z), not \"",
                                 value, "\""),
                    cmd);
}

absl::StatusOr<int64_t> ParseDurationFlag(absl::string_view flag, const std::string& value,
                                          absl::string_view examples, absl::string_view cmd) {
  absl::StatusOr<int64_t> ms = common::ParseDurationMs(value);
  if (!ms.ok() || *ms == 0) {
    return UsageError(
        absl::StrCat("--", flag, " takes a duration such as ", examples, ", not \"", value, "\""),
        cmd);
  }
  return *ms;
}

}  // namespace farm::cli
