#include "common/pipeline_file.h"

#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/job_file_parser.h"
#include "common/job_limits.h"
#include "common/pipeline.h"
#include "common/status_macros.h"

namespace farm::common {
namespace {

using farm::v1::JobSpec;
using farm::v1::PipelineJobSpec;
using farm::v1::PipelineSpec;
using internal::DescribeYaml;
using internal::SpecFileParser;
using internal::YamlEntry;
using Part = PipelineProblem::Part;

constexpr absl::string_view kPipelineKeys[] = {"name", "env", "jobs"};
constexpr absl::string_view kPipelineJobKeys[] = {"needs", "matrix"};

// Where the parts of a job were written, to point at them when ExpandPipeline finds a problem.
struct JobMarks {
  YAML::Mark key = YAML::Mark::null_mark();    // the job's name under `jobs:`
  YAML::Mark needs = YAML::Mark::null_mark();  // the `needs:` value
  std::vector<YAML::Mark> need;
  YAML::Mark matrix = YAML::Mark::null_mark();  // the `matrix:` value
  std::vector<YAML::Mark> axis;                 // the axis names
  std::vector<std::vector<YAML::Mark>> value;
};

// The value's position; its key's when it is empty (yaml-cpp puts an empty value's mark at the
// next token).
YAML::Mark MarkOf(const YamlEntry& e) {
  if (e.value.IsNull() || e.value.Mark().is_null()) return e.key_node.Mark();
  return e.value.Mark();
}

YAML::Mark MarkOf(const YAML::Node& node, const YAML::Mark& fallback) {
  return node.Mark().is_null() ? fallback : node.Mark();
}

// "dir/ci.yaml" → "ci".
std::string BaseName(absl::string_view path) {
  const size_t slash = path.rfind('/');
  if (slash != absl::string_view::npos) path.remove_prefix(slash + 1);
  const size_t dot = path.rfind('.');
  if (dot != absl::string_view::npos && dot > 0) path = path.substr(0, dot);
  return std::string(path);
}

// A valid job name made of `text`: runs of other characters than [A-Za-z0-9._-] become one
// '-', '-' and '.' are trimmed from both ends; "job" when nothing is left.
std::string ToJobName(absl::string_view text) {
  std::string out;
  bool replaced = false;
  for (char c : text) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
        c == '_' || c == '-') {
      out.push_back(c);
      replaced = false;
    } else if (!replaced) {
      out.push_back('-');
      replaced = true;
    }
  }
  if (out.size() > static_cast<size_t>(kMaxNameBytes)) out.resize(kMaxNameBytes);
  const size_t begin = out.find_first_not_of("-.");
  if (begin == std::string::npos) return "job";
  const size_t end = out.find_last_not_of("-.");
  return out.substr(begin, end - begin + 1);
}

class PipelineFileParser {
 public:
  explicit PipelineFileParser(const std::string& filename)
      : filename_(filename), parser_(filename, kMaxSerializedPipelineBytes) {}

  absl::StatusOr<PipelineSpec> Parse(absl::string_view text) {
    FARM_RETURN_IF_ERROR(parser_.ParseDocument(
        text,
        "the file is empty; expected a pipeline: a mapping with \"jobs\" (or a job, with "
        "\"steps\")",
        "a pipeline file holds exactly one pipeline",
        [&](const YAML::Node& root) { return ParseRoot(root); }));
    PipelineProblem problem;
    if (absl::StatusOr<std::vector<ExpandedJob>> jobs = ExpandPipeline(spec_, &problem);
        !jobs.ok()) {
      return parser_.ErrorAt(Locate(problem), problem.located_message);
    }
    return std::move(spec_);
  }

 private:
  absl::Status ParseRoot(const YAML::Node& root) {
    root_ = root.Mark();
    if (!root.IsMap()) {
      return parser_.ErrorAt(root.Mark(),
                             absl::StrCat("expected a pipeline: a mapping with \"jobs\" (or a job, "
                                          "with \"steps\"); found ",
                                          DescribeYaml(root)));
    }
    bool has_jobs = false;
    bool has_steps = false;
    for (auto it = root.begin(); it != root.end(); ++it) {
      if (!it->first.IsScalar()) continue;
      has_jobs = has_jobs || it->first.Scalar() == "jobs";
      has_steps = has_steps || it->first.Scalar() == "steps";
    }
    if (has_steps && !has_jobs) return ParseSingleJob(root);

    FARM_RETURN_IF_ERROR(parser_.ForEachEntry(
        root, kPipelineKeys, "the pipeline", "", [&](const YamlEntry& e) -> absl::Status {
          if (e.key == "name") {
            name_ = MarkOf(e);
            has_name_ = true;
            return parser_.ReadString(e, "a string", spec_.mutable_name());
          }
          if (e.key == "env") {
            env_ = MarkOf(e);
            return parser_.ReadStringMap(e, kMaxEnvVars, spec_.mutable_env());
          }
          return ParseJobs(e);
        }));
    if (!has_jobs) {
      return parser_.ErrorAt(root.Mark(),
                             "missing \"jobs\": a pipeline needs a mapping of job names to jobs "
                             "(or, for a single job, \"steps\")");
    }
    if (!has_name_) spec_.set_name(ToJobName(BaseName(filename_)));
    return absl::OkStatus();
  }

  // A job file: a pipeline of that one job.
  absl::Status ParseSingleJob(const YAML::Node& root) {
    JobSpec spec;
    FARM_RETURN_IF_ERROR(parser_.ParseJob(root, {}, spec));
    ApplyJobDefaults(spec);
    if (absl::Status s = ValidateJobSpec(spec); !s.ok()) return parser_.FileError(s.message());
    const std::string job_name = ToJobName(spec.name().empty() ? BaseName(filename_) : spec.name());
    spec_.set_name(spec.name().empty() ? job_name : spec.name());
    PipelineJobSpec* job = spec_.add_jobs();
    job->set_name(job_name);
    *job->mutable_spec() = std::move(spec);
    jobs_.emplace_back().key = root.Mark();
    return absl::OkStatus();
  }

  absl::Status ParseJobs(const YamlEntry& e) {
    jobs_key_ = e.key_node.Mark();
    if (!e.value.IsMap()) {
      return parser_.ErrorAt(e, absl::StrCat("jobs: expected a mapping of job names to jobs, "
                                             "found ",
                                             DescribeYaml(e.value)));
    }
    if (e.value.size() > static_cast<size_t>(kMaxPipelineJobs)) {
      return parser_.ErrorAt(
          e, absl::StrCat("jobs: ", e.value.size(), " jobs; the limit is ", kMaxPipelineJobs));
    }
    return parser_.ForEachEntry(
        e.value, {}, "jobs", "jobs.", [&](const YamlEntry& job) -> absl::Status {
          jobs_.emplace_back().key = job.key_node.Mark();
          PipelineJobSpec* spec = spec_.add_jobs();
          FARM_RETURN_IF_ERROR(parser_.Charge(job.key, job.key_node.Mark()));
          spec->set_name(job.key);
          if (job.value.IsNull()) {
            return parser_.ErrorAt(job.key_node.Mark(),
                                   absl::StrCat(job.path,
                                                ": expected a job: a mapping with keys such as "
                                                "needs, steps (write {} for a job that does "
                                                "nothing); found nothing"));
          }
          SpecFileParser::JobContext context;
          context.origin = JobOrigin::kPipeline;
          context.where = job.path;
          context.path_prefix = absl::StrCat(job.path, ".");
          context.extra_keys.assign(std::begin(kPipelineJobKeys), std::end(kPipelineJobKeys));
          context.extra = [&](const YamlEntry& item) -> absl::Status {
            if (item.key == "needs") return ReadNeeds(item, *spec);
            return ReadMatrix(item, *spec);
          };
          return parser_.ParseJob(job.value, context, *spec->mutable_spec());
        });
  }

  absl::Status ReadNeeds(const YamlEntry& e, PipelineJobSpec& job) {
    JobMarks& marks = jobs_.back();
    marks.needs = MarkOf(e);
    if (e.value.IsNull()) return absl::OkStatus();
    if (e.value.IsScalar()) {
      FARM_RETURN_IF_ERROR(parser_.Charge(e.value.Scalar(), e.value.Mark()));
      job.add_needs(e.value.Scalar());
      marks.need.push_back(e.value.Mark());
      return absl::OkStatus();
    }
    if (!e.value.IsSequence()) {
      return parser_.ErrorAt(e, absl::StrCat(e.path,
                                             ": expected a job name or a list of job names, "
                                             "found ",
                                             DescribeYaml(e.value)));
    }
    int index = 0;
    for (auto it = e.value.begin(); it != e.value.end(); ++it, ++index) {
      const YAML::Node& need = *it;
      const YAML::Mark mark = MarkOf(need, marks.needs);
      if (!need.IsScalar()) {
        return parser_.ErrorAt(
            mark,
            absl::StrCat(e.path, "[", index, "]: expected a job name, found ", DescribeYaml(need)));
      }
      FARM_RETURN_IF_ERROR(parser_.Charge(need.Scalar(), mark));
      job.add_needs(need.Scalar());
      marks.need.push_back(mark);
    }
    return absl::OkStatus();
  }

  absl::Status ReadMatrix(const YamlEntry& e, PipelineJobSpec& job) {
    JobMarks& marks = jobs_.back();
    marks.matrix = MarkOf(e);
    if (e.value.IsNull()) return absl::OkStatus();
    if (!e.value.IsMap()) {
      return parser_.ErrorAt(e, absl::StrCat(e.path,
                                             ": expected a mapping of axis names to lists of "
                                             "values, e.g. {arch: [amd64, arm64]}; found ",
                                             DescribeYaml(e.value)));
    }
    return parser_.ForEachEntry(
        e.value, {}, e.path, absl::StrCat(e.path, "."), [&](const YamlEntry& axis) -> absl::Status {
          marks.axis.push_back(axis.key_node.Mark());
          std::vector<YAML::Mark>& value_marks = marks.value.emplace_back();
          farm::v1::MatrixAxis* out = job.add_matrix();
          FARM_RETURN_IF_ERROR(parser_.Charge(axis.key, axis.key_node.Mark()));
          out->set_name(axis.key);
          if (!axis.value.IsSequence()) {
            return parser_.ErrorAt(axis, absl::StrCat(axis.path,
                                                      ": expected a list of values such as "
                                                      "[amd64, arm64], found ",
                                                      DescribeYaml(axis.value)));
          }
          int index = 0;
          for (auto it = axis.value.begin(); it != axis.value.end(); ++it, ++index) {
            const YAML::Node& value = *it;
            const YAML::Mark mark = MarkOf(value, MarkOf(axis));
            if (!value.IsScalar()) {
              return parser_.ErrorAt(mark, absl::StrCat(axis.path, "[", index,
                                                        "]: expected a value (a string), found ",
                                                        DescribeYaml(value)));
            }
            FARM_RETURN_IF_ERROR(parser_.Charge(value.Scalar(), mark));
            out->add_values(value.Scalar());
            value_marks.push_back(mark);
          }
          return absl::OkStatus();
        });
  }

  // Where the part of the spec `problem` names was written; a null mark (no position) for the
  // pipeline as a whole.
  YAML::Mark Locate(const PipelineProblem& problem) const {
    const YAML::Mark none = YAML::Mark::null_mark();
    auto at = [&](const std::vector<YAML::Mark>& marks, int i, const YAML::Mark& fallback) {
      return i >= 0 && static_cast<size_t>(i) < marks.size() ? marks[i] : fallback;
    };
    switch (problem.part) {
      case Part::kPipeline:
        return none;
      case Part::kName:
        return name_;
      case Part::kEnv:
        return env_;
      case Part::kJobs:
        return jobs_key_.is_null() ? root_ : jobs_key_;
      default:
        break;
    }
    if (problem.job < 0 || static_cast<size_t>(problem.job) >= jobs_.size()) return none;
    const JobMarks& job = jobs_[problem.job];
    const YAML::Mark needs = job.needs.is_null() ? job.key : job.needs;
    const YAML::Mark matrix = job.matrix.is_null() ? job.key : job.matrix;
    switch (problem.part) {
      case Part::kNeeds:
        return needs;
      case Part::kNeed:
        return at(job.need, problem.need, needs);
      case Part::kMatrix:
        return matrix;
      case Part::kAxis:
        return at(job.axis, problem.axis, matrix);
      case Part::kValue:
        if (problem.axis >= 0 && static_cast<size_t>(problem.axis) < job.value.size()) {
          return at(job.value[problem.axis], problem.value, at(job.axis, problem.axis, matrix));
        }
        return matrix;
      default:
        return job.key;
    }
  }

  const std::string& filename_;
  SpecFileParser parser_;
  PipelineSpec spec_;
  bool has_name_ = false;
  YAML::Mark root_ = YAML::Mark::null_mark();
  YAML::Mark name_ = YAML::Mark::null_mark();
  YAML::Mark env_ = YAML::Mark::null_mark();
  YAML::Mark jobs_key_ = YAML::Mark::null_mark();
  std::vector<JobMarks> jobs_;  // parallel to spec_.jobs
};

}  // namespace

absl::StatusOr<PipelineSpec> ParsePipelineFile(absl::string_view text,
                                               const std::string& filename) {
  if (text.size() > static_cast<size_t>(kMaxPipelineFileBytes)) {
    return absl::InvalidArgumentError(absl::StrCat(filename, ": the pipeline file is ", text.size(),
                                                   " bytes; the limit is ", kMaxPipelineFileBytes,
                                                   " bytes"));
  }
  return PipelineFileParser(filename).Parse(text);
}

absl::StatusOr<PipelineSpec> LoadPipelineFile(const std::string& path) {
  FARM_ASSIGN_OR_RETURN(const std::string text,
                        internal::ReadSpecFile(path, kMaxPipelineFileBytes, "pipeline file"));
  return ParsePipelineFile(text, path);
}

}  // namespace farm::common
