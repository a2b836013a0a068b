// The REAPI ByteStream resource-name parser (coordinator/cas/resource_name.h) on arbitrary
// bytes, as both a read and a write name. A name it accepts holds a valid digest, and the name
// written back in its canonical form parses to the same thing; anything else is
// INVALID_ARGUMENT (or UNIMPLEMENTED for compressed blobs).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "coordinator/cas/resource_name.h"

namespace {

using farm::coordinator::ResourceName;

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "%s\n", what.c_str());
  std::abort();
}

void CheckError(const absl::Status& status) {
  if (status.code() != absl::StatusCode::kInvalidArgument &&
      status.code() != absl::StatusCode::kUnimplemented) {
    Fail(absl::StrCat("unexpected error: ", status.ToString()));
  }
}

void CheckDigest(const ResourceName& name) {
  if (!farm::common::ValidateHash(name.digest.hash).ok() || name.digest.size < 0) {
    Fail(absl::StrCat("accepted a bad digest: ", name.digest.ToString()));
  }
}

bool Same(const ResourceName& a, const ResourceName& b) {
  return a.instance == b.instance && a.uuid == b.uuid && a.digest == b.digest;
}

std::string Prefix(const ResourceName& name) {
  return name.instance.empty() ? "" : name.instance + "/";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);

  const absl::StatusOr<ResourceName> read = farm::coordinator::ParseReadResourceName(text);
  if (read.ok()) {
    CheckDigest(*read);
    if (!read->uuid.empty()) Fail("a read name with an upload id");
    const std::string canonical = absl::StrCat(Prefix(*read), "blobs/", read->digest.ToString());
    const auto again = farm::coordinator::ParseReadResourceName(canonical);
    if (!again.ok() || !Same(*again, *read)) Fail(absl::StrCat("no round trip: ", canonical));
  } else {
    CheckError(read.status());
  }

  const absl::StatusOr<ResourceName> write = farm::coordinator::ParseWriteResourceName(text);
  if (write.ok()) {
    CheckDigest(*write);
    if (write->uuid.empty() || write->uuid.find('/') != std::string::npos) {
      Fail("a write name with an empty or multi-segment upload id");
    }
    const std::string canonical =
        absl::StrCat(Prefix(*write), "uploads/", write->uuid, "/blobs/", write->digest.ToString());
    const auto again = farm::coordinator::ParseWriteResourceName(canonical);
    if (!again.ok() || !Same(*again, *write)) Fail(absl::StrCat("no round trip: ", canonical));
  } else {
    CheckError(write.status());
  }
  return 0;
}
