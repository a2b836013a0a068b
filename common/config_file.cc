#include "common/config_file.h"

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/marshalling.h"
#include "absl/flags/reflection.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/posix_io.h"
#include "common/status_macros.h"

namespace farm::common {
namespace {

// Abseil's own flags (--flagfile, --helpfull, ...) are no settings of ours.
bool IsAbseilFlag(const absl::CommandLineFlag& flag) {
  return absl::StrContains(flag.Filename(), "absl/flags");
}

// The part of a flag argument that names the flag: "--a=b" → "a", "-a" → "a"; empty for
// anything else.
std::string FlagArgName(const std::string& arg) {
  if (arg.size() < 2 || arg[0] != '-') return "";
  std::string body = arg.substr(arg[1] == '-' ? 2 : 1);
  return body.substr(0, body.find('='));
}

template <typename T>
bool Parses(absl::string_view text) {
  T value;
  std::string error;
  return absl::ParseFlag(text, &value, &error);
}

// OK when `text` parses as the flag's type; else what is wrong. Types not listed here are
// checked when the value is set.
absl::Status CheckType(const absl::CommandLineFlag& flag, const std::string& text) {
  const auto wrong = [&](absl::string_view expected) {
    return absl::InvalidArgumentError(absl::StrCat("expected ", expected, ", not \"", text, "\""));
  };
  if (flag.IsOfType<bool>() && !Parses<bool>(text)) return wrong("true or false");
  if (flag.IsOfType<int32_t>() && !Parses<int32_t>(text)) return wrong("a 32-bit integer");
  if (flag.IsOfType<int64_t>() && !Parses<int64_t>(text)) return wrong("a 64-bit integer");
  if (flag.IsOfType<uint32_t>() && !Parses<uint32_t>(text)) return wrong("an unsigned integer");
  if (flag.IsOfType<uint64_t>() && !Parses<uint64_t>(text)) return wrong("an unsigned integer");
  if (flag.IsOfType<double>() && !Parses<double>(text)) return wrong("a number");
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ErrnoStatus(errno, absl::StrCat("cannot read the config file ", path));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return ErrnoStatus(errno, absl::StrCat("cannot read the config file ", path));
  return text.str();
}

// Sets every flag of `undo` back to its value there (what it was before a failed load).
void Restore(const std::vector<std::pair<absl::CommandLineFlag*, std::string>>& undo) {
  for (const auto& [flag, value] : undo) {
    std::string ignored;
    flag->ParseFrom(value, &ignored);
  }
}

}  // namespace

absl::flat_hash_set<std::string> CommandLineFlagNames(int argc, char** argv) {
  absl::flat_hash_set<std::string> names;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--") break;
    std::string name = FlagArgName(arg);
    if (name.empty()) continue;
    if (absl::FindCommandLineFlag(name) == nullptr && absl::StartsWith(name, "no")) {
      const absl::CommandLineFlag* negated = absl::FindCommandLineFlag(name.substr(2));
      if (negated != nullptr && negated->IsOfType<bool>()) name = name.substr(2);
    }
    names.insert(name);
  }
  return names;
}

ConfigFile::ConfigFile(std::string path, ConfigFileOptions options)
    : path_(std::move(path)), options_(std::move(options)) {}

absl::Status ConfigFile::Error(int line, const std::string& key, const std::string& what) const {
  return absl::InvalidArgumentError(absl::StrCat(path_, ":", line, ": key '", key, "': ", what));
}

absl::StatusOr<std::vector<ConfigFile::Entry>> ConfigFile::Read() const {
  FARM_ASSIGN_OR_RETURN(const std::string text, ReadWholeFile(path_));
  YAML::Node doc;
  try {
    doc = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        path_, ":", e.mark.is_null() ? 1 : e.mark.line + 1, ": malformed YAML: ", e.msg));
  }
  std::vector<Entry> entries;
  if (doc.IsNull()) return entries;  // empty, or comments only: every setting at its default
  if (!doc.IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path_, ":", doc.Mark().line + 1, ": a config file is a mapping of settings (key: value)"));
  }
  absl::flat_hash_map<std::string, int> seen;
  for (const auto& item : doc) {
    const int line = item.first.Mark().line + 1;
    if (!item.first.IsScalar()) {
      return absl::InvalidArgumentError(absl::StrCat(path_, ":", line, ": a key must be a name"));
    }
    const std::string key = item.first.Scalar();
    if (auto [it, inserted] = seen.emplace(key, line); !inserted) {
      return Error(line, key, absl::StrCat("given twice (first on line ", it->second, ")"));
    }
    if (options_.command_line_only.contains(key)) {
      return Error(line, key, "can be given on the command line only");
    }
    if (auto it = options_.secret.find(key); it != options_.secret.end()) {
      return Error(line, key,
                   absl::StrCat("a secret is never written in a config file: use ", it->second,
                                " (a file that holds it)"));
    }
    const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(key);
    if (flag == nullptr || flag->IsRetired() || IsAbseilFlag(*flag)) {
      return Error(line, key, "unknown setting");
    }
    const YAML::Node& value = item.second;
    Entry entry{key, "", value.IsNull() ? line : value.Mark().line + 1};
    if (value.IsNull()) return Error(line, key, "has no value");
    if (value.IsMap()) return Error(entry.line, key, "expected a value, not a mapping");
    if (value.IsSequence()) {
      if (!flag->IsOfType<std::vector<std::string>>()) {
        return Error(entry.line, key, "expected one value, not a list");
      }
      std::vector<std::string> items;
      for (const YAML::Node& element : value) {
        if (!element.IsScalar() || absl::StrContains(element.Scalar(), ',')) {
          return Error(element.Mark().line + 1, key, "a list holds plain values (without commas)");
        }
        items.push_back(element.Scalar());
      }
      entry.value = absl::StrJoin(items, ",");
    } else {
      entry.value = value.Scalar();
      // A value the command line overrides is never used, so it is not checked either.
      absl::Status s =
          options_.command_line.contains(key) ? absl::OkStatus() : CheckType(*flag, entry.value);
      if (!s.ok()) {
        return Error(entry.line, key, std::string(s.message()));
      }
    }
    entries.push_back(std::move(entry));
  }
  return entries;
}

absl::Status ConfigFile::Load() {
  FARM_ASSIGN_OR_RETURN(std::vector<Entry> entries, Read());
  std::vector<std::pair<absl::CommandLineFlag*, std::string>> undo;
  absl::flat_hash_map<std::string, int> lines;
  for (const Entry& entry : entries) {
    lines[entry.key] = entry.line;
    if (options_.command_line.contains(entry.key)) continue;
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(entry.key);
    undo.emplace_back(flag, flag->CurrentValue());
    std::string error;
    if (!flag->ParseFrom(entry.value, &error)) {
      Restore(undo);
      return Error(entry.line, entry.key, error);
    }
  }
  lines_ = std::move(lines);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<FlagChange>> ConfigFile::Reload() {
  FARM_ASSIGN_OR_RETURN(std::vector<Entry> entries, Read());
  absl::flat_hash_map<std::string, const Entry*> by_key;
  for (const Entry& entry : entries) by_key[entry.key] = &entry;
  std::vector<std::pair<absl::CommandLineFlag*, std::string>> undo;
  std::vector<FlagChange> changes;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    const std::string key(name);
    if (flag->IsRetired() || IsAbseilFlag(*flag) || options_.command_line.contains(key) ||
        options_.command_line_only.contains(key) || options_.secret.contains(key)) {
      continue;
    }
    auto it = by_key.find(key);
    const std::string target = it == by_key.end() ? flag->DefaultValue() : it->second->value;
    const std::string before = flag->CurrentValue();
    undo.emplace_back(flag, before);
    std::string error;
    if (!flag->ParseFrom(target, &error)) {
      Restore(undo);
      return it == by_key.end() ? absl::InternalError(absl::StrCat("--", key, ": ", error))
                                : Error(it->second->line, key, error);
    }
    if (std::string after = flag->CurrentValue(); after != before) {
      changes.push_back({key, before, std::move(after)});
    }
  }
  lines_.clear();
  for (const Entry& entry : entries) lines_[entry.key] = entry.line;
  return changes;
}

void ConfigFile::Revert(const FlagChange& change) const {
  absl::CommandLineFlag* flag = absl::FindCommandLineFlag(change.name);
  if (flag == nullptr) return;
  std::string ignored;
  flag->ParseFrom(change.old_value, &ignored);
}

absl::Status ConfigFile::Attribute(const absl::Status& status) const {
  const absl::string_view message = status.message();
  if (status.ok() || !absl::StartsWith(message, "--")) return status;
  size_t end = 2;
  while (end < message.size() &&
         (std::islower(static_cast<unsigned char>(message[end])) ||
          std::isdigit(static_cast<unsigned char>(message[end])) || message[end] == '_')) {
    ++end;
  }
  const std::string name(message.substr(2, end - 2));
  auto it = lines_.find(name);
  if (it == lines_.end() || options_.command_line.contains(name)) return status;
  absl::string_view rest = message.substr(end);
  if (absl::StartsWith(rest, ":")) rest.remove_prefix(1);
  if (absl::StartsWith(rest, " ")) rest.remove_prefix(1);
  return absl::Status(status.code(),
                      absl::StrCat(path_, ":", it->second, ": key '", name, "': ", rest));
}

}  // namespace farm::common
