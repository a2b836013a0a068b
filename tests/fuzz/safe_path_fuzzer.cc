// The relative path checker (common/safe_path.h) on arbitrary bytes: what it accepts is a plain
// relative path (no absolute path, no empty, "." or ".." component, no control character, valid
// UTF-8), and what it refuses is refused with INVALID_ARGUMENT and a message that does not echo
// kilobytes of the input.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_split.h"
#include "common/safe_path.h"

namespace {

[[noreturn]] void Fail(const std::string& what, absl::string_view path) {
  std::fprintf(stderr, "%s (path of %zu bytes)\n", what.c_str(), path.size());
  std::abort();
}

// Strict UTF-8 (no overlong forms, no surrogates, at most U+10FFFF) without C0, DEL or C1
// control characters.
bool PlainUtf8(absl::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<uint8_t>(s[i]);
    uint32_t cp = 0;
    size_t len = 0;
    if (b < 0x80) {
      cp = b, len = 1;
    } else if ((b & 0xe0) == 0xc0) {
      cp = b & 0x1f, len = 2;
    } else if ((b & 0xf0) == 0xe0) {
      cp = b & 0x0f, len = 3;
    } else if ((b & 0xf8) == 0xf0) {
      cp = b & 0x07, len = 4;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      const auto c = static_cast<uint8_t>(s[i + k]);
      if ((c & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3f);
    }
    static constexpr uint32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMinForLength[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) return false;
    i += len;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view path(reinterpret_cast<const char*>(data), size);
  const absl::Status status = farm::common::CheckRelativePath(path);
  if (!status.ok()) {
    if (status.code() != absl::StatusCode::kInvalidArgument) {
      Fail("unexpected error: " + status.ToString(), path);
    }
    if (status.message().size() > 1024) Fail("the message echoes too much of the path", path);
    return 0;
  }
  if (path.empty()) Fail("accepted an empty path", path);
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part.empty() || part == "." || part == "..") {
      Fail("accepted an absolute path or an empty, \".\" or \"..\" component", path);
    }
  }
  if (!PlainUtf8(path)) Fail("accepted a control character or invalid UTF-8", path);
  return 0;
}
