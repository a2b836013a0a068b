#include "coordinator/cli/log_printer.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>

namespace farm::cli {
namespace {

farm::v1::LogChunk Chunk(uint32_t attempt, uint32_t step_index, const std::string& step,
                         int64_t offset, const std::string& data) {
  farm::v1::LogChunk chunk;
  chunk.set_attempt(attempt);
  chunk.set_step_index(step_index);
  chunk.set_step(step);
  chunk.set_offset(offset);
  chunk.set_data(data);
  return chunk;
}

TEST(LogPrinterTest, WritesEachByteOnceAcrossAReplay) {
  std::ostringstream out;
  LogPrinter printer(&out, nullptr, /*step_headers=*/false);
  ASSERT_TRUE(printer.Write(Chunk(1, 0, "a", 0, "hello ")));
  ASSERT_TRUE(printer.Write(Chunk(1, 0, "a", 6, "wor")));
  // A reconnected stream starts over, cut at other boundaries.
  ASSERT_TRUE(printer.Write(Chunk(1, 0, "a", 0, "hel")));
  ASSERT_TRUE(printer.Write(Chunk(1, 0, "a", 3, "lo world\n")));
  ASSERT_TRUE(printer.Write(Chunk(1, 0, "a", 0, "hello world\n")));
  EXPECT_EQ(out.str(), "hello world\n");
}

TEST(LogPrinterTest, KeepsBinaryDataIntact) {
  std::ostringstream out;
  LogPrinter printer(&out, nullptr, /*step_headers=*/false);
  const std::string data("\0\xff\x01\n\r", 5);
  ASSERT_TRUE(printer.Write(Chunk(1, 0, "a", 0, data)));
  EXPECT_EQ(out.str(), data);
}

TEST(LogPrinterTest, HeadersGoToTheirOwnStreamBeforeEachStep) {
  std::ostringstream out;
  std::ostringstream headers;
  LogPrinter printer(&out, &headers, /*step_headers=*/true);
  printer.Write(Chunk(1, 0, "greet", 0, "hi\n"));
  printer.Write(Chunk(1, 0, "greet", 3, "again\n"));
  printer.Write(Chunk(1, 1, "build", 0, "built\n"));
  printer.Write(Chunk(1, 1, "build", 0, "built\n"));  // a replay: no output, no header
  printer.Write(Chunk(2, 0, "greet", 0, "retry\n"));
  EXPECT_EQ(out.str(), "hi\nagain\nbuilt\nretry\n");
  EXPECT_EQ(headers.str(), "==> step greet\n==> step build\n==> step greet (attempt 2)\n");
}

TEST(LogPrinterTest, WithoutStepHeadersARetryIsStillAnnounced) {
  std::ostringstream out;
  std::ostringstream notices;
  LogPrinter printer(&out, &notices, /*step_headers=*/false);
  printer.Write(Chunk(1, 0, "only", 0, "one\n"));
  printer.Write(Chunk(1, 0, "only", 4, "two\n"));
  printer.Write(Chunk(2, 0, "only", 0, "one\n"));
  EXPECT_EQ(out.str(), "one\ntwo\none\n");
  EXPECT_EQ(notices.str(), "==> attempt 2\n");
}

TEST(LogPrinterTest, FreshTrimsTheOverlapAndKeepsOffsets) {
  std::ostringstream out;
  LogPrinter printer(&out, nullptr, /*step_headers=*/false);
  printer.Fresh(Chunk(1, 0, "a", 0, "abcd"));
  const farm::v1::LogChunk fresh = printer.Fresh(Chunk(1, 0, "a", 2, "cdef"));
  EXPECT_EQ(fresh.offset(), 4);
  EXPECT_EQ(fresh.data(), "ef");
  EXPECT_EQ(printer.Fresh(Chunk(1, 0, "a", 0, "abcdef")).data(), "");
  // Another step's offsets are its own.
  EXPECT_EQ(printer.Fresh(Chunk(1, 1, "b", 0, "xy")).data(), "xy");
}

TEST(LogPrinterTest, OutputAfterAGapIsWritten) {
  std::ostringstream out;
  LogPrinter printer(&out, nullptr, /*step_headers=*/false);
  printer.Write(Chunk(1, 0, "a", 0, "ab"));
  printer.Write(Chunk(1, 0, "a", 10, "xy"));
  EXPECT_EQ(out.str(), "abxy");
}

TEST(LogPrinterTest, ReportsAFailedOutputStream) {
  std::ostringstream out;
  out.setstate(std::ios::badbit);
  LogPrinter printer(&out, nullptr, /*step_headers=*/false);
  EXPECT_FALSE(printer.Write(Chunk(1, 0, "a", 0, "ab")));
}

// For a terminal: the output cannot drive it, and text that needs no escaping is unchanged.
TEST(LogPrinterTest, EscapesControlsForATerminal) {
  std::ostringstream out;
  {
    LogPrinter printer(&out, nullptr, /*step_headers=*/false, /*escape_controls=*/true);
    ASSERT_TRUE(printer.Write(Chunk(1, 0, "a", 0, "\x1b[31mred\x1b[0m\tok\r\n")));
    ASSERT_TRUE(printer.Write(Chunk(1, 0, "a", 17, std::string("\x1b]0;title\x07\0\n", 12))));
    ASSERT_TRUE(printer.Write(Chunk(1, 0, "a", 29,
                                    "\xc2\x9b"
                                    "2J \xff caf\xc3\xa9\n")));
  }
  EXPECT_EQ(out.str(),
            "\\x1b[31mred\\x1b[0m\tok\r\n"
            "\\x1b]0;title\\x07\\x00\n"
            "\\u009b2J \\xff caf\xc3\xa9\n");
}

TEST(LogPrinterTest, ForATerminalACharacterCutBetweenChunksIsWrittenWhole) {
  std::ostringstream out;
  {
    LogPrinter printer(&out, nullptr, /*step_headers=*/false, /*escape_controls=*/true);
    ASSERT_TRUE(printer.Write(Chunk(1, 0, "a", 0, "caf\xc3")));
    EXPECT_EQ(out.str(), "caf");  // the first byte of "\xc3\xa9" waits for the second
    ASSERT_TRUE(printer.Write(Chunk(1, 0, "a", 4, "\xa9!\n\xe2\x9c")));
    EXPECT_EQ(out.str(), "caf\xc3\xa9!\n");
  }
  // The output ended inside a character: what came is written, escaped.
  EXPECT_EQ(out.str(), "caf\xc3\xa9!\n\\xe2\\x9c");
}

TEST(LogPrinterTest, StepNamesInHeadersAreEscaped) {
  std::ostringstream out;
  std::ostringstream notices;
  LogPrinter printer(&out, &notices, /*step_headers=*/true);
  ASSERT_TRUE(printer.Write(Chunk(1, 0, "evil\x1b[2J", 0, "x\n")));
  EXPECT_EQ(notices.str(), "==> step evil\\x1b[2J\n");
}

}  // namespace
}  // namespace farm::cli
