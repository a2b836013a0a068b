// What the CAS tests share: reproducible random blob contents, and a blob store's Put and
// Contains with gtest expectations on their errors.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>

#include "absl/status/statusor.h"
#include "common/digest.h"
#include "coordinator/cas/blob_store.h"
#include "tests/testing/status_matchers.h"

namespace farm::coordinator::cas_testing {

// `n` bytes, the same for the same seed.
inline std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::string out(n, '\0');
  for (auto& c : out) c = static_cast<char>(gen());
  return out;
}

// Stores RandomBytes(size, seed) in `blobs`; its digest.
inline common::Digest PutRandom(BlobStore& blobs, size_t size, uint32_t seed) {
  const std::string data = RandomBytes(size, seed);
  const common::Digest d = common::DigestOf(data);
  EXPECT_OK(blobs.Put(d, data));
  return d;
}

// Whether `blobs` has `d` (false, with a test failure, when it cannot tell).
inline bool Has(BlobStore& blobs, const common::Digest& d) {
  absl::StatusOr<bool> r = blobs.Contains(d);
  EXPECT_OK(r);
  return r.ok() && *r;
}

}  // namespace farm::coordinator::cas_testing
