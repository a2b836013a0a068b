// ByteStream resource names of the REAPI CAS. Pure parsing, no I/O; thread-safe.
//
//   Read:  [{instance}/]blobs/[sha256/]{hash}/{size}
//   Write: [{instance}/]uploads/{uuid}/blobs/[sha256/]{hash}/{size}[/{anything}]
//
// {instance} is zero or more non-empty segments, none of them a REAPI keyword (blobs, uploads,
// actions, actionResults, operations, capabilities, compressed-blobs). {hash} is 64 lowercase
// hex digits, {size} a non-negative decimal. The digest function segment is optional and may
// only be "sha256" (the REAPI says clients omit it for SHA-256; Bazel does).
//
// Errors: INVALID_ARGUMENT for anything malformed, for negative sizes and for other digest
// functions; UNIMPLEMENTED for compressed-blobs (the farm advertises no compressors).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/digest.h"

namespace farm::coordinator {

struct ResourceName {
  std::string instance;  // "" for the default instance
  std::string uuid;      // Write names only: the client's upload id
  common::Digest digest;
};

absl::StatusOr<ResourceName> ParseReadResourceName(absl::string_view name);
absl::StatusOr<ResourceName> ParseWriteResourceName(absl::string_view name);

}  // namespace farm::coordinator
