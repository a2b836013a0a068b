#include "common/job_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/types/span.h"
#include "common/duration.h"
#include "common/job_limits.h"
#include "common/status_macros.h"

namespace farm::common {
namespace {

using farm::v1::JobSpec;
using farm::v1::StepSpec;
using StringMap = google::protobuf::Map<std::string, std::string>;

constexpr absl::string_view kJobKeys[] = {"name",      "labels",        "priority",   "timeout",
                                          "env",       "shell",         "kill_grace", "steps",
                                          "artifacts", "artifacts_when"};
constexpr absl::string_view kStepKeys[] = {"name", "run", "env", "timeout"};

constexpr absl::string_view kDurationExamples =
    "a duration such as 500ms, 60s, 10m or 1h30m (a bare number is seconds)";

// Bytes a string costs in the encoded JobSpec, roughly: its length plus tag and length prefix.
// Charged while parsing so that aliases (`*a` repeated) cannot inflate a 1 MiB file into
// gigabytes before ValidateJobSpec would see the size.
int64_t EncodedCost(const std::string& s) { return static_cast<int64_t>(s.size()) + 8; }

// How a value the user wrote is named in a message.
std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar: {
      const std::string& text = node.Scalar();
      if (text.size() > 40) return absl::StrCat("\"", text.substr(0, 37), "...\"");
      return absl::StrCat("\"", text, "\"");
    }
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    default:
      return "nothing";
  }
}

int EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<int> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = static_cast<int>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    int diagonal = row[0];
    row[0] = static_cast<int>(i);
    for (size_t j = 1; j <= b.size(); ++j) {
      const int up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// yaml-cpp's parser messages are terse; say what usually causes them.
std::string ExplainParserMessage(const std::string& msg) {
  static constexpr std::pair<absl::string_view, absl::string_view> kHints[] = {
      {"illegal map value",
       "a \"key: value\" where none is allowed; check the indentation, or quote a value that "
       "contains \": \""},
      {"end of map not found", "a mapping is not closed; check the indentation"},
      {"end of sequence not found", "a list is not closed; check the indentation"},
      {"end of map flow not found", "a '{' is not closed by '}'"},
      {"end of sequence flow not found", "a '[' is not closed by ']'"},
      {"illegal flow end", "an unexpected ']' or '}'; a trailing comma or an unbalanced bracket?"},
      {"unknown escape character", "a backslash escape that JSON and YAML do not know"},
      {"end of string not found", "a quoted string is not closed"},
      {"block sequence entries are not allowed in this context",
       "a \"- item\" where none is allowed; check the indentation"},
      {"tabs cannot be used for indentation", "indent with spaces"},
  };
  for (const auto& [key, hint] : kHints) {
    if (absl::StartsWith(msg, key)) return absl::StrCat(msg, " (", hint, ")");
  }
  return msg;
}

// One `key: value` of a mapping, with the path used in messages ("steps[1].timeout").
struct Entry {
  std::string key;
  std::string path;
  YAML::Node key_node;
  YAML::Node value;
};

class JobFileParser {
 public:
  explicit JobFileParser(const std::string& filename) : filename_(filename) {}

  absl::StatusOr<JobSpec> Parse(absl::string_view text) {
    try {
      return ParseDocuments(text);
    } catch (const YAML::Exception& e) {
      // ParserException for malformed input; anything else from yaml-cpp is unexpected, but
      // its mark still tells the user where to look.
      const bool malformed = dynamic_cast<const YAML::ParserException*>(&e) != nullptr;
      std::string what = malformed
                             ? absl::StrCat("malformed YAML/JSON: ", ExplainParserMessage(e.msg))
                             : absl::StrCat("cannot read the job: ", e.msg);
      if (dynamic_cast<const YAML::DeepRecursion*>(&e) != nullptr) {
        what = "malformed YAML/JSON: lists or mappings are nested too deeply";
      }
      return e.mark.is_null() ? FileError(what) : ErrorAt(e.mark, what);
    } catch (const std::exception& e) {
      return FileError(absl::StrCat("cannot read the job: ", e.what()));
    } catch (...) {
      return FileError("cannot read the job");
    }
  }

 private:
  absl::Status FileError(absl::string_view message) const {
    return absl::InvalidArgumentError(absl::StrCat(filename_, ": ", message));
  }

  absl::Status ErrorAt(const YAML::Mark& mark, absl::string_view message) const {
    if (mark.is_null()) return FileError(message);
    return absl::InvalidArgumentError(
        absl::StrCat(filename_, ":", mark.line + 1, ":", mark.column + 1, ": ", message));
  }

  // yaml-cpp places an empty value's mark at the next token (often the next line), so an
  // error about a missing value points at its key instead.
  absl::Status ErrorAt(const Entry& e, absl::string_view message) const {
    if (e.value.IsNull() || e.value.Mark().is_null()) return ErrorAt(e.key_node.Mark(), message);
    return ErrorAt(e.value.Mark(), message);
  }

  absl::Status Charge(const std::string& s, const YAML::Mark& mark) {
    bytes_ += EncodedCost(s);
    if (bytes_ > kMaxSerializedSpecBytes) {
      return ErrorAt(mark, absl::StrCat("the job is larger than the limit of ",
                                        kMaxSerializedSpecBytes, " bytes encoded"));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<JobSpec> ParseDocuments(absl::string_view text) {
    const std::vector<YAML::Node> docs = YAML::LoadAll(std::string(text));
    if (docs.size() > 1) {
      return ErrorAt(docs[1].Mark(),
                     "a second YAML document starts here; a job file holds exactly one job");
    }
    if (docs.empty() || docs[0].IsNull()) {
      return FileError("the file is empty; expected a job: a mapping with at least \"steps\"");
    }
    JobSpec spec;
    if (absl::Status s = ParseJob(docs[0], spec); !s.ok()) return s;
    ApplyJobDefaults(spec);
    if (absl::Status s = ValidateJobSpec(spec); !s.ok()) return FileError(s.message());
    return spec;
  }

  // Calls `fn` for every entry of the mapping `map`, in file order. `allowed` lists the keys
  // that may appear (empty: any); `where` names the mapping in messages ("the job", "env").
  absl::Status ForEachEntry(const YAML::Node& map, absl::Span<const absl::string_view> allowed,
                            absl::string_view where, absl::string_view path_prefix,
                            const std::function<absl::Status(const Entry&)>& fn) {
    absl::flat_hash_map<std::string, int> first_line;
    for (auto it = map.begin(); it != map.end(); ++it) {
      Entry e;
      e.key_node = it->first;
      e.value = it->second;
      if (!e.key_node.IsScalar()) {
        return ErrorAt(
            e.key_node.Mark(),
            absl::StrCat("keys in ", where, " must be plain names, found ", Describe(e.key_node)));
      }
      e.key = e.key_node.Scalar();
      e.path = absl::StrCat(path_prefix, e.key);
      if (!allowed.empty() &&
          std::find(allowed.begin(), allowed.end(), absl::string_view(e.key)) == allowed.end()) {
        std::string message = absl::StrCat("unknown key \"", e.key, "\" in ", where);
        for (absl::string_view candidate : allowed) {
          if (EditDistance(absl::AsciiStrToLower(e.key), candidate) <= 2) {
            absl::StrAppend(&message, "; did you mean \"", candidate, "\"?");
            break;
          }
        }
        absl::StrAppend(&message, " (expected one of: ", absl::StrJoin(allowed, ", "), ")");
        return ErrorAt(e.key_node.Mark(), message);
      }
      const auto [prev, inserted] = first_line.emplace(e.key, e.key_node.Mark().line + 1);
      if (!inserted) {
        return ErrorAt(e.key_node.Mark(),
                       absl::StrCat("duplicate key \"", e.key, "\" in ", where,
                                    " (first given on line ", prev->second, ")"));
      }
      if (absl::Status s = fn(e); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  absl::Status ReadString(const Entry& e, absl::string_view expected, std::string* out) {
    if (!e.value.IsScalar()) {
      return ErrorAt(e,
                     absl::StrCat(e.path, ": expected ", expected, ", found ", Describe(e.value)));
    }
    *out = e.value.Scalar();
    return Charge(*out, e.value.Mark());
  }

  absl::Status ReadPriority(const Entry& e, int32_t* out) {
    const std::string expected =
        absl::StrCat("an integer from ", kMinPriority, " to ", kMaxPriority);
    int64_t value = 0;
    // A quoted "5" is a string in JSON and YAML alike; only a plain scalar is a number.
    if (!e.value.IsScalar() || e.value.Tag() == "!" ||
        !absl::SimpleAtoi(e.value.Scalar(), &value)) {
      return ErrorAt(e,
                     absl::StrCat(e.path, ": expected ", expected, ", found ", Describe(e.value)));
    }
    if (value < kMinPriority || value > kMaxPriority) {
      return ErrorAt(e, absl::StrCat(e.path, ": ", value, " is out of range; expected ", expected));
    }
    *out = static_cast<int32_t>(value);
    return absl::OkStatus();
  }

  absl::Status ReadDuration(const Entry& e, int64_t* out_ms) {
    if (!e.value.IsScalar()) {
      return ErrorAt(
          e, absl::StrCat(e.path, ": expected ", kDurationExamples, ", found ", Describe(e.value)));
    }
    absl::StatusOr<int64_t> ms = ParseJobDurationMs(e.value.Scalar());
    if (!ms.ok()) return ErrorAt(e, absl::StrCat(e.path, ": ", ms.status().message()));
    *out_ms = *ms;
    return absl::OkStatus();
  }

  // A mapping of names to scalars. Values may be written as numbers or booleans
  // (`VERSION: 1.20`); the text as written is kept. An empty value (`env:`) is no entries.
  absl::Status ReadStringMap(const Entry& e, int max_entries, StringMap* out) {
    if (e.value.IsNull()) return absl::OkStatus();
    if (!e.value.IsMap()) {
      return ErrorAt(e, absl::StrCat(e.path, ": expected a mapping of names to values, found ",
                                     Describe(e.value)));
    }
    if (e.value.size() > static_cast<size_t>(max_entries)) {
      return ErrorAt(
          e, absl::StrCat(e.path, ": ", e.value.size(), " entries; the limit is ", max_entries));
    }
    return ForEachEntry(
        e.value, {}, e.path, absl::StrCat(e.path, "."), [&](const Entry& item) -> absl::Status {
          std::string value;
          if (absl::Status s = ReadString(item, "a string (write \"\" for an empty value)", &value);
              !s.ok()) {
            return s;
          }
          if (absl::Status s = Charge(item.key, item.key_node.Mark()); !s.ok()) {
            return s;
          }
          (*out)[item.key] = std::move(value);
          return absl::OkStatus();
        });
  }

  absl::Status ReadShell(const Entry& e, JobSpec& spec) {
    if (e.value.IsNull()) return absl::OkStatus();
    constexpr absl::string_view kExpected =
        "a list of strings, the argv prefix before the script, e.g. [/bin/bash, -e, -c]";
    if (!e.value.IsSequence()) {
      return ErrorAt(e,
                     absl::StrCat(e.path, ": expected ", kExpected, ", found ", Describe(e.value)));
    }
    int index = 0;
    for (auto it = e.value.begin(); it != e.value.end(); ++it, ++index) {
      const YAML::Node& arg = *it;
      if (!arg.IsScalar()) {
        return ErrorAt(
            arg.Mark().is_null() ? e.value.Mark() : arg.Mark(),
            absl::StrCat(e.path, "[", index, "]: expected a string, found ", Describe(arg)));
      }
      if (absl::Status s = Charge(arg.Scalar(), arg.Mark()); !s.ok()) return s;
      spec.add_shell(arg.Scalar());
    }
    return absl::OkStatus();
  }

  absl::Status ReadArtifacts(const Entry& e, JobSpec& spec) {
    if (e.value.IsNull()) return absl::OkStatus();
    constexpr absl::string_view kExpected =
        "a list of globs relative to the workspace, e.g. [out/*, \"dist/**/*.tar.gz\"]";
    if (!e.value.IsSequence()) {
      return ErrorAt(e,
                     absl::StrCat(e.path, ": expected ", kExpected, ", found ", Describe(e.value)));
    }
    if (e.value.size() > static_cast<size_t>(kMaxArtifactGlobs)) {
      return ErrorAt(e, absl::StrCat(e.path, ": ", e.value.size(), " globs; the limit is ",
                                     kMaxArtifactGlobs));
    }
    int index = 0;
    for (auto it = e.value.begin(); it != e.value.end(); ++it, ++index) {
      const YAML::Node& glob = *it;
      const YAML::Mark mark = glob.Mark().is_null() ? e.value.Mark() : glob.Mark();
      if (!glob.IsScalar()) {
        return ErrorAt(mark, absl::StrCat(e.path, "[", index,
                                          "]: expected a glob (a string), found ", Describe(glob)));
      }
      if (absl::Status s = ValidateArtifactGlob(glob.Scalar()); !s.ok()) {
        return ErrorAt(mark, absl::StrCat(e.path, "[", index, "]: ", s.message()));
      }
      FARM_RETURN_IF_ERROR(Charge(glob.Scalar(), mark));
      spec.add_artifacts(glob.Scalar());
    }
    return absl::OkStatus();
  }

  absl::Status ReadArtifactsWhen(const Entry& e, JobSpec& spec) {
    constexpr absl::string_view kExpected =
        "on_success (collect artifacts only when every step succeeded) or always";
    if (!e.value.IsScalar()) {
      return ErrorAt(e,
                     absl::StrCat(e.path, ": expected ", kExpected, ", found ", Describe(e.value)));
    }
    const std::string& value = e.value.Scalar();
    if (value == "on_success") {
      spec.set_artifacts_when(farm::v1::ARTIFACTS_ON_SUCCESS);
    } else if (value == "always") {
      spec.set_artifacts_when(farm::v1::ARTIFACTS_ALWAYS);
    } else {
      return ErrorAt(e,
                     absl::StrCat(e.path, ": expected ", kExpected, ", found ", Describe(e.value)));
    }
    return absl::OkStatus();
  }

  absl::Status ParseStep(const YAML::Node& node, int index, StepSpec& step) {
    const std::string where = absl::StrCat("steps[", index, "]");
    if (!node.IsMap()) {
      return ErrorAt(node.Mark(), absl::StrCat(where,
                                               ": expected a step (a mapping with \"run\" and "
                                               "optionally name, env, timeout), found ",
                                               Describe(node)));
    }
    bool has_run = false;
    FARM_RETURN_IF_ERROR(ForEachEntry(
        node, kStepKeys, where, absl::StrCat(where, "."), [&](const Entry& e) -> absl::Status {
          if (e.key == "name") return ReadString(e, "a string", step.mutable_name());
          if (e.key == "run") {
            has_run = true;
            return ReadString(e, "a string (the script given to the shell)", step.mutable_run());
          }
          if (e.key == "env") return ReadStringMap(e, kMaxEnvVars, step.mutable_env());
          int64_t ms = 0;
          FARM_RETURN_IF_ERROR(ReadDuration(e, &ms));  // timeout
          step.set_timeout_ms(ms);
          return absl::OkStatus();
        }));
    if (!has_run) {
      return ErrorAt(node.Mark(),
                     absl::StrCat(where, ": missing \"run\" (the script the step runs)"));
    }
    return absl::OkStatus();
  }

  absl::Status ReadSteps(const Entry& e, JobSpec& spec) {
    if (e.value.IsNull() || (e.value.IsSequence() && e.value.size() == 0)) {
      return ErrorAt(e, "steps: a job needs at least one step (a list of mappings with \"run\")");
    }
    if (!e.value.IsSequence()) {
      return ErrorAt(e, absl::StrCat("steps: expected a list of steps, found ", Describe(e.value)));
    }
    if (e.value.size() > static_cast<size_t>(kMaxSteps)) {
      return ErrorAt(e,
                     absl::StrCat("steps: ", e.value.size(), " steps; the limit is ", kMaxSteps));
    }
    int index = 0;
    for (auto it = e.value.begin(); it != e.value.end(); ++it, ++index) {
      FARM_RETURN_IF_ERROR(ParseStep(*it, index, *spec.add_steps()));
    }
    return absl::OkStatus();
  }

  absl::Status ParseJob(const YAML::Node& root, JobSpec& spec) {
    if (!root.IsMap()) {
      return ErrorAt(root.Mark(),
                     absl::StrCat("expected a job: a mapping with keys such as name, labels, "
                                  "steps; found ",
                                  Describe(root)));
    }
    bool has_steps = false;
    FARM_RETURN_IF_ERROR(
        ForEachEntry(root, kJobKeys, "the job", "", [&](const Entry& e) -> absl::Status {
          if (e.key == "name") return ReadString(e, "a string", spec.mutable_name());
          if (e.key == "labels") return ReadStringMap(e, kMaxLabels, spec.mutable_labels());
          if (e.key == "env") return ReadStringMap(e, kMaxEnvVars, spec.mutable_env());
          if (e.key == "shell") return ReadShell(e, spec);
          if (e.key == "artifacts") return ReadArtifacts(e, spec);
          if (e.key == "artifacts_when") return ReadArtifactsWhen(e, spec);
          if (e.key == "steps") {
            has_steps = true;
            return ReadSteps(e, spec);
          }
          int32_t priority = 0;
          int64_t ms = 0;
          if (e.key == "priority") {
            FARM_RETURN_IF_ERROR(ReadPriority(e, &priority));
            spec.set_priority(priority);
          } else if (e.key == "timeout") {
            FARM_RETURN_IF_ERROR(ReadDuration(e, &ms));
            spec.set_timeout_ms(ms);
          } else {  // kill_grace
            FARM_RETURN_IF_ERROR(ReadDuration(e, &ms));
            spec.set_kill_grace_ms(ms);
          }
          return absl::OkStatus();
        }));
    if (!has_steps) {
      return ErrorAt(root.Mark(),
                     "missing \"steps\": a job needs a list of steps, each with \"run\"");
    }
    return absl::OkStatus();
  }

  const std::string& filename_;
  int64_t bytes_ = 0;
};

bool IsPlainNumber(absl::string_view text) {
  if (text.empty()) return false;
  bool seen_digit = false;
  bool seen_dot = false;
  for (char c : text) {
    if (c >= '0' && c <= '9') {
      seen_digit = true;
    } else if (c == '.' && !seen_dot) {
      seen_dot = true;
    } else {
      return false;
    }
  }
  return seen_digit;
}

}  // namespace

absl::StatusOr<int64_t> ParseJobDurationMs(absl::string_view text) {
  const std::string with_unit = IsPlainNumber(text) ? absl::StrCat(text, "s") : std::string(text);
  absl::StatusOr<int64_t> ms = ParseDurationMs(with_unit);
  if (ms.ok()) return ms;
  if (absl::StartsWith(text, "-")) {
    return absl::InvalidArgumentError(absl::StrCat("duration \"", text, "\" is negative"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("expected ", kDurationExamples, ", found \"", text, "\""));
}

absl::StatusOr<JobSpec> ParseJobFile(absl::string_view text, const std::string& filename) {
  if (text.size() > static_cast<size_t>(kMaxJobFileBytes)) {
    return absl::InvalidArgumentError(absl::StrCat(filename, ": the job file is ", text.size(),
                                                   " bytes; the limit is ", kMaxJobFileBytes,
                                                   " bytes"));
  }
  return JobFileParser(filename).Parse(text);
}

absl::StatusOr<JobSpec> LoadJobFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    return absl::Status(absl::ErrnoToStatusCode(err),
                        absl::StrCat(path, ": cannot open: ", std::strerror(err)));
  }
  std::string text;
  absl::Status status;
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    status = absl::Status(absl::ErrnoToStatusCode(err),
                          absl::StrCat(path, ": cannot stat: ", std::strerror(err)));
  } else if (S_ISDIR(st.st_mode)) {
    status = absl::InvalidArgumentError(absl::StrCat(path, ": is a directory, not a job file"));
  } else if (S_ISREG(st.st_mode) && st.st_size > kMaxJobFileBytes) {
    status = absl::InvalidArgumentError(absl::StrCat(path, ": the job file is ", st.st_size,
                                                     " bytes; the limit is ", kMaxJobFileBytes,
                                                     " bytes"));
  } else {
    // Read at most one byte past the limit: pipes and special files have no size to check.
    char buffer[64 << 10];
    while (text.size() <= static_cast<size_t>(kMaxJobFileBytes)) {
      const ssize_t n = ::read(fd, buffer, sizeof(buffer));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        const int err = errno;
        status = absl::Status(absl::ErrnoToStatusCode(err),
                              absl::StrCat(path, ": cannot read: ", std::strerror(err)));
        break;
      }
      if (n == 0) break;
      text.append(buffer, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  if (!status.ok()) return status;
  if (text.size() > static_cast<size_t>(kMaxJobFileBytes)) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": the job file is larger than the limit of ", kMaxJobFileBytes, " bytes"));
  }
  return ParseJobFile(text, path);
}

}  // namespace farm::common
