// Configuration files for the farm's binaries: a YAML mapping whose keys are the binary's
// flag names (`lease_ttl: 1m`), read through Abseil's flag registry, so that every flag of a
// binary, present and future, is a setting without more code. Flags given on the command line
// win over the file. This is the one piece of a library that touches flags: the binaries' main
// functions use it before they turn their flags into options.
//
//   ConfigFile config(path, {.command_line = CommandLineFlagNames(argc, argv)});
//   FARM_RETURN_IF_ERROR(config.Load());       // before absl::ParseCommandLine
//   ... ParseCommandLine, options from flags; errors through config.Attribute(status) ...
//   on SIGHUP: auto changes = config.Reload();  // then keep, or Revert, each change
//
// Values: a scalar (`slots: 4`, `insecure: true`, `lease_ttl: 30s`), or for a list flag a YAML
// sequence or a comma-separated scalar. Every error names the file, the line and the key:
// "FILE:LINE: key 'x': what is wrong" (INVALID_ARGUMENT; NOT_FOUND / PERMISSION_DENIED when the
// file cannot be read). Refused: a key that is no flag of the binary, Abseil's own flags, the
// `command_line_only` ones (config itself), a `secret` one (a secret goes in a file whose
// path is the setting), a key given twice, a mapping or a list where one value goes, and a
// value the flag's type does not parse (a wrong number, not true/false, ...).
//
// Thread-compatible: one thread loads and reloads (Abseil's flags themselves are thread-safe
// to read from any thread meanwhile).
#pragma once

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace farm::common {

// The flag names argv sets (`--name=v`, `--name v`, `-name`, `--noname` for a bool), up to a
// lone "--"; what the file must not override.
absl::flat_hash_set<std::string> CommandLineFlagNames(int argc, char** argv);

struct ConfigFileOptions {
  absl::flat_hash_set<std::string> command_line;       // CommandLineFlagNames
  absl::flat_hash_set<std::string> command_line_only;  // e.g. "config"
  // Flags that hold a secret: refused with "use SUGGESTION" (e.g. enroll_token → its _file).
  absl::flat_hash_map<std::string, std::string> secret;
};

// One flag's value changed by Reload: its value before and after, as flag text.
struct FlagChange {
  std::string name;
  std::string old_value;
  std::string new_value;
};

class ConfigFile {
 public:
  ConfigFile(std::string path, ConfigFileOptions options);

  const std::string& path() const { return path_; }

  // Sets the flags the file names (except those on the command line). On error no flag is
  // changed.
  absl::Status Load();

  // Reads the file again: every flag the file names takes its value, every other one (except
  // those on the command line) goes back to its default, as a restart would do. The flags
  // whose value changed; on error (the file is unreadable or wrong) no flag is changed.
  absl::StatusOr<std::vector<FlagChange>> Reload();

  // Sets a changed flag back to its value before the Reload (a setting that needs a restart,
  // or a reload whose options turned out invalid).
  void Revert(const FlagChange& change) const;

  // `status` with its message, when it starts "--name" and the file set that flag, rewritten
  // as "FILE:LINE: key 'name': rest": options built from the flags name the file's line.
  absl::Status Attribute(const absl::Status& status) const;

 private:
  struct Entry {
    std::string key;
    std::string value;
    int line = 0;  // 1-based
  };
  // The file's entries, each checked against the registry; no flag changed.
  absl::StatusOr<std::vector<Entry>> Read() const;
  absl::Status Error(int line, const std::string& key, const std::string& what) const;

  std::string path_;
  ConfigFileOptions options_;
  // The line of each key of the file last loaded.
  absl::flat_hash_map<std::string, int> lines_;
};

}  // namespace farm::common
