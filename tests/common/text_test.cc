#include "common/text.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "farm/lenient_parse.h"
#include "farm/v1/farm.pb.h"
#include "tests/testing/status_matchers.h"

namespace farm::common {
namespace {

using ::farm::testing::StatusIsWithMessage;
using ::testing::HasSubstr;

using namespace std::string_literals;  // "\0"s keeps the NUL

TEST(QuoteTest, EscapesWhatATerminalOrALogWouldInterpret) {
  EXPECT_EQ(Quote("linux"), "\"linux\"");
  EXPECT_EQ(Quote("os\0"s), "\"os\\x00\"");
  EXPECT_EQ(Quote("a\x1b[31mb"), "\"a\\x1b[31mb\"");
  EXPECT_EQ(Quote("line\nnext\ttab\r"), "\"line\\nnext\\ttab\\r\"");
  EXPECT_EQ(Quote("say \"hi\" \\o/"), "\"say \\\"hi\\\" \\\\o/\"");
  EXPECT_EQ(Quote("\x7f"), "\"\\x7f\"");
  EXPECT_EQ(Quote("\xc2\x9b"), "\"\\u009b\"");                                   // C1 CSI, as UTF-8
  EXPECT_EQ(Quote("bad \xff\xfe"), "\"bad \\xff\\xfe\"");                        // not UTF-8
  EXPECT_EQ(Quote("caf\xc3\xa9 \xe2\x9c\x93"), "\"caf\xc3\xa9 \xe2\x9c\x93\"");  // kept as is
}

TEST(QuoteTest, CutsLongInputAndSaysItsSize) {
  const std::string big(1 << 20, 'x');
  const std::string quoted = Quote(big);
  EXPECT_LT(quoted.size(), 300u);
  EXPECT_EQ(quoted, absl::StrCat("\"", std::string(kMaxEchoBytes, 'x'), "\"... (1048576 bytes)"));
  // Never half a character: "é" is two bytes, the cut falls before it.
  EXPECT_EQ(Quote("ab\xc3\xa9", 3), "\"ab\"... (4 bytes)");
  EXPECT_EQ(Quote("abc", 3), "\"abc\"");
}

TEST(ValidateTextTest, NamesTheFieldAndTheProblem) {
  EXPECT_OK(ValidateText("name", "build-1 \xc3\xa9", TextKind::kName));
  EXPECT_THAT(ValidateText("labels key", "os\0"s, TextKind::kName),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                  "labels key \"os\\x00\": contains a NUL byte"));
  EXPECT_THAT(ValidateText("name", "a\x1b", TextKind::kName),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                  "name \"a\\x1b\": contains a control character"));
  EXPECT_THAT(ValidateText("job_id", "1\xff", TextKind::kName),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                  "job_id \"1\\xff\": is not valid UTF-8"));
  EXPECT_THAT(ValidateText("name", "tab\there", TextKind::kName),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("control")));
  EXPECT_THAT(ValidateText("name", "\xc2\x85", TextKind::kName),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("control")));
}

TEST(ValidateTextTest, FreeTextMayHoldLineBreaksAndTabsOnly) {
  EXPECT_OK(ValidateText("run", "make\n\tcc -o x\r\n", TextKind::kFreeText));
  EXPECT_THAT(ValidateText("run", "echo \x1b[2J", TextKind::kFreeText),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("control")));
  EXPECT_THAT(ValidateText("run", "a\0b"s, TextKind::kFreeText),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("NUL")));
}

TEST(ValidateTextTest, SaysWhereAProblemPastTheShownPartIs) {
  const std::string text = std::string(5000, 'a') + "\x01";
  const absl::Status s = ValidateText("job_id", text, TextKind::kName);
  EXPECT_THAT(s, StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                     HasSubstr("(5001 bytes): contains a control character at "
                                               "byte 5000")));
  EXPECT_LT(s.message().size(), 400u);
}

TEST(ValidateRequestTextTest, NamesTheFieldByItsPath) {
  farm::v1::SubmitJobRequest req;
  req.set_request_id("r-1");
  farm::v1::JobSpec* spec = req.mutable_spec();
  spec->set_name("build");
  (*spec->mutable_labels())["os"] = "linux";
  (*spec->mutable_env())["PATH"] = "/bin\n";  // free text
  spec->add_steps()->set_run("make\n\tmake install\n");
  spec->add_steps()->set_name("test");
  EXPECT_OK(ValidateRequestText(req));

  farm::v1::SubmitJobRequest bad = req;
  (*bad.mutable_spec()->mutable_labels())["os\0"s] = "linux";
  EXPECT_THAT(ValidateRequestText(bad),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                  "spec.labels key \"os\\x00\": contains a NUL byte"));
  bad = req;
  (*bad.mutable_spec()->mutable_labels())["os"] = "lin\x1bux";
  EXPECT_THAT(ValidateRequestText(bad),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                  "spec.labels[\"os\"] \"lin\\x1bux\": contains a control "
                                  "character"));
  bad = req;
  (*bad.mutable_spec()->mutable_env())["A\xff"] = "x";
  EXPECT_THAT(ValidateRequestText(bad),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                  "spec.env key \"A\\xff\": is not valid UTF-8"));
  bad = req;
  bad.mutable_spec()->mutable_steps(1)->set_name("te\x07st");
  EXPECT_THAT(ValidateRequestText(bad),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                  HasSubstr("spec.steps[1].name \"te\\x07st\"")));
  bad = req;
  bad.mutable_spec()->add_shell("/bin/sh\n");
  EXPECT_THAT(ValidateRequestText(bad),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                  HasSubstr("spec.shell[0] \"/bin/sh\\n\"")));
  bad = req;
  bad.set_request_id("r\r");
  EXPECT_THAT(ValidateRequestText(bad),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("request_id")));
}

TEST(ValidateRequestTextTest, AgentRequestsToo) {
  farm::v1::CompleteJobRequest req;
  req.mutable_lease()->set_job_id("7");
  req.set_reason("step build exited with 2\nsee the log");  // free text
  req.mutable_last_step()->mutable_result()->set_message("killed\tby SIGTERM");
  EXPECT_OK(ValidateRequestText(req));
  req.mutable_lease()->set_job_id("7\x1b");
  EXPECT_THAT(ValidateRequestText(req), StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                                            HasSubstr("lease.job_id \"7\\x1b\"")));
}

TEST(EscapeControlsTest, LeavesCleanTextAloneAndKeepsWhatItIsTold) {
  EXPECT_EQ(EscapeControls("build (amd64) \xc3\xa9"), "build (amd64) \xc3\xa9");
  EXPECT_EQ(EscapeControls("a\\b\"c"), "a\\b\"c");  // no quoting: nothing to escape
  EXPECT_EQ(EscapeControls("\x1b]0;owned\x07"), "\\x1b]0;owned\\x07");
  EXPECT_EQ(EscapeControls("one\ntwo\tthree\r", "\n\t\r"), "one\ntwo\tthree\r");
  EXPECT_EQ(EscapeControls("one\ntwo"), "one\\x0atwo");
  EXPECT_EQ(EscapeControls("\xc2\x9b"
                           "31m \xff"),
            "\\u009b31m \\xff");
}

TEST(Utf8CharLengthTest, RefusesWhatIsNotUtf8) {
  EXPECT_EQ(Utf8CharLength("a", 0), 1u);
  EXPECT_EQ(Utf8CharLength("\xc3\xa9", 0), 2u);
  EXPECT_EQ(Utf8CharLength("\xf0\x9f\x98\x80", 0), 4u);
  EXPECT_EQ(Utf8CharLength("\xc3", 0), 0u);          // truncated
  EXPECT_EQ(Utf8CharLength("\xc0\xaf", 0), 0u);      // overlong '/'
  EXPECT_EQ(Utf8CharLength("\xed\xa0\x80", 0), 0u);  // a surrogate
  EXPECT_EQ(Utf8CharLength("\x80", 0), 0u);          // a stray continuation byte
}

// The coordinator's deserialization: the strict parse refuses a string that is not UTF-8; the
// lenient one keeps it (and everything else) for the text check to refuse by name.
TEST(LenientParseTest, KeepsStringsThatAreNotUtf8AndEveryOtherField) {
  farm::v1::RegisterRequest req;
  req.set_name("agent-\xff");
  (*req.mutable_labels())["os\xfe"] = "linux";
  (*req.mutable_labels())["pool"] = "\xc3";
  req.set_slots(4);
  req.set_session_id("s-1");
  std::string bytes;
  ASSERT_TRUE(req.SerializeToString(&bytes));  // logs, but serializes
  farm::v1::RegisterRequest strict;
  EXPECT_FALSE(strict.ParseFromString(bytes));

  farm::v1::RegisterRequest lenient;
  ASSERT_TRUE(proto::ParseKeepingInvalidUtf8(bytes, &lenient));
  EXPECT_EQ(lenient.name(), "agent-\xff");
  EXPECT_EQ(lenient.slots(), 4u);
  EXPECT_EQ(lenient.session_id(), "s-1");
  ASSERT_EQ(lenient.labels_size(), 2);
  EXPECT_EQ(lenient.labels().at("os\xfe"), "linux");
  EXPECT_EQ(lenient.labels().at("pool"), "\xc3");
  EXPECT_THAT(ValidateRequestText(lenient),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                  "name \"agent-\\xff\": is not valid UTF-8"));

  // Nested messages and repeated fields carry over too.
  farm::v1::SubmitJobRequest submit;
  submit.mutable_spec()->add_steps()->set_run("echo \xe2\x82");
  submit.mutable_spec()->add_steps()->set_run("echo ok");
  submit.mutable_spec()->set_priority(-3);
  ASSERT_TRUE(submit.SerializeToString(&bytes));
  farm::v1::SubmitJobRequest parsed;
  ASSERT_TRUE(proto::ParseKeepingInvalidUtf8(bytes, &parsed));
  EXPECT_EQ(parsed.SerializeAsString(), bytes);
}

TEST(LenientParseTest, StillRefusesAMalformedMessage) {
  farm::v1::RegisterRequest req;
  EXPECT_FALSE(
      proto::ParseKeepingInvalidUtf8("\x0a\x05"
                                     "ab",
                                     &req));  // length past the end
  EXPECT_FALSE(proto::ParseKeepingInvalidUtf8("\xff\xff\xff", &req));
}

}  // namespace
}  // namespace farm::common
