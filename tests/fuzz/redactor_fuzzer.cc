// The streaming redactor (common/redactor.h): secrets, a text that contains them (whole, cut,
// overlapping) and a chunking, all taken from the fuzzer's bytes. Whatever the chunking, the
// output is what the reference (tests/common/redactor_reference.h) gives for the whole text, no
// searched string shows in it, and a text without secrets comes out unchanged.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/redactor.h"
#include "tests/common/redactor_reference.h"

namespace {

using farm::common::kMinSecretBytes;
using farm::common::kRedactedMarker;
using farm::common::NamedSecret;
using farm::common::RedactionPatterns;
using farm::common::Redactor;

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "%s\n", what.c_str());
  std::abort();
}

// With a small alphabet, partial and overlapping occurrences are everywhere.
std::string Narrow(std::string s, bool narrow) {
  if (!narrow) return s;
  for (char& c : s) c = "ab\nc \t"[static_cast<uint8_t>(c) % 6];
  return s;
}

std::vector<std::string> Secrets(FuzzedDataProvider& in, bool narrow) {
  std::vector<std::string> values;
  const int count = in.ConsumeIntegralInRange(1, 4);
  for (int i = 0; i < count; ++i) {
    std::string v = Narrow(in.ConsumeRandomLengthString(48), narrow);
    if (v.size() < kMinSecretBytes) {
      if (Redactor::Create({NamedSecret{"SHORT", v}}).status().code() !=
          absl::StatusCode::kInvalidArgument) {
        Fail("a value shorter than the minimum was accepted");
      }
      v.append(kMinSecretBytes - v.size(), 'q');
    }
    values.push_back(std::move(v));
  }
  return values;
}

// Pieces: a secret, the start or the end of one, or other bytes.
std::string Text(FuzzedDataProvider& in, const std::vector<std::string>& values, bool narrow) {
  std::string text;
  const int pieces = in.ConsumeIntegralInRange(0, 40);
  for (int i = 0; i < pieces && in.remaining_bytes() > 0; ++i) {
    const std::string& v = values[in.ConsumeIntegralInRange<size_t>(0, values.size() - 1)];
    const size_t cut = in.ConsumeIntegralInRange<size_t>(0, v.size());
    switch (in.ConsumeIntegralInRange(0, 3)) {
      case 0:
        text += v;
        break;
      case 1:
        text += v.substr(0, cut);
        break;
      case 2:
        text += v.substr(cut);
        break;
      default:
        text += Narrow(in.ConsumeRandomLengthString(32), narrow);
        break;
    }
  }
  return text;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const bool narrow = in.ConsumeBool();
  const std::vector<std::string> values = Secrets(in, narrow);
  const std::string text = Text(in, values, narrow);

  std::vector<NamedSecret> secrets;
  for (const std::string& v : values) secrets.push_back({absl::StrCat("S", secrets.size()), v});
  auto patterns = RedactionPatterns::Create(secrets);
  if (!patterns.ok()) Fail(absl::StrCat("refused: ", patterns.status().ToString()));

  Redactor redactor(*patterns);
  std::string out;
  for (size_t at = 0; at < text.size();) {
    size_t n = text.size() - at;
    if (in.remaining_bytes() > 0) n = std::min(n, in.ConsumeIntegralInRange<size_t>(0, 64));
    redactor.Feed(absl::string_view(text).substr(at, n), &out);
    at += n;
    if (redactor.held_bytes() >= (*patterns)->max_length()) Fail("held back too much");
    if (redactor.output_bytes() != static_cast<int64_t>(out.size())) Fail("output_bytes is off");
  }
  redactor.Flush(&out);

  const std::vector<std::string> strings = farm::testing::ReferenceSearchedStrings(values);
  if (out != farm::testing::ReferenceRedact(text, strings)) Fail("differs from the reference");
  if (farm::testing::ReferenceRuns(text, strings).empty() && out != text) {
    Fail("a text without secrets was changed");
  }
  for (const std::string& s : strings) {
    // A string made of none of the marker's bytes can only show inside text that was left.
    if (s.find_first_of(kRedactedMarker.data(), 0, kRedactedMarker.size()) == std::string::npos &&
        out.find(s) != std::string::npos) {
      Fail("a secret shows in the output");
    }
  }
  return 0;
}
