#include "common/redactor.h"

#include <algorithm>
#include <deque>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace farm::common {
namespace {

// How much of a secret's name an error message shows.
constexpr size_t kMaxNameEcho = 200;

absl::string_view TrimLine(absl::string_view line) {
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  while (!line.empty() && blank(line.front())) line.remove_prefix(1);
  while (!line.empty() && blank(line.back())) line.remove_suffix(1);
  return line;
}

// The strings searched for `secrets` (see the header), sorted, without duplicates.
absl::StatusOr<std::vector<std::string>> SearchedStrings(absl::Span<const NamedSecret> secrets) {
  std::vector<std::string> out;
  for (const NamedSecret& secret : secrets) {
    if (secret.value.size() < kMinSecretBytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "secret \"", absl::CHexEscape(absl::string_view(secret.name).substr(0, kMaxNameEcho)),
          "\": its value is shorter than ", kMinSecretBytes,
          " bytes; such a value cannot be redacted from logs without hiding common text, so "
          "it is refused"));
    }
    out.push_back(secret.value);
    if (secret.value.find('\n') == std::string::npos) continue;
    for (absl::string_view line : absl::StrSplit(secret.value, '\n')) {
      line = TrimLine(line);
      if (line.size() >= kMinSecretBytes) out.emplace_back(line);
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const RedactionPatterns>> RedactionPatterns::Create(
    absl::Span<const NamedSecret> secrets) {
  absl::StatusOr<std::vector<std::string>> strings = SearchedStrings(secrets);
  if (!strings.ok()) return strings.status();
  std::shared_ptr<RedactionPatterns> patterns(new RedactionPatterns());
  patterns->Build(*strings);
  return std::shared_ptr<const RedactionPatterns>(std::move(patterns));
}

void RedactionPatterns::Build(const std::vector<std::string>& patterns) {
  // The trie, with each node's children (byte, node) unsorted while it grows.
  nodes_.assign(1, Node());
  std::vector<std::vector<std::pair<uint8_t, uint32_t>>> children(1);
  for (const std::string& p : patterns) {
    uint32_t node = 0;
    for (char ch : p) {
      const uint8_t c = static_cast<uint8_t>(ch);
      auto& kids = children[node];
      auto it = std::find_if(kids.begin(), kids.end(), [c](const auto& e) { return e.first == c; });
      if (it != kids.end()) {
        node = it->second;
        continue;
      }
      const uint32_t child = static_cast<uint32_t>(nodes_.size());
      nodes_.emplace_back();
      nodes_.back().depth = nodes_[node].depth + 1;
      children.emplace_back();
      children[node].emplace_back(c, child);  // `kids` may dangle after emplace_back above
      node = child;
    }
    nodes_[node].match = nodes_[node].depth;
    max_length_ = std::max(max_length_, p.size());
  }
  pattern_count_ = patterns.size();

  // Breadth first, so that every node's failure link (a shallower node) and that node's edges
  // are complete before the node's children need them.
  std::deque<uint32_t> queue = {0};
  while (!queue.empty()) {
    const uint32_t u = queue.front();
    queue.pop_front();
    auto& kids = children[u];
    std::sort(kids.begin(), kids.end());
    nodes_[u].first_edge = static_cast<uint32_t>(edges_.size());
    nodes_[u].edge_count = static_cast<uint32_t>(kids.size());
    for (const auto& [c, v] : kids) {
      edges_.push_back(Edge{c, v});
      if (u == 0) root_next_[c] = v;
    }
    for (const auto& [c, v] : kids) {
      Node& n = nodes_[v];
      n.fail = u == 0 ? 0 : Next(nodes_[u].fail, c);
      n.match = std::max(n.match, nodes_[n.fail].match);
      queue.push_back(v);
    }
  }
}

Redactor::Redactor(std::shared_ptr<const RedactionPatterns> patterns)
    : patterns_(std::move(patterns)) {}

absl::StatusOr<Redactor> Redactor::Create(absl::Span<const NamedSecret> secrets) {
  absl::StatusOr<std::shared_ptr<const RedactionPatterns>> patterns =
      RedactionPatterns::Create(secrets);
  if (!patterns.ok()) return patterns.status();
  return Redactor(*std::move(patterns));
}

std::string Redactor::RedactAll(std::shared_ptr<const RedactionPatterns> patterns,
                                absl::string_view text) {
  Redactor redactor(std::move(patterns));
  std::string out;
  redactor.Feed(text, &out);
  redactor.Flush(&out);
  return out;
}

void Redactor::Feed(absl::string_view chunk, std::string* out) {
  const RedactionPatterns& p = *patterns_;
  const size_t n = chunk.size();
  if (p.max_length_ == 0) {  // nothing to find
    out->append(chunk.data(), n);
    pos_ += n;
    emit_pos_ = held_start_ = chunk_start_ = pos_;
    output_bytes_ += n;
    return;
  }
  chunk_ = chunk;
  chunk_start_ = pos_;
  const auto* data = reinterpret_cast<const uint8_t*>(chunk.data());
  const RedactionPatterns::Node* nodes = p.nodes_.data();
  uint32_t node = node_;
  size_t i = 0;
  while (i < n) {
    if (node == 0) {
      // Most bytes of most logs start no secret: skip them with one table look-up each.
      while (i < n && (node = p.root_next_[data[i]]) == 0) ++i;
      if (i == n) break;
    } else {
      node = p.Next(node, data[i]);
    }
    ++i;
    if (nodes[node].match != 0) {
      const uint64_t end = chunk_start_ + i;
      OnMatch(end - nodes[node].match, end, end - nodes[node].depth, out);
    }
  }
  node_ = node;
  pos_ = chunk_start_ + n;
  Emit(pos_ - nodes[node].depth, out);
  // Keep the input that is not decided yet for the next call.
  if (emit_pos_ >= chunk_start_) {
    const size_t keep_from = static_cast<size_t>(emit_pos_ - chunk_start_);
    held_.assign(chunk.data() + keep_from, n - keep_from);
  } else {
    held_.erase(0, static_cast<size_t>(emit_pos_ - held_start_));
    held_.append(chunk.data(), n);
  }
  held_start_ = emit_pos_;
  chunk_ = absl::string_view();
  chunk_start_ = pos_;
}

void Redactor::Flush(std::string* out) {
  Emit(pos_, out);  // nothing can follow: everything is decided
  node_ = 0;
  runs_.clear();
  held_.clear();
  held_start_ = pos_;
}

void Redactor::OnMatch(uint64_t start, uint64_t end, uint64_t frontier, std::string* out) {
  if (start < marked_end_) {
    // It overlaps the last run, whose marker is written: that run now ends here, and covers
    // the runs found since (they start after it, and end before here). Nothing after the
    // marker was written yet, since only bytes before an earlier frontier (<= start) are.
    runs_.clear();
    marked_end_ = emit_pos_ = end;
  } else {
    // Merge with the runs found before that it overlaps (the last ones).
    while (!runs_.empty() && runs_.back().end > start) {
      start = std::min(start, runs_.back().start);
      runs_.pop_back();
    }
    runs_.push_back(Run{start, end});
  }
  Emit(frontier, out);
}

void Redactor::Emit(uint64_t frontier, std::string* out) {
  // An occurrence found later starts at or after `frontier`: a run that starts there or before
  // cannot grow backwards any more (it may still grow forwards, see OnMatch), so its marker can
  // be written; bytes before `frontier` outside runs are shown.
  size_t written = 0;
  for (; written < runs_.size() && runs_[written].start <= frontier; ++written) {
    AppendInput(emit_pos_, runs_[written].start, out);
    out->append(kRedactedMarker.data(), kRedactedMarker.size());
    output_bytes_ += kRedactedMarker.size();
    emit_pos_ = marked_end_ = runs_[written].end;
  }
  runs_.erase(runs_.begin(), runs_.begin() + static_cast<ptrdiff_t>(written));
  if (frontier > emit_pos_) {
    AppendInput(emit_pos_, frontier, out);
    emit_pos_ = frontier;
  }
}

void Redactor::AppendInput(uint64_t from, uint64_t to, std::string* out) {
  if (from >= to) return;
  output_bytes_ += to - from;
  if (from < chunk_start_) {
    const uint64_t stop = std::min(to, chunk_start_);
    out->append(held_, static_cast<size_t>(from - held_start_), static_cast<size_t>(stop - from));
    from = stop;
  }
  if (from < to) {
    out->append(chunk_.data() + (from - chunk_start_), static_cast<size_t>(to - from));
  }
}

}  // namespace farm::common
