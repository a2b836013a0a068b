// What farm-bench-chatty prints (chatty.cc), so that the followers scenario can check every byte
// its readers get against it. Line i (from 0) is kChattyLineBytes long with its newline and
// names i, so that a line lost, repeated or moved is seen. Thread-safe (pure functions).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

namespace farm::bench {

inline constexpr size_t kChattyLineBytes = 100;

// Line `i` of the chatty step's output, its newline included.
inline std::string ChattyLine(int64_t i) {
  // Printable, and not a run of one byte, so that no shortcut along the way can pass it off.
  static constexpr char kFill[] =
      "the quick brown fox jumps over the lazy dog, 0123456789, ABCDEFGHIJKLMNOPQRSTUVWXYZ "
      "abcdefghijklmnopqrstuvwxyz";
  char head[40];
  const int n =
      std::snprintf(head, sizeof(head), "chatty line %012lld: ", static_cast<long long>(i));
  std::string line(head, static_cast<size_t>(n));
  line.append(kFill, kChattyLineBytes - 1 - line.size());
  line += '\n';
  return line;
}

}  // namespace farm::bench
