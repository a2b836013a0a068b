#include "agent/blob_cache.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/logging.h"
#include "common/posix_io.h"
#include "common/safe_path.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"

namespace farm::agent {
namespace {

constexpr size_t kCopyBufferBytes = 1 << 20;

// Copies `in` to `out` with read/write, hashing it; DATA_LOSS unless it is `expected`.
absl::Status CopyHashed(int in, int out, const common::Digest& expected) {
  std::vector<char> buffer(kCopyBufferBytes);
  common::Sha256Hasher hasher;
  for (;;) {
    const ssize_t n = ::read(in, buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return common::ErrnoStatus(errno, "read");
    }
    if (n == 0) break;
    hasher.Update(buffer.data(), static_cast<size_t>(n));
    if (hasher.bytes() > expected.size) break;  // no need to read a grown file to its end
    FARM_RETURN_IF_ERROR(
        common::WriteAll(out, absl::string_view(buffer.data(), static_cast<size_t>(n))));
  }
  const int64_t bytes = hasher.bytes();
  const common::Digest got = hasher.Finish();
  if (bytes != expected.size || got.hash != expected.hash) {
    return absl::DataLossError(absl::StrCat("the cached copy of blob ", expected.ToString(),
                                            " does not match its digest"));
  }
  return absl::OkStatus();
}

// Copies `in` (of `size` bytes) to `out` in the kernel (a reflink where the file system can).
absl::Status CopyInKernel(int in, int out, int64_t size) {
  int64_t copied = 0;
  while (copied < size) {
    const ssize_t n =
        ::copy_file_range(in, nullptr, out, nullptr, static_cast<size_t>(size - copied), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      // Not supported between these files (older kernels, other file systems): plain copy.
      if (copied == 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL ||
                          errno == EOPNOTSUPP || errno == EBADF)) {
        break;
      }
      return common::ErrnoStatus(errno, "copy_file_range");
    }
    if (n == 0) {
      return absl::DataLossError(
          absl::StrCat("the cached blob ended after ", copied, " of ", size, " bytes"));
    }
    copied += n;
  }
  if (copied == size) return absl::OkStatus();
  std::vector<char> buffer(kCopyBufferBytes);
  while (copied < size) {
    const ssize_t n = ::read(in, buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return common::ErrnoStatus(errno, "read");
    }
    if (n == 0) {
      return absl::DataLossError(
          absl::StrCat("the cached blob ended after ", copied, " of ", size, " bytes"));
    }
    FARM_RETURN_IF_ERROR(
        common::WriteAll(out, absl::string_view(buffer.data(), static_cast<size_t>(n))));
    copied += n;
  }
  return absl::OkStatus();
}

// Creates `name` in `dir` (`label` in messages) with the content of the cached blob `src`.
// `verify`: hash what is read and fail with DATA_LOSS unless it matches `digest` (a missing `src`
// is DATA_LOSS too). On error the new file is removed.
absl::Status CopyOut(const std::string& src, int dir, const std::string& name,
                     absl::string_view label, bool executable, const common::Digest& digest,
                     bool verify) {
  // The cache directory is reachable by steps: a cached blob replaced by a link (or a FIFO) is
  // never followed or read, but discarded (DATA_LOSS) and fetched again.
  common::UniqueFd in(::open(src.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (in.get() < 0) {
    if (errno == ENOENT || errno == ELOOP) {
      return absl::DataLossError(absl::StrCat("the cached blob ", digest.ToString(), " is gone"));
    }
    return common::ErrnoStatus(errno, absl::StrCat("cannot open the cached blob ", src));
  }
  struct stat st;
  if (::fstat(in.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return absl::DataLossError(
        absl::StrCat("the cached blob ", digest.ToString(), " is not a regular file"));
  }
  FARM_ASSIGN_OR_RETURN(common::UniqueFd out,
                        common::CreateFileAt(dir, name, executable ? 0777 : 0666, label));
  absl::Status status = verify ? CopyHashed(in.get(), out.get(), digest)
                               : CopyInKernel(in.get(), out.get(), digest.size);
  if (status.ok() && out.Close() != 0)
    status = common::ErrnoStatus(errno, absl::StrCat("write ", label));
  if (!status.ok()) ::unlinkat(dir, name.c_str(), 0);
  return status;
}

bool IsBlobName(absl::string_view name) { return common::ValidateHash(name).ok(); }

}  // namespace

BlobCache::BlobCache(Options options, common::CasClient* cas)
    : options_(std::move(options)), cas_(cas) {}

absl::StatusOr<std::unique_ptr<BlobCache>> BlobCache::Open(Options options,
                                                           common::CasClient* cas) {
  FARM_CHECK(cas != nullptr);
  FARM_CHECK(options.max_bytes >= 0);
  std::unique_ptr<BlobCache> cache(new BlobCache(std::move(options), cas));
  FARM_RETURN_IF_ERROR(cache->Scan());
  return cache;
}

absl::Status BlobCache::Scan() {
  DIR* dir = ::opendir(options_.dir.c_str());
  if (dir == nullptr) {
    if (errno == ENOENT) return absl::OkStatus();
    return common::ErrnoStatus(errno, absl::StrCat("cannot read the blob cache ", options_.dir));
  }
  struct Found {
    int64_t mtime_ns;
    std::string hash;
    int64_t size;
  };
  std::vector<Found> found;
  int removed = 0;
  while (struct dirent* entry = ::readdir(dir)) {
    const std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    const std::string path = absl::StrCat(options_.dir, "/", name);
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) continue;
    if (!S_ISREG(st.st_mode) || !IsBlobName(name)) {
      // Only this cache writes here: anything else is a fetch that was interrupted.
      if (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)) {
        if (::unlink(path.c_str()) == 0) ++removed;
      } else {
        FARM_LOG(WARNING) << "blob cache: ignoring " << path << " (not a file)";
      }
      continue;
    }
    found.push_back({int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec, name,
                     static_cast<int64_t>(st.st_size)});
  }
  ::closedir(dir);
  std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) {
    return a.mtime_ns != b.mtime_ns ? a.mtime_ns < b.mtime_ns : a.hash < b.hash;
  });
  absl::MutexLock lock(&mu_);
  for (const Found& f : found) {
    // A blob whose size is not its digest's is caught when it is used (the copy verifies).
    Entry& e = entries_[f.hash];
    e.id = next_id_++;
    e.size = f.size;
    e.ready = true;
    e.tick = next_tick_++;
    lru_.emplace(e.tick, f.hash);
    bytes_ += f.size;
  }
  const int64_t evicted_before = stats_.evictions;
  EvictLocked();
  FARM_LOG(INFO) << "blob cache " << options_.dir << ": " << entries_.size() << " blobs, " << bytes_
                 << " bytes (limit " << options_.max_bytes << "); "
                 << stats_.evictions - evicted_before << " evicted, " << removed
                 << " leftover temporary files removed";
  return absl::OkStatus();
}

std::string BlobCache::PathOf(const common::Digest& digest) const {
  return absl::StrCat(options_.dir, "/", digest.hash);
}

BlobCache::Stats BlobCache::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

int64_t BlobCache::bytes() const {
  absl::MutexLock lock(&mu_);
  return bytes_;
}

int BlobCache::entries() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(entries_.size());
}

bool BlobCache::Contains(const common::Digest& digest) const {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(digest.hash);
  return it != entries_.end() && it->second.ready;
}

void BlobCache::Touch(const std::string& hash, Entry& entry) {
  if (entry.tick != 0) lru_.erase(entry.tick);
  entry.tick = next_tick_++;
  lru_.emplace(entry.tick, hash);
}

void BlobCache::EvictLocked() {
  for (auto it = lru_.begin(); bytes_ > options_.max_bytes && it != lru_.end();) {
    auto e = entries_.find(it->second);
    FARM_CHECK(e != entries_.end() && e->second.ready);
    if (e->second.pins > 0) {
      ++it;
      continue;
    }
    // Unlinking under the lock keeps the index and the directory in step; it is one syscall.
    const std::string path = absl::StrCat(options_.dir, "/", it->second);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      FARM_LOG(WARNING) << "blob cache: cannot evict " << path << ": " << std::strerror(errno);
    }
    bytes_ -= e->second.size;
    ++stats_.evictions;
    entries_.erase(e);
    it = lru_.erase(it);
  }
}

absl::StatusOr<BlobCache::Pin> BlobCache::Acquire(const common::Digest& digest,
                                                  common::CancelSource* cancel) {
  uint64_t id = 0;
  {
    absl::MutexLock lock(&mu_);
    for (;;) {
      auto it = entries_.find(digest.hash);
      if (it == entries_.end()) break;  // we fetch it
      Entry& e = it->second;
      if (e.ready) {
        ++e.pins;
        ++stats_.hits;
        Touch(digest.hash, e);
        // The last use survives a restart as the mtime (atime is often not kept).
        const struct timespec times[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
        ::utimensat(AT_FDCWD, PathOf(digest).c_str(), times, 0);
        return Pin{e.id, false};
      }
      // Another caller is fetching it: wait for that, checking for our own cancel now and then.
      const uint64_t waiting_for = e.id;
      auto done = [this, &digest, waiting_for]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        auto found = entries_.find(digest.hash);
        return found == entries_.end() || found->second.id != waiting_for || found->second.ready;
      };
      while (!mu_.AwaitWithTimeout(absl::Condition(&done), absl::Milliseconds(100))) {
        if (cancel != nullptr && cancel->SleepFor(0)) return absl::CancelledError("cancelled");
      }
    }
    Entry& e = entries_[digest.hash];
    e.id = id = next_id_++;
    e.size = digest.size;
    e.pins = 1;
    ++stats_.misses;
  }

  std::error_code ec;
  std::filesystem::create_directories(options_.dir, ec);
  absl::Status fetched =
      ec ? common::ErrnoStatus(ec.value(),
                               absl::StrCat("cannot create the blob cache ", options_.dir))
         : cas_->Download(digest, PathOf(digest), /*executable=*/false, cancel);
  // Read-only: a reminder to anyone who finds it that it is shared (the agent can still unlink
  // it, which takes only the directory's write permission).
  if (fetched.ok()) ::chmod(PathOf(digest).c_str(), 0444);

  absl::MutexLock lock(&mu_);
  auto it = entries_.find(digest.hash);
  FARM_CHECK(it != entries_.end() && it->second.id == id);  // only its fetcher removes it
  if (!fetched.ok()) {
    entries_.erase(it);  // waiters wake up and fetch it themselves
    return fetched;
  }
  Entry& e = it->second;
  e.ready = true;
  Touch(digest.hash, e);
  bytes_ += e.size;
  stats_.bytes_fetched += e.size;
  EvictLocked();
  return Pin{id, true};
}

void BlobCache::Release(const common::Digest& digest, const Pin& pin) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(digest.hash);
  if (it == entries_.end() || it->second.id != pin.id) return;  // discarded meanwhile
  --it->second.pins;
  EvictLocked();
}

void BlobCache::Discard(const common::Digest& digest, const Pin& pin) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(digest.hash);
  if (it == entries_.end() || it->second.id != pin.id) return;  // someone else did
  const std::string path = PathOf(digest);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    FARM_LOG(WARNING) << "blob cache: cannot remove " << path << ": " << std::strerror(errno);
  }
  lru_.erase(it->second.tick);
  bytes_ -= it->second.size;
  ++stats_.corrupt;
  entries_.erase(it);
}

absl::Status BlobCache::Materialize(const common::Digest& digest, const std::string& dest,
                                    bool executable, common::CancelSource* cancel) {
  const size_t slash = dest.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : dest.substr(0, slash + 1);
  common::UniqueFd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.get() < 0) return common::ErrnoStatus(errno, absl::StrCat("cannot create ", dest));
  return MaterializeAt(digest, dir_fd.get(),
                       slash == std::string::npos ? dest : dest.substr(slash + 1), dest, executable,
                       cancel);
}

absl::Status BlobCache::MaterializeAt(const common::Digest& digest, int dir,
                                      const std::string& name, absl::string_view label,
                                      bool executable, common::CancelSource* cancel) {
  struct stat st;
  if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    return absl::AlreadyExistsError(absl::StrCat(label, " already exists"));
  }
  if (digest == common::EmptyDigest()) {
    return common::CreateFileAt(dir, name, executable ? 0777 : 0666, label).status();
  }

  // One more fetch after a blob did not match its digest (in the cache, or as received: a
  // corrupted cache file, a flaky disk or network); a second mismatch is an error.
  for (int mismatches = 0;;) {
    absl::Status status;
    if (options_.max_bytes == 0 || digest.size > options_.max_bytes) {
      // Not cached: straight into the workspace (Download verifies, and leaves nothing on error).
      {
        absl::MutexLock lock(&mu_);
        ++stats_.misses;
      }
      status = cas_->DownloadAt(digest, dir, name, label, executable, cancel);
      if (status.ok()) {
        absl::MutexLock lock(&mu_);
        stats_.bytes_fetched += digest.size;
      }
    } else {
      absl::StatusOr<Pin> pin = Acquire(digest, cancel);
      if (!pin.ok()) {
        status = pin.status();
      } else {
        // A blob this call fetched was verified as it arrived; a cached one is verified now.
        status = CopyOut(PathOf(digest), dir, name, label, executable, digest,
                         /*verify=*/!pin->fetched);
        if (status.code() == absl::StatusCode::kDataLoss) {
          Discard(digest, *pin);
        } else {
          Release(digest, *pin);
        }
      }
    }
    if (status.code() != absl::StatusCode::kDataLoss || ++mismatches > 1) return status;
    FARM_LOG(WARNING) << "blob cache: " << status.message() << "; fetching it again";
  }
}

}  // namespace farm::agent
