// Small helpers for unary calls on the callback API, shared by the services.
#pragma once

#include <grpcpp/support/server_callback.h>

#include <utility>

#include "absl/status/statusor.h"
#include "common/grpc_status.h"
#include "common/io_pool.h"

namespace farm::coordinator {

// A callback that finishes the call with `r`, moving its value into *resp.
template <typename T>
auto FinishWith(grpc::ServerUnaryReactor* reactor, T* resp) {
  return [reactor, resp](absl::StatusOr<T> r) {
    if (r.ok()) *resp = *std::move(r);
    reactor->Finish(common::ToGrpcStatus(r.status()));
  };
}

// Runs `fn` (returning absl::StatusOr<T>: a store read, or a rare synced write) on the pool,
// never on gRPC's callback thread, and finishes the call with its result.
template <typename T, typename Fn>
grpc::ServerUnaryReactor* RunOnPool(grpc::CallbackServerContext* ctx, common::IoPool* pool, T* resp,
                                    Fn fn) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  pool->Post([done = FinishWith(reactor, resp), fn = std::move(fn)] { done(fn()); });
  return reactor;
}

}  // namespace farm::coordinator
