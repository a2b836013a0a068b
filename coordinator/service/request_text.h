// Where the farm.v1 services check the text of a request: every string in it (ids, names,
// labels, env keys, ...) is UTF-8 without NUL or control characters (common::ValidateRequestText,
// which farmctl applies before sending too). Each RPC handler of JobService, AgentService and
// AdminService starts with this check, so a request that fails it changes nothing and is never
// echoed raw. Thread-safe.
#pragma once

#include <grpcpp/grpcpp.h>

#include "common/grpc_status.h"
#include "common/text.h"

namespace farm::coordinator {

// nullptr when every string of `req` is clean text; otherwise the call's reactor, already
// finished with INVALID_ARGUMENT naming the field (return it from the handler).
inline grpc::ServerUnaryReactor* RefuseUncleanText(grpc::CallbackServerContext* ctx,
                                                   const google::protobuf::Message& req) {
  absl::Status s = common::ValidateRequestText(req);
  if (s.ok()) return nullptr;
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(common::ToGrpcStatus(s));
  return reactor;
}

}  // namespace farm::coordinator
