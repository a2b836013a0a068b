#include "coordinator/store/keys.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace farm::coordinator::keys {

void AppendU32(std::string& out, uint32_t v) {
  char bytes[4];
  for (int i = 0; i < 4; ++i) bytes[i] = static_cast<char>((v >> (8 * (3 - i))) & 0xff);
  out.append(bytes, sizeof(bytes));
}

void AppendU64(std::string& out, uint64_t v) {
  char bytes[8];  // one append: byte by byte, a key cost some 30 instructions a byte
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((v >> (8 * (7 - i))) & 0xff);
  out.append(bytes, sizeof(bytes));
}

uint32_t ReadU32(absl::string_view in, size_t pos) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(in[pos + i]);
  return v;
}

uint64_t ReadU64(absl::string_view in, size_t pos) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(in[pos + i]);
  return v;
}

std::string U64(uint64_t v) {
  std::string s;
  AppendU64(s, v);
  return s;
}

std::string JobId(uint64_t seq) { return absl::StrCat(seq); }

std::optional<uint64_t> ParseJobId(absl::string_view id) {
  uint64_t seq = 0;
  if (id.empty() || id.size() > 20 || !absl::SimpleAtoi(id, &seq) || seq == 0) return std::nullopt;
  for (char c : id) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  return seq;
}

std::string JobKey(uint64_t seq) { return U64(seq); }

std::string PipelineId(uint64_t seq) { return absl::StrCat("p", seq); }

std::optional<uint64_t> ParsePipelineId(absl::string_view id) {
  if (id.empty() || id[0] != 'p') return std::nullopt;
  return ParseJobId(id.substr(1));
}

std::string GroupPrefix(char kind, absl::string_view group) {
  std::string key(1, kind);
  key.append(group.data(), group.size());
  key.push_back('\0');
  return key;
}

std::string GroupKey(char kind, absl::string_view group, uint64_t seq) {
  std::string key = GroupPrefix(kind, group);
  AppendU64(key, seq);
  return key;
}

uint64_t NewJobPosition(uint64_t seq) { return (uint64_t{1} << 63) + seq; }
uint64_t RequeuePosition(uint64_t lost_epoch) { return (uint64_t{1} << 62) + lost_epoch; }

std::string QueueKey::Encode() const {
  std::string s;
  s.reserve(20);
  AppendU64(s, labelset);
  // Higher priority first: store the distance from a bound above every valid priority.
  AppendU32(s, static_cast<uint32_t>(int64_t{1} << 30) - static_cast<uint32_t>(priority));
  AppendU64(s, pos);
  return s;
}

QueueKey QueueKey::Decode(absl::string_view key) {
  QueueKey k;
  k.labelset = ReadU64(key, 0);
  k.priority = static_cast<int32_t>(static_cast<uint32_t>(int64_t{1} << 30) - ReadU32(key, 8));
  k.pos = ReadU64(key, 12);
  return k;
}

std::string QueuePrefix(uint64_t labelset) { return U64(labelset); }

std::string LogInputKey(uint64_t seq, uint32_t attempt, uint32_t step) {
  return absl::StrCat("log_input/", LogStepPrefix(seq, attempt, step));
}

std::string LogStepPrefix(uint64_t seq, uint32_t attempt, uint32_t step) {
  std::string s;
  s.reserve(24);
  AppendU64(s, seq);
  AppendU32(s, attempt);
  AppendU32(s, step);
  return s;
}

std::string LogKey(uint64_t seq, uint32_t attempt, uint32_t step, uint64_t offset) {
  std::string s = LogStepPrefix(seq, attempt, step);
  AppendU64(s, offset);
  return s;
}

std::string LogsRemovedKey(uint64_t seq) { return LogKey(seq, 0xffffffffu, 0, 0); }

LogKeyParts DecodeLogKey(absl::string_view key) {
  return LogKeyParts{ReadU64(key, 0), ReadU32(key, 8), ReadU32(key, 12), ReadU64(key, 16)};
}

std::string CanonicalLabels(const std::map<std::string, std::string>& labels) {
  std::string out;
  for (const auto& [k, v] : labels) absl::StrAppend(&out, k, "=", v, "\n");
  return out;
}

uint64_t LabelSetId(absl::string_view canonical) {
  // FNV-1a: stable across runs and builds, unlike std::hash.
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : canonical) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::map<std::string, std::string> ParseCanonicalLabels(absl::string_view canonical) {
  std::map<std::string, std::string> labels;
  for (absl::string_view line : absl::StrSplit(canonical, '\n', absl::SkipEmpty())) {
    size_t eq = line.find('=');
    labels[std::string(line.substr(0, eq))] =
        eq == absl::string_view::npos ? "" : std::string(line.substr(eq + 1));
  }
  return labels;
}

std::string RequestKey(absl::string_view request_id) { return absl::StrCat("i/", request_id); }

std::string RequestTimeKey(int64_t submitted_ms, absl::string_view request_id) {
  std::string s(kRequestTimePrefix);
  AppendU64(s, static_cast<uint64_t>(submitted_ms));
  s.append(request_id.data(), request_id.size());
  return s;
}

std::string EventKey(int64_t time_ms, uint64_t seq) {
  std::string s;
  s.reserve(16);
  AppendU64(s, static_cast<uint64_t>(std::max<int64_t>(time_ms, 0)));
  AppendU64(s, seq);
  return s;
}

std::optional<EventKeyParts> DecodeEventKey(absl::string_view key) {
  if (key.size() != 16) return std::nullopt;
  return EventKeyParts{static_cast<int64_t>(ReadU64(key, 0)), ReadU64(key, 8)};
}

std::string PipelineJobKey(uint64_t pipeline_seq, uint64_t seq) {
  std::string s = U64(pipeline_seq);
  AppendU64(s, seq);
  return s;
}

std::string PrefixEnd(absl::string_view prefix) {
  std::string s(prefix);
  while (!s.empty()) {
    unsigned char c = static_cast<unsigned char>(s.back());
    if (c != 0xff) {
      s.back() = static_cast<char>(c + 1);
      return s;
    }
    s.pop_back();
  }
  return s;  // empty: no upper bound
}

}  // namespace farm::coordinator::keys
