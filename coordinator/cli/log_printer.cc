#include "coordinator/cli/log_printer.h"

#include <algorithm>
#include <string>

namespace farm::cli {

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
  if (step_headers_ && current_ != key) {
    header = "==> step " +
             (fresh.step().empty() ? "#" + std::to_string(fresh.step_index() + 1) : fresh.step());
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
  out_->write(fresh.data().data(), static_cast<std::streamsize>(fresh.data().size()));
  out_->flush();
  return out_->good();
}

}  // namespace farm::cli
