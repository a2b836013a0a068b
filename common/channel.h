// Client channels to the coordinator, with the farm's explicit message limits and keepalive.
#pragma once

#include <grpcpp/channel.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace farm::common {

// Largest gRPC message either side accepts (requests and responses): 16 MiB.
inline constexpr int kMaxGrpcMessageBytes = 16 << 20;

// "HOST:PORT" (or any gRPC target URI) → a plaintext channel. INVALID_ARGUMENT on an empty
// target.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const std::string& target);

}  // namespace farm::common
