#include "coordinator/cli/parse_util.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

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

}  // namespace farm::cli
