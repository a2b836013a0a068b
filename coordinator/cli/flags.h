// farmctl's flags: each one's name, whether it is a switch, and its line of help. The command
// table (command_table.h) names which commands take which; --coordinator, --output and --help
// go with every command. Read-only after first use; thread-safe.
#pragma once

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace farm::cli {

struct FlagDef {
  absl::string_view name;  // "limit"; "o" is the one short flag
  bool is_bool;            // a switch: --wait, --wait=false
  absl::string_view help;  // its line in the usage text
};

const std::vector<FlagDef>& Flags();
// Null for a name no command takes.
const FlagDef* FindFlag(absl::string_view name);
// The flags every command takes, before or after it: --coordinator, --output, --help and the
// transport security ones (--insecure, --tls_ca, --tls_cert, --tls_key, --token_file).
const std::vector<absl::string_view>& CommonFlags();
bool IsCommonFlag(absl::string_view name);
// How a flag is written: "-o", "--output".
std::string Spelling(absl::string_view name);

}  // namespace farm::cli
