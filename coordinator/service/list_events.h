// JobService.ListEvents: a page of the event history (events/event_reader.h), read on the read
// pool. With wait_ms, a call that finds nothing past its page token is held (a long poll) until
// an event is committed (FollowerHub wakes it) or the wait ends (then it answers with no
// events and the same token), and always before the client's deadline.
#pragma once

#include <grpcpp/grpcpp.h>

#include "common/io_pool.h"
#include "coordinator/events/event_reader.h"
#include "coordinator/logs/follower_hub.h"
#include "farm/v1/farm.pb.h"

namespace farm::coordinator {

// A reactor for one ListEvents call (it deletes itself when done).
grpc::ServerUnaryReactor* NewListEventsCall(grpc::CallbackServerContext* ctx, EventReader* reader,
                                            FollowerHub* hub, common::IoPool* pool,
                                            const farm::v1::ListEventsRequest& req,
                                            farm::v1::ListEventsResponse* resp);

}  // namespace farm::coordinator
