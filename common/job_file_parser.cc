#include "common/job_file_parser.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>

#include <algorithm>
#include <cerrno>
#include <exception>
#include <sstream>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/job_file.h"
#include "common/posix_io.h"
#include "common/status_macros.h"

namespace farm::common::internal {
namespace {

using farm::v1::JobSpec;
using farm::v1::StepSpec;
using StringMap = google::protobuf::Map<std::string, std::string>;

constexpr absl::string_view kJobKeys[] = {
    "name",        "labels",  "priority",  "timeout",        "env",   "shell",
    "kill_grace",  "steps",   "artifacts", "artifacts_when", "retry", "concurrency_group",
    "concurrency", "secrets", "network"};
constexpr absl::string_view kStepKeys[] = {"name", "run", "env", "timeout", "when"};

// Bytes a string costs in the encoded JobSpec, roughly: its length plus tag and length prefix.
int64_t EncodedCost(const std::string& s) { return static_cast<int64_t>(s.size()) + 8; }

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

}  // namespace

std::string DescribeYaml(const YAML::Node& node) {
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

absl::StatusOr<std::string> ReadSpecFile(const std::string& path, int64_t max_bytes,
                                         absl::string_view kind) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return ErrnoStatus(errno, absl::StrCat(path, ": cannot open"));
  }
  std::string text;
  absl::Status status;
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    status = ErrnoStatus(errno, absl::StrCat(path, ": cannot stat"));
  } else if (S_ISDIR(st.st_mode)) {
    status = absl::InvalidArgumentError(absl::StrCat(path, ": is a directory, not a ", kind));
  } else if (S_ISREG(st.st_mode) && st.st_size > max_bytes) {
    status = absl::InvalidArgumentError(absl::StrCat(path, ": the ", kind, " is ", st.st_size,
                                                     " bytes; the limit is ", max_bytes, " bytes"));
  } else {
    // Read at most one byte past the limit: pipes and special files have no size to check.
    char buffer[64 << 10];
    while (text.size() <= static_cast<size_t>(max_bytes)) {
      const ssize_t n = ::read(fd, buffer, sizeof(buffer));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        status = ErrnoStatus(errno, absl::StrCat(path, ": cannot read"));
        break;
      }
      if (n == 0) break;
      text.append(buffer, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  if (!status.ok()) return status;
  if (text.size() > static_cast<size_t>(max_bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": the ", kind, " is larger than the limit of ", max_bytes, " bytes"));
  }
  return text;
}

namespace {

// Counts a text's YAML documents from the parser's events, for ParseDocument: yaml-cpp's own
// LoadAll never returns on some malformed input (after a flow collection or a quoted scalar at
// the top, a ',' as in "{}," makes it build empty documents forever, in memory), so the
// documents are counted here, stopping at the second, and only the first is loaded.
class DocumentCounter : public YAML::EventHandler {
 public:
  int documents() const { return documents_; }
  // Where the second document's first node is (else where the document starts).
  const YAML::Mark& second() const { return second_; }

  void OnDocumentStart(const YAML::Mark& mark) override { Saw(mark, true); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { Saw(mark); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { Saw(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string&) override {
    Saw(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    Saw(mark);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    Saw(mark);
  }
  void OnMapEnd() override {}

 private:
  void Saw(const YAML::Mark& mark, bool document = false) {
    if (document) {
      if (++documents_ == 2) second_ = mark;
      first_node_ = true;
    } else if (first_node_) {
      if (documents_ == 2) second_ = mark;
      first_node_ = false;
    }
  }

  int documents_ = 0;
  bool first_node_ = false;
  YAML::Mark second_ = YAML::Mark::null_mark();
};

}  // namespace

absl::Status SpecFileParser::ParseDocument(
    absl::string_view text, absl::string_view empty_message, absl::string_view one_document,
    const std::function<absl::Status(const YAML::Node&)>& fn) {
  try {
    const std::string input(text);
    std::istringstream stream(input);
    YAML::Parser parser(stream);
    DocumentCounter counter;
    for (int i = 0; i < 2 && parser.HandleNextDocument(counter); ++i) {
    }
    if (counter.documents() > 1) {
      return ErrorAt(counter.second(),
                     absl::StrCat("a second YAML document starts here; ", one_document));
    }
    const YAML::Node doc = YAML::Load(input);
    if (doc.IsNull()) return FileError(empty_message);
    return fn(doc);
  } catch (const YAML::Exception& e) {
    // ParserException for malformed input; anything else from yaml-cpp is unexpected, but
    // its mark still tells the user where to look.
    const bool malformed = dynamic_cast<const YAML::ParserException*>(&e) != nullptr;
    std::string what = malformed
                           ? absl::StrCat("malformed YAML/JSON: ", ExplainParserMessage(e.msg))
                           : absl::StrCat("cannot read the file: ", e.msg);
    if (dynamic_cast<const YAML::DeepRecursion*>(&e) != nullptr) {
      what = "malformed YAML/JSON: lists or mappings are nested too deeply";
    }
    return e.mark.is_null() ? FileError(what) : ErrorAt(e.mark, what);
  } catch (const std::exception& e) {
    return FileError(absl::StrCat("cannot read the file: ", e.what()));
  } catch (...) {
    return FileError("cannot read the file");
  }
}

absl::Status SpecFileParser::FileError(absl::string_view message) const {
  return absl::InvalidArgumentError(absl::StrCat(filename_, ": ", message));
}

absl::Status SpecFileParser::ErrorAt(const YAML::Mark& mark, absl::string_view message) const {
  if (mark.is_null()) return FileError(message);
  return absl::InvalidArgumentError(
      absl::StrCat(filename_, ":", mark.line + 1, ":", mark.column + 1, ": ", message));
}

absl::Status SpecFileParser::ErrorAt(const YamlEntry& e, absl::string_view message) const {
  if (e.value.IsNull() || e.value.Mark().is_null()) return ErrorAt(e.key_node.Mark(), message);
  return ErrorAt(e.value.Mark(), message);
}

absl::Status SpecFileParser::Charge(const std::string& s, const YAML::Mark& mark) {
  const int64_t cost = EncodedCost(s);
  if (in_job_) {
    job_bytes_ += cost;
    if (job_bytes_ > kMaxSerializedSpecBytes) {
      return ErrorAt(mark, absl::StrCat("the job is larger than the limit of ",
                                        kMaxSerializedSpecBytes, " bytes encoded"));
    }
  }
  total_bytes_ += cost;
  if (total_bytes_ > total_budget_) {
    return ErrorAt(mark, absl::StrCat("the file's contents are larger than the limit of ",
                                      total_budget_, " bytes encoded"));
  }
  return absl::OkStatus();
}

absl::Status SpecFileParser::ForEachEntry(const YAML::Node& map,
                                          absl::Span<const absl::string_view> allowed,
                                          absl::string_view where, absl::string_view path_prefix,
                                          const std::function<absl::Status(const YamlEntry&)>& fn) {
  absl::flat_hash_map<std::string, int> first_line;
  for (auto it = map.begin(); it != map.end(); ++it) {
    YamlEntry e;
    e.key_node = it->first;
    e.value = it->second;
    if (!e.key_node.IsScalar()) {
      return ErrorAt(e.key_node.Mark(),
                     absl::StrCat("keys in ", where, " must be plain names, found ",
                                  DescribeYaml(e.key_node)));
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
      return ErrorAt(e.key_node.Mark(), absl::StrCat("duplicate key \"", e.key, "\" in ", where,
                                                     " (first given on line ", prev->second, ")"));
    }
    FARM_RETURN_IF_ERROR(fn(e));
  }
  return absl::OkStatus();
}

absl::Status SpecFileParser::ReadString(const YamlEntry& e, absl::string_view expected,
                                        std::string* out) {
  if (!e.value.IsScalar()) {
    return ErrorAt(
        e, absl::StrCat(e.path, ": expected ", expected, ", found ", DescribeYaml(e.value)));
  }
  *out = e.value.Scalar();
  return Charge(*out, e.value.Mark());
}

absl::Status SpecFileParser::ReadInt(const YamlEntry& e, int64_t min, int64_t max, int64_t* out) {
  const std::string expected = absl::StrCat("an integer from ", min, " to ", max);
  int64_t value = 0;
  // A quoted "5" is a string in JSON and YAML alike; only a plain scalar is a number.
  if (!e.value.IsScalar() || e.value.Tag() == "!" || !absl::SimpleAtoi(e.value.Scalar(), &value)) {
    return ErrorAt(
        e, absl::StrCat(e.path, ": expected ", expected, ", found ", DescribeYaml(e.value)));
  }
  if (value < min || value > max) {
    return ErrorAt(e, absl::StrCat(e.path, ": ", value, " is out of range; expected ", expected));
  }
  *out = value;
  return absl::OkStatus();
}

absl::Status SpecFileParser::ReadDuration(const YamlEntry& e, int64_t* out_ms) {
  if (!e.value.IsScalar()) {
    return ErrorAt(e, absl::StrCat(e.path, ": expected ", kDurationExamples, ", found ",
                                   DescribeYaml(e.value)));
  }
  absl::StatusOr<int64_t> ms = ParseJobDurationMs(e.value.Scalar());
  if (!ms.ok()) return ErrorAt(e, absl::StrCat(e.path, ": ", ms.status().message()));
  *out_ms = *ms;
  return absl::OkStatus();
}

absl::Status SpecFileParser::ReadStringMap(const YamlEntry& e, int max_entries, StringMap* out) {
  if (e.value.IsNull()) return absl::OkStatus();
  if (!e.value.IsMap()) {
    return ErrorAt(e, absl::StrCat(e.path, ": expected a mapping of names to values, found ",
                                   DescribeYaml(e.value)));
  }
  if (e.value.size() > static_cast<size_t>(max_entries)) {
    return ErrorAt(
        e, absl::StrCat(e.path, ": ", e.value.size(), " entries; the limit is ", max_entries));
  }
  return ForEachEntry(
      e.value, {}, e.path, absl::StrCat(e.path, "."), [&](const YamlEntry& item) -> absl::Status {
        std::string value;
        FARM_RETURN_IF_ERROR(ReadString(item, "a string (write \"\" for an empty value)", &value));
        FARM_RETURN_IF_ERROR(Charge(item.key, item.key_node.Mark()));
        (*out)[item.key] = std::move(value);
        return absl::OkStatus();
      });
}

absl::Status SpecFileParser::ParseStep(const YAML::Node& node, int index, StepSpec& step) {
  const std::string where = absl::StrCat(job_->path_prefix, "steps[", index, "]");
  if (!node.IsMap()) {
    return ErrorAt(node.Mark(), absl::StrCat(where,
                                             ": expected a step (a mapping with \"run\" and "
                                             "optionally name, env, timeout, when), found ",
                                             DescribeYaml(node)));
  }
  bool has_run = false;
  FARM_RETURN_IF_ERROR(ForEachEntry(
      node, kStepKeys, where, absl::StrCat(where, "."), [&](const YamlEntry& e) -> absl::Status {
        if (e.key == "name") return ReadString(e, "a string", step.mutable_name());
        if (e.key == "run") {
          has_run = true;
          return ReadString(e, "a string (the script given to the shell)", step.mutable_run());
        }
        if (e.key == "env") return ReadStringMap(e, kMaxEnvVars, step.mutable_env());
        if (e.key == "when") return ReadStepWhen(e, step);
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

absl::Status SpecFileParser::ReadSteps(const YamlEntry& e, JobSpec& spec) {
  const bool empty = e.value.IsNull() || (e.value.IsSequence() && e.value.size() == 0);
  if (empty && job_->origin == JobOrigin::kPipeline) return absl::OkStatus();
  if (empty) {
    return ErrorAt(e, absl::StrCat(e.path,
                                   ": a job needs at least one step (a list of mappings with "
                                   "\"run\")"));
  }
  if (!e.value.IsSequence()) {
    return ErrorAt(
        e, absl::StrCat(e.path, ": expected a list of steps, found ", DescribeYaml(e.value)));
  }
  if (e.value.size() > static_cast<size_t>(kMaxSteps)) {
    return ErrorAt(e,
                   absl::StrCat(e.path, ": ", e.value.size(), " steps; the limit is ", kMaxSteps));
  }
  int index = 0;
  for (auto it = e.value.begin(); it != e.value.end(); ++it, ++index) {
    FARM_RETURN_IF_ERROR(ParseStep(*it, index, *spec.add_steps()));
  }
  return absl::OkStatus();
}

absl::Status SpecFileParser::ParseJob(const YAML::Node& node, const JobContext& context,
                                      JobSpec& spec) {
  const bool single = context.origin == JobOrigin::kSingle;
  if (!node.IsMap()) {
    return ErrorAt(node.Mark(), absl::StrCat(single ? "" : absl::StrCat(context.where, ": "),
                                             "expected a job: a mapping with keys such as ",
                                             single ? "name, " : "", "labels, steps; found ",
                                             DescribeYaml(node)));
  }
  std::vector<absl::string_view> keys;
  for (absl::string_view key : kJobKeys) {
    if (single || key != "name") keys.push_back(key);
  }
  keys.insert(keys.end(), context.extra_keys.begin(), context.extra_keys.end());
  if (!single) {
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (it->first.IsScalar() && it->first.Scalar() == "name") {
        return ErrorAt(it->first.Mark(),
                       absl::StrCat("\"name\" is not allowed in a pipeline's job (", context.where,
                                    "): its key under \"jobs\" is its name"));
      }
    }
  }

  job_ = &context;
  in_job_ = true;
  job_bytes_ = 0;
  bool has_steps = false;
  YAML::Mark concurrency_mark = YAML::Mark::null_mark();
  absl::Status status = ForEachEntry(
      node, keys, context.where, context.path_prefix, [&](const YamlEntry& e) -> absl::Status {
        if (e.key == "name") return ReadString(e, "a string", spec.mutable_name());
        if (e.key == "labels") return ReadStringMap(e, kMaxLabels, spec.mutable_labels());
        if (e.key == "env") return ReadStringMap(e, kMaxEnvVars, spec.mutable_env());
        if (e.key == "shell") return ReadShell(e, spec);
        if (e.key == "artifacts") return ReadArtifacts(e, spec);
        if (e.key == "artifacts_when") return ReadArtifactsWhen(e, spec);
        if (e.key == "secrets") return ReadSecrets(e, spec);
        if (e.key == "network") return ReadNetwork(e, spec);
        if (e.key == "retry") return ReadRetry(e, *spec.mutable_retry());
        if (e.key == "steps") {
          has_steps = true;
          return ReadSteps(e, spec);
        }
        if (e.key == "concurrency_group") return ReadConcurrencyGroup(e, spec);
        int64_t value = 0;
        if (e.key == "priority") {
          FARM_RETURN_IF_ERROR(ReadInt(e, kMinPriority, kMaxPriority, &value));
          spec.set_priority(static_cast<int32_t>(value));
        } else if (e.key == "concurrency") {
          FARM_RETURN_IF_ERROR(ReadInt(e, 0, kMaxConcurrency, &value));
          spec.set_concurrency(static_cast<int32_t>(value));
          concurrency_mark = e.key_node.Mark();
        } else if (e.key == "timeout") {
          FARM_RETURN_IF_ERROR(ReadDuration(e, &value));
          spec.set_timeout_ms(value);
        } else if (e.key == "kill_grace") {
          FARM_RETURN_IF_ERROR(ReadDuration(e, &value));
          spec.set_kill_grace_ms(value);
        } else {
          return context.extra(e);
        }
        return absl::OkStatus();
      });
  in_job_ = false;
  job_ = nullptr;
  FARM_RETURN_IF_ERROR(status);
  if (single && !has_steps) {
    return ErrorAt(node.Mark(),
                   "missing \"steps\": a job needs a list of steps, each with \"run\"");
  }
  if (spec.concurrency() != 0 && spec.concurrency_group().empty()) {
    return ErrorAt(concurrency_mark,
                   absl::StrCat(context.path_prefix,
                                "concurrency: a limit needs a \"concurrency_group\" to count the "
                                "jobs of"));
  }
  return absl::OkStatus();
}

}  // namespace farm::common::internal
