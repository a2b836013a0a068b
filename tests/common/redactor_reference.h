// The redactor's contract (common/redactor.h) written the slow, obvious way, for the unit tests
// and the fuzzer to compare with: find every occurrence of every searched string in the whole
// text, merge the ones that overlap, and write one marker per merged run.
#pragma once

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "common/redactor.h"

namespace farm::testing {

// The values, and the lines of multi-line values stripped of " \t\r" that keep at least
// kMinSecretBytes.
inline std::vector<std::string> ReferenceSearchedStrings(const std::vector<std::string>& values) {
  std::vector<std::string> out;
  for (const std::string& v : values) {
    out.push_back(v);
    if (v.find('\n') == std::string::npos) continue;
    for (absl::string_view line : absl::StrSplit(v, '\n')) {
      while (!line.empty() &&
             (line.front() == ' ' || line.front() == '\t' || line.front() == '\r')) {
        line.remove_prefix(1);
      }
      while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r')) {
        line.remove_suffix(1);
      }
      if (line.size() >= common::kMinSecretBytes) out.emplace_back(line.data(), line.size());
    }
  }
  return out;
}

// The maximal runs [start, end) of bytes of `text` inside an occurrence of one of `strings`.
inline std::vector<std::pair<size_t, size_t>> ReferenceRuns(
    absl::string_view text, const std::vector<std::string>& strings) {
  std::vector<std::pair<size_t, size_t>> found;
  for (const std::string& s : strings) {
    if (s.empty()) continue;
    for (size_t at = text.find(s); at != absl::string_view::npos; at = text.find(s, at + 1)) {
      found.emplace_back(at, at + s.size());
    }
  }
  std::sort(found.begin(), found.end());
  std::vector<std::pair<size_t, size_t>> runs;
  for (const auto& [start, end] : found) {
    if (!runs.empty() && start < runs.back().second) {  // overlaps: one run
      runs.back().second = std::max(runs.back().second, end);
    } else {
      runs.emplace_back(start, end);
    }
  }
  return runs;
}

inline std::string ReferenceRedact(absl::string_view text,
                                   const std::vector<std::string>& strings) {
  std::string out;
  size_t at = 0;
  for (const auto& [start, end] : ReferenceRuns(text, strings)) {
    out.append(text.data() + at, start - at);
    out.append(common::kRedactedMarker.data(), common::kRedactedMarker.size());
    at = end;
  }
  out.append(text.data() + at, text.size() - at);
  return out;
}

}  // namespace farm::testing
