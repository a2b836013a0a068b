// farmctl's entry points: parse the arguments, then run the command through the dispatch table
// (command_table.h), each command group in its own file over one Session (session.h): a
// retrying farm.v1 client (common/farm_client.h) and the CAS client on one channel. A pure gRPC
// client: it links no coordinator code.
//
// Every unary call has a deadline (CliOptions::rpc_timeout_ms). Submit retries on UNAVAILABLE
// and DEADLINE_EXCEEDED for CliOptions::submit_retry_ms, reusing one request_id so that the
// coordinator never makes a second job; while the connection is down it waits for the channel
// to reconnect (a restarting coordinator) rather than sleeping, and tries again the moment it is
// back. When the budget runs out the error is one line ending "gave up after retrying for D".
// SubmitPipeline is retried the same way.
//
// An id starting with "p" is a pipeline's (get, wait, cancel take either). A pipeline has no
// watch stream: `wait` and `submit --wait/--follow` poll GetPipeline every
// CliOptions::pipeline_poll_ms, riding out an unreachable coordinator like a follow stream.
// Follow streams have no deadline (except `wait --timeout`); the channel's keepalive notices a
// dead coordinator, and they reconnect on UNAVAILABLE, skipping the output already written.
// `events --follow` long-polls ListEvents and reconnects the same way.
#pragma once

#include <istream>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "coordinator/cli/options.h"

namespace farm::cli {

// Where a command reads and writes. Not owned; must outlive the call.
struct CliIo {
  std::ostream& out;  // results: job ids, tables, JSON documents, raw log bytes
  std::ostream& err;  // errors (one line each), step headers, notices
  std::istream& in;   // the job file of `submit -`
  const common::Clock& clock;
  absl::TimeZone time_zone;
  // The file descriptors behind `out` and `err`, or -1: where one is a terminal, a pipeline's
  // progress is a view redrawn in place (ANSI escapes) sized to it; otherwise plain lines.
  int out_fd = -1;
  int err_fd = -1;
};

// The whole of farmctl: parses `args` (argv without argv[0]; `env_coordinator` is
// $FARM_COORDINATOR or empty), runs the command, and returns the process exit code (see
// options.h). Usage errors print one line to `io.err` and return kExitUsage; no arguments at
// all prints the usage text to `io.err`.
int RunFarmctl(const std::vector<std::string>& args, absl::string_view env_coordinator, CliIo& io);

// Runs one parsed command; returns the exit code.
int RunCommand(const CliOptions& options, CliIo& io);

}  // namespace farm::cli
