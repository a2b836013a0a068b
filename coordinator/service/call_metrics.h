// farm_grpc_server_handled_total and farm_grpc_server_handling_seconds: every call of every
// service counted by service, method and status code, and timed from its start to its status,
// by a gRPC server interceptor. The series of each served method are made up front (a code's
// counter on its first use), so that a call costs two relaxed atomic adds and a map lookup, no
// lock. A call to a method not in `methods` counts under service and method "unknown"; one that
// ends without a status (its client went away) as CANCELLED. Calls the authenticator refuses
// (authenticator.h) are answered before any service sees them, and are not counted. Thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/metrics.h"

namespace grpc::experimental {
class ServerInterceptorFactoryInterface;
}  // namespace grpc::experimental

namespace farm::coordinator {

// `methods`: "/package.Service/Method". The metrics go into `registry`, which outlives the
// factory and the server.
std::shared_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeCallMetrics(
    common::metrics::Registry& registry, const std::vector<std::string>& methods);

}  // namespace farm::coordinator
