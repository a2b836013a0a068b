#include "common/digest.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/posix_io.h"
#include "common/text.h"

namespace farm::common {
namespace {

bool IsLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

}  // namespace

std::string Digest::ToString() const { return absl::StrCat(hash, "/", size); }

absl::Status ValidateHash(absl::string_view hash) {
  if (hash.size() != kSha256HexLength) {
    return absl::InvalidArgumentError(absl::StrCat("hash ", Quote(hash), " has ", hash.size(),
                                                   " characters; a SHA-256 hash has 64"));
  }
  for (char c : hash) {
    if (!IsLowerHex(c)) {
      return absl::InvalidArgumentError(
          absl::StrCat("hash ", Quote(hash), " is not lowercase hexadecimal"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Digest> MakeDigest(absl::string_view hash, int64_t size) {
  if (absl::Status s = ValidateHash(hash); !s.ok()) return s;
  if (size < 0) {
    return absl::InvalidArgumentError(absl::StrCat("size ", size, " of ", hash, " is negative"));
  }
  return Digest{std::string(hash), size};
}

absl::StatusOr<Digest> ParseDigest(absl::string_view text) {
  const size_t slash = text.find('/');
  if (slash == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(Quote(text), " is not a digest: expected HASH/SIZE"));
  }
  absl::string_view size_text = text.substr(slash + 1);
  int64_t size = 0;
  // SimpleAtoi accepts a leading '+' and surrounding spaces; a digest's size is digits only.
  bool digits = !size_text.empty() && size_text.size() <= 19;
  for (char c : size_text) digits = digits && c >= '0' && c <= '9';
  if (!digits || !absl::SimpleAtoi(size_text, &size)) {
    return absl::InvalidArgumentError(absl::StrCat(
        Quote(text), " is not a digest: the size after '/' must be a non-negative integer"));
  }
  return MakeDigest(text.substr(0, slash), size);
}

const Digest& EmptyDigest() {
  static const Digest* const kEmpty =
      new Digest{"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", 0};
  return *kEmpty;
}

Sha256Hasher::Sha256Hasher() : ctx_(EVP_MD_CTX_new()) {
  FARM_CHECK(ctx_ != nullptr) << "EVP_MD_CTX_new failed";
  Reset();
}

Sha256Hasher::~Sha256Hasher() {
  if (ctx_ != nullptr) EVP_MD_CTX_free(ctx_);
}

Sha256Hasher::Sha256Hasher(Sha256Hasher&& other) noexcept
    : ctx_(std::exchange(other.ctx_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

Sha256Hasher& Sha256Hasher::operator=(Sha256Hasher&& other) noexcept {
  if (this != &other) {
    if (ctx_ != nullptr) EVP_MD_CTX_free(ctx_);
    ctx_ = std::exchange(other.ctx_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void Sha256Hasher::Reset() {
  FARM_CHECK(ctx_ != nullptr) << "use of a moved-from Sha256Hasher";
  FARM_CHECK(EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) == 1) << "EVP_DigestInit_ex failed";
  bytes_ = 0;
}

void Sha256Hasher::Update(const void* data, size_t size) {
  FARM_CHECK(ctx_ != nullptr) << "use of a moved-from Sha256Hasher";
  if (size == 0) return;
  FARM_CHECK(EVP_DigestUpdate(ctx_, data, size) == 1) << "EVP_DigestUpdate failed";
  bytes_ += static_cast<int64_t>(size);
}

Digest Sha256Hasher::Finish() {
  FARM_CHECK(ctx_ != nullptr) << "use of a moved-from Sha256Hasher";
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  FARM_CHECK(EVP_DigestFinal_ex(ctx_, md, &len) == 1) << "EVP_DigestFinal_ex failed";
  Digest d{HexEncode(md, len), bytes_};
  Reset();
  return d;
}

std::string HexEncode(const unsigned char* bytes, size_t size) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(size * 2, '0');
  for (size_t i = 0; i < size; ++i) {
    out[2 * i] = kHex[bytes[i] >> 4];
    out[2 * i + 1] = kHex[bytes[i] & 0xf];
  }
  return out;
}

Digest DigestOf(absl::string_view data) {
  Sha256Hasher hasher;
  hasher.Update(data);
  return hasher.Finish();
}

absl::StatusOr<Digest> DigestFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("cannot open ", path));
  struct stat st;
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    ::close(fd);
    return ErrnoStatus(EISDIR, absl::StrCat("cannot hash ", path));
  }
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  Sha256Hasher hasher;
  std::vector<char> buf(1 << 20);
  while (true) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return ErrnoStatus(err, absl::StrCat("cannot read ", path));
    }
    hasher.Update(buf.data(), static_cast<size_t>(n));
  }
  ::close(fd);
  return hasher.Finish();
}

}  // namespace farm::common
