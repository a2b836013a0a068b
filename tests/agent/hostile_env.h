// The hostile path tests' environment (tests/agent/hostile_*_test.cc): a workspace (or farmctl's
// DIR) next to an outside directory holding canary files, ways to plant hostile entries in it,
// and the checks that nothing outside was read or written.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/safe_path.h"
#include "common/unique_fd.h"
#include "tests/agent/test_util.h"

namespace farm::agent::testing {

namespace hostile_fs = std::filesystem;

inline constexpr char kCanary[] = "farm canary: this must never leave its directory\n";
inline constexpr char kInside[] = "inside the workspace\n";
inline constexpr char kPayload[] = "an input or a downloaded artifact\n";

// A fresh base directory holding `ws` (the workspace, or farmctl's DIR) and `outside` (canary
// files: secret, sub/secret). Removed without following links (paths may exceed PATH_MAX).
struct Env {
  Env() {
    std::string tmpl = ::testing::TempDir() + "hostile.XXXXXX";
    base = ::mkdtemp(tmpl.data()) != nullptr ? tmpl : "";
    ws = base + "/ws";
    outside = base + "/outside";
    hostile_fs::create_directories(ws);
    hostile_fs::create_directories(outside + "/sub");
    std::ofstream(outside + "/secret") << kCanary;
    std::ofstream(outside + "/sub/secret") << kCanary;
  }
  ~Env() {
    const size_t slash = base.rfind('/');
    common::UniqueFd parent(::open(base.substr(0, slash).c_str(), O_RDONLY | O_DIRECTORY));
    (void)common::RemoveTreeAt(parent.get(), base.substr(slash + 1), base);
  }
  std::string In(const std::string& relative) const { return ws + "/" + relative; }

  std::string base;
  std::string ws;
  std::string outside;
};

inline void Write(const std::string& path, const std::string& data) {
  hostile_fs::create_directories(hostile_fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << data;
}

inline void Link(const std::string& target, const std::string& path) {
  hostile_fs::create_directories(hostile_fs::path(path).parent_path());
  hostile_fs::create_symlink(target, path);
}

// Every entry below `dir`, links not followed: "f:" content, "l:" target, "d", or "o" (other).
inline std::map<std::string, std::string> Snapshot(const std::string& dir) {
  std::map<std::string, std::string> entries;
  std::error_code ec;
  for (hostile_fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    const hostile_fs::file_status st = it->symlink_status();
    std::string& entry = entries[it->path().string()];
    if (hostile_fs::is_symlink(st)) {
      entry = "l:" + hostile_fs::read_symlink(it->path()).string();
    } else if (hostile_fs::is_regular_file(st)) {
      entry = "f:" + ReadFile(it->path().string());
    } else {
      entry = hostile_fs::is_directory(st) ? "d" : "o";
    }
  }
  return entries;
}

// Sets the canary files' access time an hour before their modification: with relatime (or
// strictatime) any read of them moves it. Returns the access times set.
inline std::map<std::string, int64_t> ArmAccessTimes(const Env& env) {
  std::map<std::string, int64_t> times;
  for (const std::string& path : {env.outside + "/secret", env.outside + "/sub/secret"}) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) continue;
    struct timespec ts[2] = {{st.st_mtim.tv_sec - 3600, 0}, {UTIME_OMIT, UTIME_OMIT}};
    ::utimensat(AT_FDCWD, path.c_str(), ts, 0);
    times[path] = st.st_mtim.tv_sec - 3600;
  }
  return times;
}

inline std::map<std::string, int64_t> AccessTimes(const Env& env) {
  std::map<std::string, int64_t> times;
  for (const std::string& path : {env.outside + "/secret", env.outside + "/sub/secret"}) {
    struct stat st;
    if (::stat(path.c_str(), &st) == 0) times[path] = st.st_atim.tv_sec;
  }
  return times;
}

// A chain of `levels` directories (names of 250 bytes) beneath `ws`, made with mkdirat (the whole
// path is too long for one system call), with a file named `file` at its end.
inline void MakeDeepPath(const std::string& ws, int levels, const std::string& file) {
  common::UniqueFd dir(::open(ws.c_str(), O_RDONLY | O_DIRECTORY));
  const std::string name(250, 'a');
  for (int i = 0; i < levels; ++i) {
    ASSERT_EQ(::mkdirat(dir.get(), name.c_str(), 0755), 0);
    dir.Reset(::openat(dir.get(), name.c_str(), O_RDONLY | O_DIRECTORY));
    ASSERT_GE(dir.get(), 0);
  }
  common::UniqueFd created(::openat(dir.get(), file.c_str(), O_WRONLY | O_CREAT, 0644));
  ASSERT_GE(created.get(), 0);
}

inline void MakeFifo(const std::string& path) {
  hostile_fs::create_directories(hostile_fs::path(path).parent_path());
  ASSERT_EQ(::mkfifo(path.c_str(), 0644), 0) << path;
}

inline void MakeSocket(const std::string& path) {
  hostile_fs::create_directories(hostile_fs::path(path).parent_path());
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)), 0) << path;
  ::close(fd);
}

// Swaps `a` and `b` (both exist) in one step.
inline void Exchange(const std::string& a, const std::string& b) {
  ASSERT_EQ(::renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE), 0)
      << a << " <-> " << b << ": " << std::strerror(errno);
}

// One entry planted in the workspace (or DIR) before a row runs. In a link's target, "$OUT"
// stands for the outside directory.
struct Plant {
  // kTooLongDir: directories deeper than common::kMaxRelativePathBytes, a file at the end;
  // kTooLongFile: directories within the limit, a file whose name takes the path over it.
  enum class Kind { kFile, kLink, kFifo, kSocket, kTooLongDir, kTooLongFile };
  Kind kind;
  std::string path;    // relative to the workspace
  std::string target;  // a link's target, a file's content
};

inline Plant File(std::string path) { return {Plant::Kind::kFile, std::move(path), kInside}; }
inline Plant Symlink(std::string target, std::string path) {
  return {Plant::Kind::kLink, std::move(path), std::move(target)};
}
inline Plant Fifo(std::string path) { return {Plant::Kind::kFifo, std::move(path), ""}; }
inline Plant Socket(std::string path) { return {Plant::Kind::kSocket, std::move(path), ""}; }
inline Plant TooLongDir() { return {Plant::Kind::kTooLongDir, "", ""}; }
inline Plant TooLongFile() { return {Plant::Kind::kTooLongFile, "", ""}; }

inline void PlantAll(const Env& env, const std::vector<Plant>& plants) {
  for (const Plant& p : plants) {
    std::string target = p.target;
    for (size_t at = target.find("$OUT"); at != std::string::npos; at = target.find("$OUT")) {
      target.replace(at, 4, env.outside);
    }
    switch (p.kind) {
      case Plant::Kind::kFile:
        Write(env.In(p.path), target);
        break;
      case Plant::Kind::kLink:
        Link(target, env.In(p.path));
        break;
      case Plant::Kind::kFifo:
        MakeFifo(env.In(p.path));
        break;
      case Plant::Kind::kSocket:
        MakeSocket(env.In(p.path));
        break;
      case Plant::Kind::kTooLongDir:  // 17 * 251 bytes
        MakeDeepPath(env.ws, common::kMaxRelativePathBytes / 251 + 1, "f");
        break;
      case Plant::Kind::kTooLongFile:  // 16 * 251 bytes and 200 more
        MakeDeepPath(env.ws, common::kMaxRelativePathBytes / 251, std::string(200, 'f'));
        break;
    }
  }
}

}  // namespace farm::agent::testing
