// What farmctl's argument checks share: the one-line usage error that points at `farmctl help
// COMMAND`, the k=v,... label list of --labels and of the admin commands' LABELS operand, and the
// times and durations flags take.
#pragma once

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "coordinator/cli/options.h"

namespace farm::cli {

// INVALID_ARGUMENT: "MESSAGE (run 'farmctl help[ COMMAND]')".
absl::Status UsageError(absl::string_view message, absl::string_view command = "");

// "k=v,k2=v2" → labels: every entry k=v with a non-empty key, no key twice; surrounding spaces
// are dropped. `what` names the flag or operand in the message ("--labels", "LABELS"). An empty
// text is an empty map: callers that need a label say so.
absl::StatusOr<std::map<std::string, std::string>> ParseLabelList(absl::string_view text,
                                                                  absl::string_view what,
                                                                  absl::string_view cmd);

// A moment: a duration back from now (1h) or an RFC 3339 time; the usage error names --`flag`.
absl::StatusOr<TimeArg> ParseTimeArg(absl::string_view flag, const std::string& value,
                                     absl::string_view cmd);
// A positive duration flag (--ttl, --p95-wait); `examples` as "12h or 90d".
absl::StatusOr<int64_t> ParseDurationFlag(absl::string_view flag, const std::string& value,
                                          absl::string_view examples, absl::string_view cmd);

}  // namespace farm::cli
