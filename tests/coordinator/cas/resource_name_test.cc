#include "coordinator/cas/resource_name.h"

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "tests/testing/status_matchers.h"

namespace farm::coordinator {
namespace {

using ::farm::testing::StatusIs;

const std::string kHash = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

TEST(ResourceNameTest, ParsesReadNames) {
  ASSERT_OK_AND_ASSIGN(ResourceName n, ParseReadResourceName("blobs/" + kHash + "/3"));
  EXPECT_EQ(n.instance, "");
  EXPECT_EQ(n.digest.hash, kHash);
  EXPECT_EQ(n.digest.size, 3);
  ASSERT_OK_AND_ASSIGN(n, ParseReadResourceName("main/x86/blobs/sha256/" + kHash + "/0"));
  EXPECT_EQ(n.instance, "main/x86");
  EXPECT_EQ(n.digest.size, 0);
}

TEST(ResourceNameTest, ParsesWriteNames) {
  ASSERT_OK_AND_ASSIGN(ResourceName n, ParseWriteResourceName("uploads/u-1/blobs/" + kHash + "/3"));
  EXPECT_EQ(n.instance, "");
  EXPECT_EQ(n.uuid, "u-1");
  EXPECT_EQ(n.digest.size, 3);
  ASSERT_OK_AND_ASSIGN(
      n, ParseWriteResourceName("inst/uploads/7d1e/blobs/" + kHash + "/3/path/to/file.o"));
  EXPECT_EQ(n.instance, "inst");
  EXPECT_EQ(n.uuid, "7d1e");
}

TEST(ResourceNameTest, RejectsMalformedNames) {
  for (const std::string& bad : {
           std::string(""), std::string("blobs"), "blobs/" + kHash, "blobs/" + kHash + "/-1",
           "blobs/" + kHash + "/3/extra", "blobs/" + kHash.substr(2) + "/3",
           "blobs/" + kHash + "00/3",
           "/blobs/" + kHash + "/3",  // empty instance segment
           "a//b/blobs/" + kHash + "/3",
           "actions/blobs/" + kHash + "/3",    // keyword as instance
           "blobs/sha1/" + kHash + "/3",       // other digest function
           "uploads/u/blobs/" + kHash + "/3",  // a write name is no read name
       }) {
    EXPECT_THAT(ParseReadResourceName(bad), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
  for (const std::string& bad : {
           std::string("blobs/") + kHash + "/3",
           std::string("uploads/blobs/") + kHash + "/3",
           "uploads//blobs/" + kHash + "/3",
           "uploads/u/blob/" + kHash + "/3",
           "uploads/u/blobs/" + kHash,
           "uploads/u/blobs/" + kHash + "/x",
           "uploads/u/blobs/md5/" + kHash + "/3",
       }) {
    EXPECT_THAT(ParseWriteResourceName(bad), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
  EXPECT_THAT(ParseReadResourceName("compressed-blobs/zstd/" + kHash + "/3"),
              StatusIs(absl::StatusCode::kUnimplemented));
  EXPECT_THAT(ParseWriteResourceName("uploads/u/compressed-blobs/zstd/" + kHash + "/3"),
              StatusIs(absl::StatusCode::kUnimplemented));
}

}  // namespace
}  // namespace farm::coordinator
