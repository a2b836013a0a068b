// Internal to job_file.cc and pipeline_file.cc: reading YAML (or JSON) into farm.v1 messages with
// errors that say where, "FILE:LINE:COLUMN: what was wrong and what was expected". Everything
// yaml-cpp throws is caught here; nothing outside common/ should include this header.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/job_limits.h"
#include "farm/v1/farm.pb.h"

namespace farm::common::internal {

inline constexpr absl::string_view kDurationExamples =
    "a duration such as 500ms, 60s, 10m or 1h30m (a bare number is seconds)";

// One `key: value` of a mapping, with the path used in messages ("steps[1].timeout").
struct YamlEntry {
  std::string key;
  std::string path;
  YAML::Node key_node;
  YAML::Node value;
};

// How a value the user wrote is named in a message: "\"text\"", "a list", "nothing".
std::string DescribeYaml(const YAML::Node& node);

// The whole text of the file at `path`, at most `max_bytes` of it. NOT_FOUND /
// PERMISSION_DENIED when it cannot be read, INVALID_ARGUMENT when it is a directory or larger;
// messages are "PATH: ..." and call the file a `kind` ("job file").
absl::StatusOr<std::string> ReadSpecFile(const std::string& path, int64_t max_bytes,
                                         absl::string_view kind);

// Parses one file. Every string copied out of the YAML is charged against kMaxSerializedSpecBytes
// for the job being parsed and against `total_budget` for the file, so that aliases (`*a`
// repeated) cannot inflate a small file into gigabytes before the limits are checked.
// Thread-compatible; use one per file.
class SpecFileParser {
 public:
  SpecFileParser(std::string filename, int64_t total_budget)
      : filename_(std::move(filename)), total_budget_(total_budget) {}

  // Loads `text`, which must hold exactly one YAML document, and calls `fn` with its root.
  // yaml-cpp exceptions, while loading or from `fn`, become INVALID_ARGUMENT errors with the
  // position yaml-cpp gives. `empty_message` is the error for an empty file; `one_document` is
  // the end of the error for a second document ("a job file holds exactly one job").
  absl::Status ParseDocument(absl::string_view text, absl::string_view empty_message,
                             absl::string_view one_document,
                             const std::function<absl::Status(const YAML::Node&)>& fn);

  absl::Status FileError(absl::string_view message) const;
  absl::Status ErrorAt(const YAML::Mark& mark, absl::string_view message) const;
  // At the entry's value; at its key when the value is empty (yaml-cpp places an empty value's
  // mark at the next token, often on the next line).
  absl::Status ErrorAt(const YamlEntry& e, absl::string_view message) const;

  // Calls `fn` for every entry of the mapping `map`, in file order. `allowed` lists the keys
  // that may appear (empty: any); `where` names the mapping in messages ("the job", "env").
  // Unknown and duplicate keys are errors at the key.
  absl::Status ForEachEntry(const YAML::Node& map, absl::Span<const absl::string_view> allowed,
                            absl::string_view where, absl::string_view path_prefix,
                            const std::function<absl::Status(const YamlEntry&)>& fn);

  // A scalar; `expected` describes it in the error ("a string").
  absl::Status ReadString(const YamlEntry& e, absl::string_view expected, std::string* out);
  // A plain (unquoted) integer in [min, max].
  absl::Status ReadInt(const YamlEntry& e, int64_t min, int64_t max, int64_t* out);
  // A mapping of names to scalars, at most `max_entries`; numbers and booleans are kept as
  // written. An empty value (`env:`) is no entries.
  absl::Status ReadStringMap(const YamlEntry& e, int max_entries,
                             google::protobuf::Map<std::string, std::string>* out);

  absl::Status Charge(const std::string& s, const YAML::Mark& mark);

  // How ParseJob reads a job mapping.
  struct JobContext {
    // kSingle: a job file's root; `name` is allowed and `steps` required. kPipeline: a job
    // under a pipeline's `jobs:`; its key is its name, and it may have no steps.
    JobOrigin origin = JobOrigin::kSingle;
    std::string where = "the job";  // names the mapping in messages
    std::string path_prefix;        // of paths in messages: "" or "jobs.build."
    // Keys beyond a job file's that `extra` reads (a pipeline's `needs` and `matrix`).
    std::vector<absl::string_view> extra_keys;
    std::function<absl::Status(const YamlEntry&)> extra;
  };

  // Reads the job mapping `node` into `spec` (which ApplyJobDefaults and ValidateJobSpec have
  // not seen yet).
  absl::Status ParseJob(const YAML::Node& node, const JobContext& context, farm::v1::JobSpec& spec);

 private:
  absl::Status ReadDuration(const YamlEntry& e, int64_t* out_ms);
  absl::Status ReadShell(const YamlEntry& e, farm::v1::JobSpec& spec);
  absl::Status ReadArtifacts(const YamlEntry& e, farm::v1::JobSpec& spec);
  absl::Status ReadArtifactsWhen(const YamlEntry& e, farm::v1::JobSpec& spec);
  // `concurrency_group:`: a name ValidateConcurrencyGroup accepts.
  absl::Status ReadConcurrencyGroup(const YamlEntry& e, farm::v1::JobSpec& spec);
  // `secrets:`: a list of secret names (common/job_limits.h's rule), none twice.
  absl::Status ReadSecrets(const YamlEntry& e, farm::v1::JobSpec& spec);
  // `network: true|false` into JobSpec.no_network.
  absl::Status ReadNetwork(const YamlEntry& e, farm::v1::JobSpec& spec);
  absl::Status ReadRetry(const YamlEntry& e, farm::v1::RetryPolicy& retry);
  absl::Status ReadStepWhen(const YamlEntry& e, farm::v1::StepSpec& step);
  absl::Status ParseStep(const YAML::Node& node, int index, farm::v1::StepSpec& step);
  absl::Status ReadSteps(const YamlEntry& e, farm::v1::JobSpec& spec);

  const std::string filename_;
  const int64_t total_budget_;
  int64_t total_bytes_ = 0;
  bool in_job_ = false;
  int64_t job_bytes_ = 0;
  const JobContext* job_ = nullptr;  // while ParseJob runs
};

}  // namespace farm::common::internal
