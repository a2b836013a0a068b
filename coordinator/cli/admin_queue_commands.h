// The operators' queue commands (role admin), each one AdminService RPC: `admin pause LABELS`,
// `admin resume LABELS`, `admin queues`, `admin reprioritize JOB N`, `admin retry JOB|PIPELINE`,
// `admin cancel --labels=k=v,... --state=queued`. Registered by RegisterAdminQueueCommands.
#pragma once

#include <string>

#include "coordinator/cli/session.h"

namespace farm::cli {

// `admin resume LABELS`: lifts a queue pause. (`admin resume NAME`, an agent's resume, shares
// the command word: an operand with '=' is a selector, IsLabelSelector.)
int AdminResumeQueue(Session& session);
// What `farmctl get` adds for a retried pipeline (how many times, and which jobs replaced
// which); empty when it was never retried. (A job's: format.h, FormatJobRetryLines.)
std::string FormatPipelineRetryLines(const farm::v1::Pipeline& pipeline,
                                     const TextContext& context);

}  // namespace farm::cli
