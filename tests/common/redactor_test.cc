#include "common/redactor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/common/redactor_reference.h"
#include "tests/testing/status_matchers.h"

namespace farm::common {
namespace {

using ::farm::testing::ReferenceRedact;
using ::farm::testing::ReferenceSearchedStrings;
using ::farm::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

std::shared_ptr<const RedactionPatterns> Patterns(const std::vector<std::string>& values) {
  std::vector<NamedSecret> secrets;
  for (const std::string& v : values) secrets.push_back({absl::StrCat("S", secrets.size()), v});
  absl::StatusOr<std::shared_ptr<const RedactionPatterns>> p = RedactionPatterns::Create(secrets);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *p : nullptr;
}

// Feeds `text` cut at `cuts` (increasing positions), then flushes; checks the counters on the
// way.
std::string RedactInChunks(const std::shared_ptr<const RedactionPatterns>& patterns,
                           absl::string_view text, const std::vector<size_t>& cuts) {
  Redactor r(patterns);
  std::string out;
  size_t at = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(text.size());
  for (size_t end : ends) {
    r.Feed(text.substr(at, end - at), &out);
    at = end;
    EXPECT_EQ(r.input_bytes(), static_cast<int64_t>(at));
    EXPECT_EQ(r.output_bytes(), static_cast<int64_t>(out.size()));
    EXPECT_LE(r.held_bytes(), patterns->max_length() == 0 ? 0 : patterns->max_length() - 1);
  }
  r.Flush(&out);
  EXPECT_EQ(r.held_bytes(), 0u);
  EXPECT_EQ(r.output_bytes(), static_cast<int64_t>(out.size()));
  return out;
}

std::string Redact(const std::vector<std::string>& values, absl::string_view text) {
  return Redactor::RedactAll(Patterns(values), text);
}

TEST(RedactorTest, RefusesShortValuesNamingTheSecretNotTheValue) {
  absl::StatusOr<Redactor> r =
      Redactor::Create({NamedSecret{"OK_ONE", "long enough"}, NamedSecret{"DEPLOY_KEY", "hunt2"}});
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("DEPLOY_KEY"));
  EXPECT_THAT(std::string(r.status().message()), Not(HasSubstr("hunt2")));
  EXPECT_THAT(Redactor::Create({NamedSecret{"EMPTY", ""}}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_OK(Redactor::Create({NamedSecret{"SIX", "123456"}}));
}

TEST(RedactorTest, WithoutSecretsTheOutputIsTheInput) {
  auto patterns = Patterns({});
  EXPECT_EQ(patterns->max_length(), 0u);
  EXPECT_EQ(RedactInChunks(patterns, "any text at all", {3, 4}), "any text at all");
}

TEST(RedactorTest, ReplacesEveryOccurrence) {
  EXPECT_EQ(Redact({"hunter22"}, "password=hunter22; again hunter22."),
            "password=[REDACTED]; again [REDACTED].");
  EXPECT_EQ(Redact({"hunter22"}, "hunter22"), "[REDACTED]");
  EXPECT_EQ(Redact({"hunter22"}, "hunter2 hunter2x hunter"), "hunter2 hunter2x hunter");
}

TEST(RedactorTest, RepeatedOccurrencesThatTouchGetAMarkerEach) {
  EXPECT_EQ(Redact({"secret"}, "secretsecret secret"), "[REDACTED][REDACTED] [REDACTED]");
}

TEST(RedactorTest, OverlappingOccurrencesBecomeOneMarker) {
  // Two values that overlap in the text: nothing of either shows.
  EXPECT_EQ(Redact({"abcdef12", "ef12345"}, "xxabcdef12345yy"), "xx[REDACTED]yy");
  // A value that overlaps itself.
  EXPECT_EQ(Redact({"abcabc"}, "-abcabcabc-"), "-[REDACTED]-");
  // A value inside another, and a longer one found only after the shorter one ended.
  EXPECT_EQ(Redact({"cdefgh", "abcdefghijkl"}, "ab cdefgh abcdefghijkl"),
            "ab [REDACTED] [REDACTED]");
  EXPECT_EQ(Redact({"cdefgh", "abcdefghijkl"}, "abcdefghijk"), "ab[REDACTED]ijk");
  // A run of many overlapping occurrences, longer than any value.
  EXPECT_EQ(Redact({"aaaaaa"}, "x" + std::string(1000, 'a') + "y"), "x[REDACTED]y");
}

TEST(RedactorTest, AValueThatIsAPrefixOfAnother) {
  const std::vector<std::string> values = {"secret", "secret-long"};
  EXPECT_EQ(Redact(values, "[secret-long]"), "[[REDACTED]]");
  EXPECT_EQ(Redact(values, "[secret-lo]"), "[[REDACTED]-lo]");
  EXPECT_EQ(Redact(values, "secret"), "[REDACTED]");
  EXPECT_EQ(Redact(values, "secret-long-secret"), "[REDACTED]-[REDACTED]");
}

TEST(RedactorTest, SplitAtEveryPosition) {
  const std::vector<std::string> values = {"hunter22", "secret", "secret-long", "zzzzzz"};
  const std::string text =
      "a hunter22 b secret-long c secret-lo d zzzzzzzzz e hunter2 secret" + values[0];
  auto patterns = Patterns(values);
  const std::string expected = ReferenceRedact(text, ReferenceSearchedStrings(values));
  ASSERT_EQ(expected,
            "a [REDACTED] b [REDACTED] c [REDACTED]-lo d [REDACTED] e hunter2 "
            "[REDACTED][REDACTED]");
  for (size_t i = 0; i <= text.size(); ++i) {
    EXPECT_EQ(RedactInChunks(patterns, text, {i}), expected) << "cut at " << i;
    for (size_t j = i; j <= text.size(); ++j) {
      ASSERT_EQ(RedactInChunks(patterns, text, {i, j}), expected) << "cut at " << i << ", " << j;
    }
  }
  std::vector<size_t> every_byte;
  for (size_t i = 1; i < text.size(); ++i) every_byte.push_back(i);
  EXPECT_EQ(RedactInChunks(patterns, text, every_byte), expected);
}

TEST(RedactorTest, MultiLineValuesAreRedactedLineByLine) {
  const std::string key =
      "-----BEGIN KEY-----\n"
      "MIIBVgIBADANBgkqhkiG9w0B\r\n"
      "  AQEFAASCAUAwggE8AgEAAkEA  \n"
      "abc\n"
      "-----END KEY-----\n";
  auto patterns = Patterns({key});
  // The whole value: one marker.
  EXPECT_EQ(Redactor::RedactAll(patterns, "key: " + key + "done"), "key: [REDACTED]done");
  // Its lines printed by a tool, re-indented and framed: each one hidden.
  EXPECT_EQ(Redactor::RedactAll(patterns,
                                "> -----BEGIN KEY-----\n"
                                ">     MIIBVgIBADANBgkqhkiG9w0B\n"
                                "> AQEFAASCAUAwggE8AgEAAkEA\n"
                                "> abc\n"),
            "> [REDACTED]\n"
            ">     [REDACTED]\n"
            "> [REDACTED]\n"
            "> abc\n");
  // A line shorter than kMinSecretBytes ("abc") is not searched on its own.
  EXPECT_EQ(Redactor::RedactAll(patterns, "abc abc"), "abc abc");
  // A value that ends with a newline (as `echo VALUE |` gives) is found without it too.
  EXPECT_EQ(Redact({"s3cr3t-value\n"}, "token s3cr3t-value."), "token [REDACTED].");
}

TEST(RedactorTest, BinaryBytes) {
  const std::string value("\x00\xff\x01secret\x00", 10);
  const std::string text = std::string("\xff\x00", 2) + value + std::string("\x00", 1) + value;
  auto patterns = Patterns({value});
  const std::string expected =
      std::string("\xff\x00", 2) + "[REDACTED]" + std::string("\x00", 1) + "[REDACTED]";
  for (size_t i = 0; i <= text.size(); ++i) {
    EXPECT_EQ(RedactInChunks(patterns, text, {i}), expected) << "cut at " << i;
  }
}

TEST(RedactorTest, OutputLagsInputByLessThanTheLongestValue) {
  auto patterns = Patterns({"SECRET-1234"});
  Redactor r(patterns);
  std::string out;
  r.Feed("log line SECRET-12", &out);
  // "SECRET-12" could still become the value: held back, the rest is shown.
  EXPECT_EQ(out, "log line ");
  EXPECT_EQ(r.held_bytes(), 9u);
  EXPECT_EQ(r.input_bytes(), 18);
  EXPECT_EQ(r.output_bytes(), 9);
  r.Feed("34 and SECRET-", &out);
  EXPECT_EQ(out, "log line [REDACTED] and ");
  EXPECT_EQ(r.input_bytes(), 32);
  EXPECT_EQ(r.output_bytes(), 24);
  EXPECT_EQ(r.held_bytes(), 7u);
  r.Flush(&out);  // the stream ended: it was not the value
  EXPECT_EQ(out, "log line [REDACTED] and SECRET-");
  EXPECT_EQ(r.held_bytes(), 0u);
  // A new stream after Flush: an occurrence cut by the Flush is not one.
  r.Feed("1234 SECRET-1234", &out);
  r.Flush(&out);
  EXPECT_EQ(out, "log line [REDACTED] and SECRET-1234 [REDACTED]");
}

// Random text built from the canary, pieces of it and other values, cut at random places: the
// canary never shows, and the output is the reference's for every cut.
TEST(RedactorTest, CanaryNeverAppearsWhateverTheChunking) {
  const std::string canary = "CANARY-7f3a9c";
  const std::vector<std::string> values = {canary, "ANARY-7f3a9c0000", "7f3a9c-tail", "xyzxyz",
                                           "line-one-long\nline-two-long\nab"};
  auto patterns = Patterns(values);
  const std::vector<std::string> strings = ReferenceSearchedStrings(values);
  const std::vector<std::string> pieces = {
      canary,  canary, "CANARY-",         "CANARY-7f3a", "7f3a9c", "0000",
      "-tail", "xyz",  "line-two-long\n", "\n",          "noise ", "C",
      "A",     "ab"};
  std::mt19937 rng(12345);  // fixed: the same cases every run
  for (int round = 0; round < 300; ++round) {
    std::string text;
    const int count = std::uniform_int_distribution<int>(1, 60)(rng);
    for (int i = 0; i < count; ++i) {
      text += pieces[std::uniform_int_distribution<size_t>(0, pieces.size() - 1)(rng)];
    }
    const std::string expected = ReferenceRedact(text, strings);
    for (int chunking = 0; chunking < 10; ++chunking) {
      std::vector<size_t> cuts;
      const size_t max_chunk = chunking % 2 == 0 ? 3 : 40;
      for (size_t at = 0;;) {
        at += std::uniform_int_distribution<size_t>(0, max_chunk)(rng);
        if (at >= text.size()) break;
        cuts.push_back(at);
      }
      const std::string out = RedactInChunks(patterns, text, cuts);
      ASSERT_EQ(out.find(canary), std::string::npos) << "text: " << text;
      ASSERT_EQ(out, expected) << "text: " << text;
    }
  }
}

// Many secrets at once (an Aho-Corasick automaton with shared prefixes and failure links), on
// random text over a small alphabet so that partial matches are everywhere.
TEST(RedactorTest, ManySecretsMatchTheReference) {
  std::mt19937 rng(777);
  auto random_string = [&](size_t size) {
    std::string s;
    for (size_t i = 0; i < size; ++i) s += "abcd"[rng() % 4];
    return s;
  };
  std::vector<std::string> values;
  for (int i = 0; i < 200; ++i) values.push_back(random_string(6 + rng() % 10));
  auto patterns = Patterns(values);
  const std::vector<std::string> strings = ReferenceSearchedStrings(values);
  for (int round = 0; round < 50; ++round) {
    const std::string text = random_string(2000);
    const std::string expected = ReferenceRedact(text, strings);
    std::vector<size_t> cuts;
    for (size_t at = 0;;) {
      at += rng() % 50;
      if (at >= text.size()) break;
      cuts.push_back(at);
    }
    ASSERT_EQ(RedactInChunks(patterns, text, cuts), expected);
  }
}

}  // namespace
}  // namespace farm::common
