// Text from users and agents, at the edge: the one check every string of a farm.v1 request
// passes (farmctl before it sends, the coordinator's services when a request arrives), the one
// way error messages quote such text, and the one way farmctl shows it on a terminal.
//
// All functions are pure and thread-safe.
#pragma once

#include <google/protobuf/message.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace farm::common {

// Most bytes of one piece of user input an error message repeats.
inline constexpr size_t kMaxEchoBytes = 200;

// `text` as a double-quoted literal for a message: '"' and '\' escaped with '\'; \n, \t and \r
// as such; other control characters (C0 and DEL as \xNN, C1 as \u00NN) and bytes that are not
// UTF-8 (as \xNN) escaped; other text unchanged. At most `max_bytes` of `text` are shown (never
// half a UTF-8 character): a longer one is cut, and ends `"... (N bytes)` with N its whole size.
std::string Quote(absl::string_view text, size_t max_bytes = kMaxEchoBytes);

// What a string field may hold. Every field is UTF-8 without NUL; a name (ids, labels, env
// keys, step and agent names, tokens, ...) holds no control character at all; free text
// (scripts, env values, an agent's reasons and messages) may hold \n, \t and \r.
enum class TextKind { kName, kFreeText };

// OK, or INVALID_ARGUMENT `FIELD "TEXT": contains a NUL byte` (also "contains a control
// character", "is not valid UTF-8"), TEXT quoted with Quote.
absl::Status ValidateText(absl::string_view field, absl::string_view text, TextKind kind);

// ValidateText on every string of `message`: nested messages, repeated fields, map keys
// (always names) and values. The kind of a field is kFreeText for the few free-text fields of
// farm.v1 (StepSpec.run, env values, StepResult.message, CompleteJobRequest.reason) and kName
// for every other. The field is named by its path from `message`: "name", "spec.labels key",
// "spec.env[\"PATH\"]", "spec.steps[2].name", "lease.job_id". `bytes` fields are not checked.
absl::Status ValidateRequestText(const google::protobuf::Message& message);

// `text` made harmless for a terminal: control characters other than those in `keep` (C0 and
// DEL as \xNN, C1 as \u00NN) and bytes that are not UTF-8 (as \xNN) escaped; everything else
// unchanged (so clean text comes back as it was).
std::string EscapeControls(absl::string_view text, absl::string_view keep = "");

// The length (1 to 4) of the well-formed UTF-8 character that starts at text[pos], or 0 when
// the bytes there are not UTF-8 (a stray or truncated sequence, an overlong form, a surrogate,
// a value past U+10FFFF). `pos` < text.size().
size_t Utf8CharLength(absl::string_view text, size_t pos);

}  // namespace farm::common
