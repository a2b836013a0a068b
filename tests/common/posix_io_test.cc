#include "common/posix_io.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "common/unique_fd.h"
#include "tests/testing/temp_dir.h"

namespace farm::common {
namespace {

TEST(PosixIoTest, ErrnoStatusUsesTheCanonicalCodeAndNamesTheCall) {
  const absl::Status s = ErrnoStatus(ENOENT, "cannot open /x");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "cannot open /x: No such file or directory");
  EXPECT_EQ(ErrnoStatus(EACCES, "x").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(ErrnoStatus(ENOSPC, "x").code(), absl::StatusCode::kResourceExhausted);
}

TEST(PosixIoTest, WritesAndReadsWholeBuffers) {
  auto dir = testing::TempDir::Create();
  ASSERT_TRUE(dir.ok());
  const std::string path = dir->Join("f");
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  ASSERT_GE(fd.get(), 0);
  const std::string data(3 << 20, 'x');
  ASSERT_TRUE(WriteAll(fd.get(), data).ok());
  ASSERT_TRUE(WriteAllAt(fd.get(), "abc", 10).ok());
  std::string back(data.size(), '\0');
  auto full = ReadExactlyAt(fd.get(), back.data(), back.size(), 0);
  ASSERT_TRUE(full.ok());
  EXPECT_TRUE(*full);
  EXPECT_EQ(back.substr(9, 5), "xabcx");
  // Past the end: a premature end of file, not an error.
  char more[10];
  auto past = ReadExactlyAt(fd.get(), more, sizeof(more), static_cast<int64_t>(data.size()) - 5);
  ASSERT_TRUE(past.ok());
  EXPECT_FALSE(*past);
}

TEST(PosixIoTest, AFailedWriteNamesWhatWasWritten) {
  const absl::Status s = WriteAll(-1, "data", "writing the spill file");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);  // EBADF
  EXPECT_NE(s.message().find("writing the spill file: "), absl::string_view::npos);
}

}  // namespace
}  // namespace farm::common
