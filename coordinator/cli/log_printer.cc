#include "coordinator/cli/log_printer.h"

#include <algorithm>
#include <string>

#include "common/text.h"

namespace farm::cli {
namespace {

// What a terminal may be sent as it is besides printable text.
constexpr absl::string_view kKeptControls = "\n\t\r";

// Where the UTF-8 character that `text` ends in the middle of starts; text.size() when it ends
// on a character boundary (or on bytes that are not UTF-8 anyway).
size_t CutCharStart(absl::string_view text) {
  const size_t n = text.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const unsigned char c = static_cast<unsigned char>(text[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // a continuation byte: its lead is further back
    if (c < 0xC0 || c >= 0xF8) return n;
    const size_t length = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    return length > back ? n - back : n;
  }
  return n;
}

}  // namespace

LogPrinter::~LogPrinter() { FlushHeld(); }

std::string LogPrinter::Escaped(absl::string_view data) {
  std::string text = std::move(held_);
  held_.clear();
  text.append(data.data(), data.size());
  const size_t cut = CutCharStart(text);
  held_ = text.substr(cut);
  text.resize(cut);
  return common::EscapeControls(text, kKeptControls);
}

void LogPrinter::FlushHeld() {
  if (held_.empty()) return;
  *out_ << common::EscapeControls(held_, kKeptControls);
  held_.clear();
  out_->flush();
}

farm::v1::LogChunk LogPrinter::Fresh(const farm::v1::LogChunk& chunk) {
  farm::v1::LogChunk fresh = chunk;
  const StreamKey key(chunk.attempt(), chunk.step_index());
  const int64_t start = chunk.offset();
  const int64_t end = start + static_cast<int64_t>(chunk.data().size());
  auto [it, inserted] = written_end_.try_emplace(key, 0);
  const int64_t skip = std::clamp<int64_t>(it->second - start, 0, end - start);
  fresh.set_offset(start + skip);
  fresh.mutable_data()->erase(0, static_cast<size_t>(skip));
  it->second = std::max(it->second, end);
  return fresh;
}

bool LogPrinter::Write(const farm::v1::LogChunk& chunk) {
  const farm::v1::LogChunk fresh = Fresh(chunk);
  if (fresh.data().empty()) return out_->good();
  const StreamKey key(fresh.attempt(), fresh.step_index());
  std::string header;
  if (current_ != key) FlushHeld();
  if (step_headers_ && current_ != key) {
    header = "==> step " + (fresh.step().empty() ? "#" + std::to_string(fresh.step_index() + 1)
                                                 : common::EscapeControls(fresh.step()));
    if (fresh.attempt() > 1) header += " (attempt " + std::to_string(fresh.attempt()) + ")";
  } else if (!step_headers_ && current_.has_value() && current_->first != fresh.attempt()) {
    header = "==> attempt " + std::to_string(fresh.attempt());
  }
  if (!header.empty() && notices_ != nullptr) {
    out_->flush();
    *notices_ << header << "\n";
    notices_->flush();
  }
  current_ = key;
  if (escape_controls_) {
    const std::string text = Escaped(fresh.data());
    out_->write(text.data(), static_cast<std::streamsize>(text.size()));
  } else {
    out_->write(fresh.data().data(), static_cast<std::streamsize>(fresh.data().size()));
  }
  out_->flush();
  return out_->good();
}

}  // namespace farm::cli
