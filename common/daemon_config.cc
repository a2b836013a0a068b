#include "common/daemon_config.h"

#include <grpc/support/log.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/flags/usage_config.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/duration.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/text.h"
#include "common/version.h"

namespace farm::common {
namespace {

absl::StatusOr<LogLevel> LevelOf(const std::string& level) {
  if (level.empty()) return DefaultLogLevel();
  absl::StatusOr<LogLevel> parsed = ParseLogLevel(level);
  if (!parsed.ok())
    return absl::InvalidArgumentError("--log_level: " + std::string(parsed.status().message()));
  return parsed;
}

absl::StatusOr<LogFormat> FormatOf(const std::string& format) {
  absl::StatusOr<LogFormat> parsed = ParseLogFormat(format);
  if (!parsed.ok())
    return absl::InvalidArgumentError("--log_format: " + std::string(parsed.status().message()));
  return parsed;
}

// gRPC's own log lines (gpr_log) go through FARM_LOG's formats, so that a JSON log stays JSON.
// Kept here, apart from common/logging, so that the logging code needs no gRPC.
void GrpcLogSink(gpr_log_func_args* args) {
  LogLevel level = LogLevel::kError;
  if (args->severity == GPR_LOG_SEVERITY_DEBUG) level = LogLevel::kDebug;
  if (args->severity == GPR_LOG_SEVERITY_INFO) level = LogLevel::kInfo;
  if (level < MinLogLevel()) return;
  const std::string line =
      FormatLogLine(CurrentLogFormat(), level, absl::Now(), args->file == nullptr ? "" : args->file,
                    args->line, args->message == nullptr ? "" : args->message);
  (void)!::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace

void UseFarmVersionFlag(const char* program) {
  absl::FlagsUsageConfig config;
  config.version_string = [program] { return VersionLine(program) + "\n"; };
  absl::SetFlagsUsageConfig(config);
}

absl::StatusOr<std::unique_ptr<ConfigFile>> LoadDaemonConfig(
    const std::string& path, ConfigFileOptions options,
    const std::function<std::pair<std::string, std::string>()>& log_flags) {
  std::unique_ptr<ConfigFile> config;
  if (!path.empty()) {
    config = std::make_unique<ConfigFile>(path, std::move(options));
    FARM_RETURN_IF_ERROR(config->Load());
  }
  const auto [level, format] = log_flags();
  if (absl::Status s = ApplyLogFlags(level, format); !s.ok()) {
    return config != nullptr ? config->Attribute(s) : s;
  }
  return config;
}

std::string AttributedMessage(const ConfigFile* config, const absl::Status& status) {
  return std::string((config != nullptr ? config->Attribute(status) : status).message());
}

absl::Status ReadDurationFlags(absl::Span<const DurationFlag> flags) {
  for (const DurationFlag& d : flags) {
    absl::StatusOr<int64_t> ms = ParseDurationMs(absl::GetFlag(*d.flag));
    if (!ms.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(d.name, ": ", ms.status().message()));
    }
    *d.ms = *ms;
  }
  return absl::OkStatus();
}

absl::Status CheckLogFlags(const std::string& level, const std::string& format) {
  FARM_RETURN_IF_ERROR(LevelOf(level).status());
  return FormatOf(format).status();
}

absl::Status ApplyLogFlags(const std::string& level, const std::string& format) {
  FARM_ASSIGN_OR_RETURN(LogLevel min_level, LevelOf(level));
  FARM_ASSIGN_OR_RETURN(LogFormat log_format, FormatOf(format));
  SetMinLogLevel(min_level);
  SetLogFormat(log_format);
  gpr_set_log_function(GrpcLogSink);
  return absl::OkStatus();
}

void ReloadConfig(ConfigFile* config, const absl::flat_hash_set<std::string>& live,
                  const std::function<absl::Status()>& apply) {
  std::vector<FlagChange> kept;
  if (config != nullptr) {
    absl::StatusOr<std::vector<FlagChange>> changes = config->Reload();
    if (!changes.ok()) {
      FARM_LOG(ERROR) << "reload: " << changes.status().message()
                      << "; the configuration in use stays";
      return;
    }
    for (const FlagChange& change : *changes) {
      if (live.contains(change.name)) {
        FARM_LOG(INFO) << "reload: " << change.name << " " << Quote(change.old_value) << " -> "
                       << Quote(change.new_value);
        kept.push_back(change);
      } else {
        FARM_LOG(WARNING) << "reload: " << change.name << " changed from "
                          << Quote(change.old_value) << " to " << Quote(change.new_value)
                          << ": needs a restart; " << Quote(change.old_value) << " stays in use";
        config->Revert(change);
      }
    }
  }
  if (absl::Status s = apply(); !s.ok()) {
    const absl::Status attributed = config != nullptr ? config->Attribute(s) : s;
    FARM_LOG(ERROR) << "reload: " << attributed.message() << "; the configuration in use stays";
    for (const FlagChange& change : kept) config->Revert(change);
    return;
  }
  FARM_LOG(INFO) << "reload: done"
                 << (config != nullptr ? " (configuration from " + config->path() + ")" : "");
}

}  // namespace farm::common
