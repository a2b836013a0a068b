// SHA-256 content digests as the farm's CAS (REAPI v2) uses them: a blob is named by the 64
// lowercase hex digits of its SHA-256 and its size in bytes, written "HASH/SIZE".
// Shared by the coordinator, the agent and farmctl.
//
// Thread-safety: Digest is a value type; a Sha256Hasher is used by one thread at a time; the
// free functions are thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

typedef struct evp_md_ctx_st EVP_MD_CTX;

namespace farm::common {

// Hex digits in a SHA-256 hash.
inline constexpr size_t kSha256HexLength = 64;

// The address of a blob. A default-constructed Digest is not valid (empty hash); use
// MakeDigest / ParseDigest / the hashers to get one that is.
struct Digest {
  std::string hash;  // 64 lowercase hex digits
  int64_t size = 0;  // bytes, >= 0

  // "HASH/SIZE".
  std::string ToString() const;

  friend bool operator==(const Digest& a, const Digest& b) {
    return a.size == b.size && a.hash == b.hash;
  }
  friend bool operator!=(const Digest& a, const Digest& b) { return !(a == b); }
  friend bool operator<(const Digest& a, const Digest& b) {
    return a.hash != b.hash ? a.hash < b.hash : a.size < b.size;
  }
  template <typename H>
  friend H AbslHashValue(H h, const Digest& d) {
    return H::combine(std::move(h), d.hash, d.size);
  }
  friend std::ostream& operator<<(std::ostream& os, const Digest& d) { return os << d.ToString(); }
};

// OK when `hash` is exactly 64 lowercase hex digits; INVALID_ARGUMENT (naming the problem)
// otherwise. Uppercase is rejected: the REAPI spells hashes in lowercase and the CAS compares
// them byte for byte.
absl::Status ValidateHash(absl::string_view hash);

// A validated Digest. INVALID_ARGUMENT for a malformed hash or a negative size.
absl::StatusOr<Digest> MakeDigest(absl::string_view hash, int64_t size);

// Parses "HASH/SIZE" (64 lowercase hex digits, '/', a non-negative decimal size).
// INVALID_ARGUMENT otherwise, quoting the input.
absl::StatusOr<Digest> ParseDigest(absl::string_view text);

// The digest of zero bytes (e3b0c442.../0). The CAS always holds it.
const Digest& EmptyDigest();

// Incremental SHA-256 over a stream of bytes (OpenSSL EVP). Counts the bytes, so Finish()
// yields the whole Digest. Movable, not copyable.
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(Sha256Hasher&& other) noexcept;
  Sha256Hasher& operator=(Sha256Hasher&& other) noexcept;
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;

  void Update(const void* data, size_t size);
  void Update(absl::string_view data) { Update(data.data(), data.size()); }
  // Bytes hashed so far.
  int64_t bytes() const { return bytes_; }
  // The digest of everything given to Update. The hasher is then reset to empty, ready for
  // another stream.
  Digest Finish();
  // Forgets everything hashed so far.
  void Reset();

 private:
  EVP_MD_CTX* ctx_ = nullptr;
  int64_t bytes_ = 0;
};

// The digest of `data`.
Digest DigestOf(absl::string_view data);

// The digest of a file's contents, read in bounded chunks. Errors have errno's code
// (common::ErrnoStatus): NOT_FOUND when the file is missing, PERMISSION_DENIED when unreadable,
// FAILED_PRECONDITION for a directory or a path through a file; messages name the path.
absl::StatusOr<Digest> DigestFile(const std::string& path);

// 64 lowercase hex digits of 32 raw bytes.
std::string HexEncode(const unsigned char* bytes, size_t size);

}  // namespace farm::common
