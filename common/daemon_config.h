// What both daemons (farm-coordinator, farm-agent) do with their version, configuration file
// and logging flags, in one place so that they behave alike. Their main functions call these;
// the libraries still never read flags.
//
// Reload (SIGHUP): the config file is read again (config_file.h); a changed setting in `live`
// takes effect, any other changed setting is logged as needing a restart and set back to the
// value in use; a file that does not load is logged and changes nothing. Not thread-safe: call
// from the one thread that handles signals.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/config_file.h"

namespace farm::common {

// Makes --version print VersionLine(program) (version.h) instead of Abseil's text. Call before
// absl::ParseCommandLine.
void UseFarmVersionFlag(const char* program);

// Applies --log_level ("" keeps $FARM_LOG_LEVEL, else info) and --log_format (text or json),
// and routes gRPC's log lines through the farm's (logging.h). INVALID_ARGUMENT naming the flag.
absl::Status ApplyLogFlags(const std::string& level, const std::string& format);
// Checks them without applying anything.
absl::Status CheckLogFlags(const std::string& level, const std::string& format);

// The configuration at start: --config (`path`; none when empty) loaded with `options`, flags on
// the command line winning, then the log flags applied, as `log_flags` reads them ({level,
// format}) once the file has set them. Null when there is no file. An error names the file's
// line when the file set the flag it is about.
absl::StatusOr<std::unique_ptr<ConfigFile>> LoadDaemonConfig(
    const std::string& path, ConfigFileOptions options,
    const std::function<std::pair<std::string, std::string>()>& log_flags);

// `status`'s message, naming the line of `config` (may be null) when the file set the flag the
// status is about.
std::string AttributedMessage(const ConfigFile* config, const absl::Status& status);

// A flag that holds a duration ("30s", "10m"; duration.h) and where its milliseconds go.
struct DurationFlag {
  const absl::Flag<std::string>* flag;
  const char* name;  // as the message spells it: "--lease_ttl"
  int64_t* ms;
};
// Parses each flag into its `ms`; INVALID_ARGUMENT naming the first flag that is not a duration.
absl::Status ReadDurationFlags(absl::Span<const DurationFlag> flags);

// One SIGHUP. `config` may be null (no --config: only what `apply` reloads, e.g. TLS files).
// `apply` reads the (reloaded) flags and puts the live ones to work; when it fails, the live
// changes are set back too and its error is logged. Logs one line per change and the outcome.
void ReloadConfig(ConfigFile* config, const absl::flat_hash_set<std::string>& live,
                  const std::function<absl::Status()>& apply);

}  // namespace farm::common
