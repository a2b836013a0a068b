// The one bridge between absl::Status (domain code) and grpc::Status (the wire).
// Canonical codes map one to one; messages are kept.
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace farm::common {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace farm::common
