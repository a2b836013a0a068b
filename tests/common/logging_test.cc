#include "common/logging.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <string>

#include "absl/time/time.h"
#include "tests/testing/status_matchers.h"

namespace farm::common {
namespace {

using ::farm::testing::StatusIs;

// 2026-12-07T11:28:52.123Z
const absl::Time kWhen = absl::FromUnixMillis(1796642932123);

std::string Json(absl::string_view message) {
  return FormatLogLine(LogFormat::kJson, LogLevel::kWarning, kWhen, "/src/coordinator/x.cc", 7,
                       message);
}

// The line parsed as JSON (a log shipper's view); fails the test when it is not valid JSON.
google::protobuf::Struct Parse(const std::string& line) {
  google::protobuf::Struct parsed;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(line, &parsed).ok()) << line;
  return parsed;
}

std::string Field(const google::protobuf::Struct& s, const std::string& key) {
  auto it = s.fields().find(key);
  return it == s.fields().end() ? "<missing>" : it->second.string_value();
}

TEST(LogFormatTest, TextIsOneLineWithLevelTimeAndSource) {
  EXPECT_EQ(FormatLogLine(LogFormat::kText, LogLevel::kInfo, kWhen, "/src/agent/agent.cc", 42,
                          "registered"),
            "I 2026-12-07T11:28:52.123Z agent.cc:42] registered\n");
  EXPECT_EQ(FormatLogLine(LogFormat::kText, LogLevel::kError, kWhen, "x.cc", 1, "a\nb"),
            "E 2026-12-07T11:28:52.123Z x.cc:1] a\\nb\n");
}

TEST(LogFormatTest, JsonHasTimeLevelSourceAndMessage) {
  const std::string line = Json("disk low");
  EXPECT_EQ(line,
            "{\"time\":\"2026-12-07T11:28:52.123Z\",\"level\":\"warning\",\"source\":\"x.cc:7\","
            "\"msg\":\"disk low\"}\n");
  const google::protobuf::Struct parsed = Parse(line);
  EXPECT_EQ(Field(parsed, "msg"), "disk low");
  EXPECT_EQ(parsed.fields_size(), 4);
}

TEST(LogFormatTest, JsonTakesTheJobContextAsFields) {
  const google::protobuf::Struct parsed = Parse(Json("[job=12 attempt=3 agent=a-1] lease expired"));
  EXPECT_EQ(Field(parsed, "msg"), "lease expired");
  EXPECT_EQ(Field(parsed, "job"), "12");
  EXPECT_EQ(Field(parsed, "attempt"), "3");
  EXPECT_EQ(Field(parsed, "agent"), "a-1");
}

TEST(LogFormatTest, JsonLeavesOtherBracketsInTheMessage) {
  for (const char* message :
       {"[not a context] x", "[job=1 oops] x", "[=1] x", "[msg=1] x", "[job=1", "[] x"}) {
    const google::protobuf::Struct parsed = Parse(Json(message));
    EXPECT_EQ(Field(parsed, "msg"), message);
    EXPECT_EQ(parsed.fields().count("job"), 0u) << message;
  }
}

TEST(LogFormatTest, JsonEscapesQuotesControlCharactersAndBadUtf8) {
  const std::string text = "say \"hi\"\\ \t\r\n\x01\x1f\x7f";
  const std::string valid = "é€𝄞";
  // A stray byte, an overlong form, a surrogate and a cut character: 8 bytes that are not UTF-8.
  const std::string invalid =
      "\xff"
      "\xc0\xaf"
      "\xed\xa0\x80"
      "\xe2\x82";
  const std::string line = Json(text + valid + invalid);
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "one event, one line";
  EXPECT_NE(line.find(R"(say \"hi\"\\ \t\r\n\u0001\u001f\u007f)"), std::string::npos) << line;
  EXPECT_NE(line.find(valid), std::string::npos) << line;
  std::string replaced;
  for (int i = 0; i < 8; ++i) replaced += "\xef\xbf\xbd";  // U+FFFD for each byte
  EXPECT_EQ(Field(Parse(line), "msg"), text + valid + replaced);
}

TEST(LogFormatTest, JsonContextValuesAreEscapedToo) {
  const google::protobuf::Struct parsed = Parse(Json("[job=\"x\\] y"));
  EXPECT_EQ(Field(parsed, "job"), "\"x\\");
  EXPECT_EQ(Field(parsed, "msg"), "y");
}

TEST(LogLevelTest, ParsesTheNamesOperatorsWrite) {
  EXPECT_EQ(*ParseLogLevel("debug"), LogLevel::kDebug);
  EXPECT_EQ(*ParseLogLevel("warning"), LogLevel::kWarning);
  EXPECT_THAT(ParseLogLevel("loud"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(*ParseLogFormat("json"), LogFormat::kJson);
  EXPECT_THAT(ParseLogFormat("xml"), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace farm::common
