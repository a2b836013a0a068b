#include "coordinator/cas/resource_name.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "common/text.h"

namespace farm::coordinator {
namespace {

bool IsKeyword(absl::string_view s) {
  return s == "blobs" || s == "uploads" || s == "actions" || s == "actionResults" ||
         s == "operations" || s == "capabilities" || s == "compressed-blobs";
}

bool IsOtherDigestFunction(absl::string_view s) {
  return s == "sha1" || s == "md5" || s == "vso" || s == "sha384" || s == "sha512" ||
         s == "murmur3" || s == "sha256tree" || s == "blake3";
}

absl::Status Malformed(absl::string_view name, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("malformed resource name ", common::Quote(name), ": ", why));
}

// The instance: every segment before `end`.
absl::StatusOr<std::string> Instance(absl::string_view name,
                                     const std::vector<absl::string_view>& parts, size_t end) {
  for (size_t i = 0; i < end; ++i) {
    if (parts[i].empty()) return Malformed(name, "empty path segment");
    if (IsKeyword(parts[i])) {
      return Malformed(name, absl::StrCat("unexpected \"", parts[i], "\""));
    }
  }
  return absl::StrJoin(parts.begin(), parts.begin() + end, "/");
}

// Parses "[sha256/]HASH/SIZE" starting at parts[i]; sets *next to the index after SIZE.
absl::StatusOr<common::Digest> DigestAt(absl::string_view name,
                                        const std::vector<absl::string_view>& parts, size_t i,
                                        size_t* next) {
  if (i < parts.size() && parts[i].size() != common::kSha256HexLength) {
    if (parts[i] == "sha256") {
      ++i;
    } else if (IsOtherDigestFunction(parts[i])) {
      return absl::InvalidArgumentError(absl::StrCat("digest function \"", parts[i],
                                                     "\" is not supported; this server uses "
                                                     "SHA-256 only (in \"",
                                                     name, "\")"));
    }
  }
  if (i + 2 > parts.size()) return Malformed(name, "expected blobs/HASH/SIZE");
  absl::StatusOr<common::Digest> d = common::ParseDigest(absl::StrCat(parts[i], "/", parts[i + 1]));
  if (!d.ok()) return Malformed(name, d.status().message());
  *next = i + 2;
  return d;
}

}  // namespace

absl::StatusOr<ResourceName> ParseReadResourceName(absl::string_view name) {
  const std::vector<absl::string_view> parts = absl::StrSplit(name, '/');
  size_t i = 0;
  while (i < parts.size() && parts[i] != "blobs" && parts[i] != "compressed-blobs") ++i;
  if (i == parts.size()) return Malformed(name, "expected [INSTANCE/]blobs/HASH/SIZE");
  if (parts[i] == "compressed-blobs") {
    return absl::UnimplementedError(
        absl::StrCat("compressed blobs are not supported by this server (", common::Quote(name),
                     "); read blobs/"));
  }
  ResourceName out;
  FARM_ASSIGN_OR_RETURN(out.instance, Instance(name, parts, i));
  size_t next = 0;
  FARM_ASSIGN_OR_RETURN(out.digest, DigestAt(name, parts, i + 1, &next));
  if (next != parts.size()) return Malformed(name, "unexpected text after the size");
  return out;
}

absl::StatusOr<ResourceName> ParseWriteResourceName(absl::string_view name) {
  const std::vector<absl::string_view> parts = absl::StrSplit(name, '/');
  size_t i = 0;
  while (i < parts.size() && parts[i] != "uploads") ++i;
  if (i == parts.size()) {
    return Malformed(name, "expected [INSTANCE/]uploads/UUID/blobs/HASH/SIZE");
  }
  ResourceName out;
  FARM_ASSIGN_OR_RETURN(out.instance, Instance(name, parts, i));
  if (i + 2 >= parts.size() || parts[i + 1].empty()) {
    return Malformed(name, "expected uploads/UUID/blobs/HASH/SIZE");
  }
  out.uuid = std::string(parts[i + 1]);
  if (parts[i + 2] == "compressed-blobs") {
    return absl::UnimplementedError(
        absl::StrCat("compressed blobs are not supported by this server (", common::Quote(name),
                     "); write blobs/"));
  }
  if (parts[i + 2] != "blobs") return Malformed(name, "expected uploads/UUID/blobs/HASH/SIZE");
  size_t next = 0;
  FARM_ASSIGN_OR_RETURN(out.digest, DigestAt(name, parts, i + 3, &next));
  // Anything after the size is optional metadata, which the server ignores.
  return out;
}

}  // namespace farm::coordinator
