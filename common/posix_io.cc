#include "common/posix_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace farm::common {

absl::Status ErrnoStatus(int err, absl::string_view what) {
  return absl::Status(absl::ErrnoToStatusCode(err), absl::StrCat(what, ": ", std::strerror(err)));
}

absl::Status WriteAll(int fd, absl::string_view data, absl::string_view what) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, what);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status WriteAllAt(int fd, absl::string_view data, int64_t offset, absl::string_view what) {
  while (!data.empty()) {
    const ssize_t n = ::pwrite(fd, data.data(), data.size(), offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, what);
    }
    data.remove_prefix(static_cast<size_t>(n));
    offset += n;
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> ReadExactlyAt(int fd, char* buf, size_t n, int64_t offset,
                                   absl::string_view what) {
  while (n > 0) {
    const ssize_t r = ::pread(fd, buf, n, offset);
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, what);
    }
    if (r == 0) return false;
    buf += r;
    n -= static_cast<size_t>(r);
    offset += r;
  }
  return true;
}

namespace {

// Copies fd `in` to fd `out` to the end of `in`, then syncs `out`.
absl::Status CopyFd(int in, int out, const std::string& src, const std::string& dst) {
  std::string buf(1 << 20, '\0');
  while (true) {
    const ssize_t n = ::read(in, buf.data(), buf.size());
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, absl::StrCat("cannot read ", src));
    }
    if (absl::Status s = WriteAll(out, absl::string_view(buf.data(), static_cast<size_t>(n)),
                                  absl::StrCat("cannot write ", dst));
        !s.ok()) {
      return s;
    }
  }
  if (::fsync(out) != 0) return ErrnoStatus(errno, absl::StrCat("cannot sync ", dst));
  return absl::OkStatus();
}

}  // namespace

absl::Status CopyFile(const std::string& src, const std::string& dst, int mode) {
  const int in = ::open(src.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return ErrnoStatus(errno, absl::StrCat("cannot open ", src));
  const int out = ::open(dst.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (out < 0) {
    const int err = errno;
    ::close(in);
    return ErrnoStatus(err, absl::StrCat("cannot create ", dst));
  }
  absl::Status s = CopyFd(in, out, src, dst);
  ::close(in);
  if (::close(out) != 0 && s.ok()) s = ErrnoStatus(errno, absl::StrCat("cannot close ", dst));
  if (!s.ok()) ::unlink(dst.c_str());
  return s;
}

absl::Status LinkOrCopyFile(const std::string& src, const std::string& dst, bool* linked) {
  *linked = false;
  if (::link(src.c_str(), dst.c_str()) == 0) {
    *linked = true;
    return absl::OkStatus();
  }
  // EXDEV: another file system; EPERM, EMLINK, ENOTSUP: links refused or used up there.
  const int err = errno;
  if (err != EXDEV && err != EPERM && err != EMLINK && err != ENOTSUP) {
    return ErrnoStatus(err, absl::StrCat("cannot link ", src, " to ", dst));
  }
  struct stat st;
  if (::stat(src.c_str(), &st) != 0) return ErrnoStatus(errno, absl::StrCat("cannot stat ", src));
  return CopyFile(src, dst, static_cast<int>(st.st_mode & 07777));
}

absl::Status SyncDirectory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("cannot open ", dir));
  absl::Status s;
  if (::fsync(fd) != 0) s = ErrnoStatus(errno, absl::StrCat("cannot sync ", dir));
  ::close(fd);
  return s;
}

int64_t DirectoryBytes(const std::string& dir) {
  std::error_code ec;
  int64_t total = 0;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code size_ec;
    if (it->is_regular_file(size_ec)) {
      const auto size = it->file_size(size_ec);
      if (!size_ec) total += static_cast<int64_t>(size);
    }
  }
  return total;
}

absl::Status WriteFileAtomically(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << content;
    out.close();
    if (!out) return absl::FailedPreconditionError(absl::StrCat("cannot write ", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::FailedPreconditionError(absl::StrCat("cannot rename ", tmp, " to ", path));
  }
  return absl::OkStatus();
}

}  // namespace farm::common
