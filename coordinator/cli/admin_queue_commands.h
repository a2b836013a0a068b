// The operators' queue commands (role admin), each one AdminService RPC: `admin pause LABELS`,
// `admin resume LABELS`, `admin queues`, `admin reprioritize JOB N`, `admin retry JOB|PIPELINE`,
// `admin cancel --labels=k=v,... --state=queued`. Registered by RegisterAdminQueueCommands.
#pragma once

#include <string>

#include "coordinator/cli/session.h"

namespace farm::cli {

// `admin resume LABELS`: lifts a queue pause. `admin resume` is one command with the agents'
// `admin resume NAME` (admin_agents_commands.cc): an operand with '=' is a selector
// (IsLabelSelector), parsed into options.labels, and the resume runs this.
int AdminResumeQueue(Session& session);
// What `farmctl get` adds for a retried pipeline (how many times, and which jobs replaced
// which); empty when it was never retried. (A job's: format.h, FormatJobRetryLines.)
std::string FormatPipelineRetryLines(const farm::v1::Pipeline& pipeline,
                                     const TextContext& context);

}  // namespace farm::cli
