#include "tests/packaging/packages.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"

namespace farm::packaging {

using farm::testing::ReadFileOrEmpty;
using farm::testing::Subprocess;
using farm::testing::SubprocessOptions;

absl::StatusOr<std::string> FindPackage(const std::string& name) {
  const char* dir = std::getenv("FARM_PACKAGES_DIR");
  if (dir == nullptr || *dir == '\0') {
    return absl::NotFoundError("FARM_PACKAGES_DIR is not set (CTest sets it)");
  }
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string file = entry.path().filename().string();
    if (absl::StartsWith(file, name + "_") && absl::EndsWith(file, ".deb")) {
      found.push_back(entry.path().string());
    }
  }
  if (found.size() != 1) {
    return absl::NotFoundError(absl::StrCat(found.size(), " packages ", name, "_*.deb in ", dir,
                                            " (deploy/package.sh makes one)"));
  }
  return found[0];
}

std::string Output::DebugString() const {
  return absl::StrCat("exit ", exit_code, "; stdout: ", out, "; stderr: ", err);
}

absl::StatusOr<Output> RunCommand(const std::string& binary, std::vector<std::string> args,
                                  const std::string& scratch, absl::Duration timeout,
                                  std::vector<std::pair<std::string, std::string>> env) {
  static int runs = 0;
  const std::string base = absl::StrCat(scratch, "/run-", ++runs);
  SubprocessOptions options;
  options.binary = binary;
  options.args = std::move(args);
  options.env = std::move(env);
  options.stdout_path = base + ".stdout";
  options.stderr_path = base + ".stderr";
  FARM_ASSIGN_OR_RETURN(std::unique_ptr<Subprocess> process, Subprocess::Start(options));
  absl::StatusOr<int> code = process->Wait(timeout);
  Output output;
  output.out = ReadFileOrEmpty(options.stdout_path);
  output.err = ReadFileOrEmpty(options.stderr_path);
  if (!code.ok()) {
    (void)process->Kill9();
    return absl::DeadlineExceededError(absl::StrCat(
        options.binary, " ran past ", absl::FormatDuration(timeout), ": ", output.DebugString()));
  }
  output.exit_code = *code;
  return output;
}

std::string FindTool(const std::string& name) {
  for (const char* dir : {"/usr/bin/", "/usr/sbin/", "/bin/", "/sbin/"}) {
    const std::string path = dir + name;
    if (access(path.c_str(), X_OK) == 0) return path;
  }
  return "";
}

UnitFile ParseUnit(absl::string_view text) {
  UnitFile unit;
  std::string section;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[' && line.back() == ']') {
      section = std::string(line.substr(1, line.size() - 2));
      continue;
    }
    const size_t eq = line.find('=');
    if (eq == absl::string_view::npos) continue;
    unit[section].emplace(std::string(absl::StripAsciiWhitespace(line.substr(0, eq))),
                          std::string(absl::StripAsciiWhitespace(line.substr(eq + 1))));
  }
  return unit;
}

std::string UnitValue(const UnitFile& unit, const std::string& section, const std::string& key) {
  auto s = unit.find(section);
  if (s == unit.end()) return "";
  auto [begin, end] = s->second.equal_range(key);
  return begin == end ? "" : std::prev(end)->second;
}

std::map<std::string, std::string> ParseEnvironmentFile(absl::string_view text) {
  std::map<std::string, std::string> env;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    const size_t eq = line.find('=');
    if (eq == absl::string_view::npos) continue;
    absl::string_view value = line.substr(eq + 1);
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
        value.back() == value.front()) {
      value = value.substr(1, value.size() - 2);
    }
    env[std::string(line.substr(0, eq))] = std::string(value);
  }
  return env;
}

absl::StatusOr<std::vector<std::string>> ExpandExecStart(
    absl::string_view exec_start, const std::map<std::string, std::string>& environment) {
  if (!exec_start.empty() &&
      absl::string_view("@-:+!").find(exec_start[0]) != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("ExecStart=", exec_start, ": prefixes are not handled"));
  }
  if (absl::StrContains(exec_start, "\"") || absl::StrContains(exec_start, "'")) {
    return absl::InvalidArgumentError(
        absl::StrCat("ExecStart=", exec_start, ": quotes are not handled"));
  }
  auto lookup = [&](absl::string_view name) {
    auto it = environment.find(std::string(name));
    return it == environment.end() ? std::string() : it->second;
  };
  std::vector<std::string> words;
  for (absl::string_view word : absl::StrSplit(exec_start, ' ', absl::SkipWhitespace())) {
    if (absl::StartsWith(word, "${") && absl::EndsWith(word, "}")) {
      words.push_back(lookup(word.substr(2, word.size() - 3)));
    } else if (absl::ConsumePrefix(&word, "$")) {
      for (absl::string_view part : absl::StrSplit(lookup(word), ' ', absl::SkipWhitespace())) {
        words.emplace_back(part);
      }
    } else {
      words.emplace_back(word);
    }
  }
  return words;
}

}  // namespace farm::packaging
