#include "common/digest.h"

#include <gtest/gtest.h>

#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace farm::common {
namespace {

using ::farm::testing::StatusIs;

// Known SHA-256 values (FIPS 180-2 examples and sha256sum of the strings).
constexpr char kAbc[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

TEST(DigestTest, HashesKnownVectors) {
  EXPECT_EQ(DigestOf("abc"), (Digest{kAbc, 3}));
  EXPECT_EQ(DigestOf(""), EmptyDigest());
  EXPECT_EQ(EmptyDigest().ToString(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855/0");
  // One million 'a' (FIPS 180-2 example 3), fed in uneven pieces.
  Sha256Hasher h;
  const std::string chunk(999, 'a');
  for (int i = 0; i < 1001; ++i) h.Update(chunk);
  h.Update(std::string(1'000'000 - 999 * 1001, 'a'));
  EXPECT_EQ(h.bytes(), 1'000'000);
  EXPECT_EQ(h.Finish(), (Digest{"cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
                                1'000'000}));
  // Finish resets the hasher.
  EXPECT_EQ(h.Finish(), EmptyDigest());
}

TEST(DigestTest, MovedHasherKeepsItsState) {
  Sha256Hasher a;
  a.Update("ab");
  Sha256Hasher b = std::move(a);
  b.Update("c");
  EXPECT_EQ(b.Finish(), (Digest{kAbc, 3}));
}

TEST(DigestTest, ParsesAndFormats) {
  ASSERT_OK_AND_ASSIGN(Digest d, ParseDigest(absl::StrCat(kAbc, "/3")));
  EXPECT_EQ(d.hash, kAbc);
  EXPECT_EQ(d.size, 3);
  EXPECT_EQ(d.ToString(), absl::StrCat(kAbc, "/3"));
  ASSERT_OK_AND_ASSIGN(Digest zero, ParseDigest(EmptyDigest().ToString()));
  EXPECT_EQ(zero, EmptyDigest());
}

TEST(DigestTest, RejectsMalformedText) {
  const std::string h = kAbc;
  for (const std::string& bad : {
           std::string(""),
           h,                            // no size
           h + "/",                      // empty size
           h + "/-1",                    // negative
           h + "/+3",                    // sign
           h + "/ 3",                    // space
           h + "/3x",                    // junk
           h + "/99999999999999999999",  // overflow
           h.substr(1) + "/3",           // 63 digits
           h + "0/3",                    // 65 digits
           std::string("BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD/3"),
           std::string(63, 'a') + "g/3",  // not hex
       }) {
    EXPECT_THAT(ParseDigest(bad), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
  EXPECT_THAT(MakeDigest(kAbc, -5), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_OK(MakeDigest(kAbc, 3));
}

TEST(DigestTest, HashesFiles) {
  ASSERT_OK_AND_ASSIGN(auto dir, testing::TempDir::Create("digest"));
  const std::string path = dir.Join("f");
  std::string data(3 << 20, 'x');
  data[12345] = 'y';
  ASSERT_OK(testing::WriteFile(path, data));
  ASSERT_OK_AND_ASSIGN(Digest d, DigestFile(path));
  EXPECT_EQ(d, DigestOf(data));
  EXPECT_THAT(DigestFile(dir.Join("missing")), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(DigestFile(dir.path()), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(DigestTest, OrdersAndHashesAsValues) {
  const Digest a{std::string(64, 'a'), 1};
  const Digest b{std::string(64, 'b'), 0};
  EXPECT_LT(a, b);
  EXPECT_NE(a, (Digest{a.hash, 2}));
  absl::flat_hash_set<Digest> set{a, b, a};
  EXPECT_EQ(set.size(), 2u);
}

}  // namespace
}  // namespace farm::common
