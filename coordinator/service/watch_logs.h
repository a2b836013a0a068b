// JobService.WatchLogs: a job's stored output, then (with follow) what is committed later,
// until the job ends. Steps in order, each from offset 0; with follow it moves on to a new
// attempt when the job is retried. A commit only wakes the call (FollowerHub), never reads for
// it on the engine thread. The first read and every read after a wake-up run on the read pool;
// after each write, the call reads its next piece (at most 1 MiB) on the gRPC thread that
// completed the write, which keeps a long log's read-back at the socket's pace.
#pragma once

#include <grpcpp/grpcpp.h>

#include "common/io_pool.h"
#include "common/metrics.h"
#include "coordinator/logs/follower_hub.h"
#include "coordinator/scheduler/job_reads.h"
#include "coordinator/service/call_caps.h"
#include "farm/v1/farm.pb.h"

namespace farm::coordinator {

// A reactor for one WatchLogs call (it deletes itself when done). It keeps `slot` (the caller's
// place under its cap on open streams) until then; when `slot` is an error, the call ends with
// it at once. The output bytes it sends are added to `bytes_sent` (when not null).
grpc::ServerWriteReactor<farm::v1::WatchLogsResponse>* NewWatchLogsCall(
    Store* store, const JobReads* reads, FollowerHub* hub, common::IoPool* pool,
    const farm::v1::WatchLogsRequest& req, absl::StatusOr<CallCap::Slot> slot,
    common::metrics::Counter* bytes_sent);

}  // namespace farm::coordinator
