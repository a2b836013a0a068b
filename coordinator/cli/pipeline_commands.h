// The pipeline group: what get, list --pipelines, wait, cancel and submit do for a pipeline
// (an id "pN", or a file with a top-level `jobs:`). The jobs group (jobs_commands.cc) hands
// these over when its operand names a pipeline, since a pipeline id goes wherever a job id does.
//
// A pipeline has no watch stream: `wait` and `submit --wait/--follow` poll GetPipeline every
// CliOptions::pipeline_poll_ms, riding out an unreachable coordinator like a follow stream.
#pragma once

#include <optional>

#include "absl/time/time.h"
#include "coordinator/cli/session.h"
#include "farm/v1/farm.pb.h"

namespace farm::cli {

// `submit` of a pipeline file: the id (or the Pipeline as JSON), and with --wait or --follow
// the wait for its end, with its outcome as the exit code.
int SubmitPipelineCommand(Session& session, farm::v1::PipelineSpec spec);
// `get pN`, `list --pipelines`, `cancel pN`, `wait pN` (ending by `deadline` when given).
int GetPipelineCommand(Session& session);
int ListPipelinesCommand(Session& session);
int CancelPipelineCommand(Session& session);
int WaitPipelineCommand(Session& session, std::optional<absl::Time> deadline);

}  // namespace farm::cli
