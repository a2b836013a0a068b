// What both daemons (farm-coordinator, farm-agent) do with their version, configuration file
// and logging flags, in one place so that they behave alike. Their main functions call these;
// the libraries still never read flags.
//
// Reload (SIGHUP): the config file is read again (config_file.h); a changed setting in `live`
// takes effect, any other changed setting is logged as needing a restart and set back to the
// value in use; a file that does not load is logged and changes nothing. Not thread-safe: call
// from the one thread that handles signals.
#pragma once

#include <functional>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
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

// One SIGHUP. `config` may be null (no --config: only what `apply` reloads, e.g. TLS files).
// `apply` reads the (reloaded) flags and puts the live ones to work; when it fails, the live
// changes are set back too and its error is logged. Logs one line per change and the outcome.
void ReloadConfig(ConfigFile* config, const absl::flat_hash_set<std::string>& live,
                  const std::function<absl::Status()>& apply);

}  // namespace farm::common
