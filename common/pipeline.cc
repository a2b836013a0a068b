#include "common/pipeline.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "common/job_limits.h"
#include "common/status_macros.h"
#include "common/text.h"

namespace farm::common {
namespace {

using farm::v1::JobSpec;
using farm::v1::PipelineJobSpec;
using farm::v1::PipelineSpec;
using Part = PipelineProblem::Part;

constexpr absl::string_view kJobNameRule =
    "1 to 200 bytes of letters, digits, '.', '_' and '-', not \".\" or \"..\"";
constexpr absl::string_view kMatrixValueRule =
    "1 to 64 bytes of letters, digits, '.', '_', '+' and '-', not \".\" or \"..\"";
static_assert(kMaxNameBytes == 200 && kMaxMatrixValueBytes == 64, "update the rules above");

bool IsFileNameOf(absl::string_view text, int max_bytes, absl::string_view extra_chars) {
  if (text.empty() || text.size() > static_cast<size_t>(max_bytes)) return false;
  if (text == "." || text == "..") return false;
  for (char c : text) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
        c == '_' || c == '-' || extra_chars.find(c) != absl::string_view::npos) {
      continue;
    }
    return false;
  }
  return true;
}

class Expander {
 public:
  Expander(const PipelineSpec& spec, PipelineProblem* problem) : spec_(spec), problem_(problem) {}

  absl::StatusOr<std::vector<ExpandedJob>> Run() {
    FARM_RETURN_IF_ERROR(CheckPipeline());
    FARM_RETURN_IF_ERROR(CheckNames());
    int total = 0;
    combinations_.resize(spec_.jobs_size());
    for (int i = 0; i < spec_.jobs_size(); ++i) {
      FARM_RETURN_IF_ERROR(CheckNeeds(i));
      FARM_RETURN_IF_ERROR(CheckMatrix(i));
      total += combinations_[i];
    }
    if (total > kMaxPipelineJobs) {
      return Fail(Where(Part::kJobs),
                  absl::StrCat("the pipeline has ", total,
                               " jobs after matrix expansion; the limit is ", kMaxPipelineJobs));
    }
    FARM_RETURN_IF_ERROR(CheckAcyclic());
    return Expand(total);
  }

 private:
  static PipelineProblem Where(Part part, int job = -1, int need = -1, int axis = -1,
                               int value = -1) {
    PipelineProblem p;
    p.part = part;
    p.job = job;
    p.need = need;
    p.axis = axis;
    p.value = value;
    return p;
  }

  // `message` stands on its own for both readers.
  absl::Status Fail(PipelineProblem where, std::string message) {
    std::string located = message;
    return Fail(std::move(where), std::move(message), std::move(located));
  }

  absl::Status Fail(PipelineProblem where, std::string message, std::string located_message) {
    where.located_message = std::move(located_message);
    if (problem_ != nullptr) *problem_ = std::move(where);
    return absl::InvalidArgumentError(message);
  }

  // `predicate` continues the job's name: "needs \"x\", which ...", "has 9 matrix axes".
  absl::Status FailJob(PipelineProblem where, absl::string_view predicate) {
    const std::string& name = spec_.jobs(where.job).name();
    std::string message = absl::StrCat("jobs[", where.job, "] (", name, "): ", predicate);
    std::string located = absl::StrCat("job ", Quote(name), " ", predicate);
    return Fail(std::move(where), std::move(message), std::move(located));
  }

  absl::Status CheckPipeline() {
    const size_t bytes = spec_.ByteSizeLong();
    if (bytes > static_cast<size_t>(kMaxSerializedPipelineBytes)) {
      return Fail(Where(Part::kPipeline),
                  absl::StrCat("the pipeline is ", bytes, " bytes encoded; the limit is ",
                               kMaxSerializedPipelineBytes));
    }
    if (spec_.name().size() > static_cast<size_t>(kMaxNameBytes)) {
      return Fail(Where(Part::kName), absl::StrCat("name is ", spec_.name().size(),
                                                   " bytes; the limit is ", kMaxNameBytes));
    }
    if (absl::Status s = ValidateText("name", spec_.name(), TextKind::kName); !s.ok()) {
      return Fail(Where(Part::kName), std::string(s.message()));
    }
    if (absl::Status s = ValidateEnvVars(spec_.env(), ""); !s.ok()) {
      return Fail(Where(Part::kEnv), std::string(s.message()));
    }
    if (spec_.jobs().empty()) {
      return Fail(Where(Part::kJobs), "the pipeline has no jobs; it needs at least one");
    }
    if (spec_.jobs_size() > kMaxPipelineJobs) {
      return Fail(Where(Part::kJobs), absl::StrCat("the pipeline has ", spec_.jobs_size(),
                                                   " jobs; the limit is ", kMaxPipelineJobs));
    }
    return absl::OkStatus();
  }

  absl::Status CheckNames() {
    for (int i = 0; i < spec_.jobs_size(); ++i) {
      const std::string& name = spec_.jobs(i).name();
      if (!IsFileNameOf(name, kMaxNameBytes, "")) {
        const std::string located =
            absl::StrCat("job name ", Quote(name), " is not valid: use ", kJobNameRule);
        return Fail(Where(Part::kJobName, i), absl::StrCat("jobs[", i, "]: ", located), located);
      }
      const auto [it, inserted] = index_.emplace(name, i);
      if (!inserted) {
        return Fail(Where(Part::kJobName, i),
                    absl::StrCat("jobs[", i, "]: duplicate job name \"", name, "\" (also jobs[",
                                 it->second, "])"),
                    absl::StrCat("duplicate job name \"", name, "\""));
      }
    }
    return absl::OkStatus();
  }

  absl::Status CheckNeeds(int i) {
    const PipelineJobSpec& job = spec_.jobs(i);
    if (job.needs_size() > kMaxNeeds) {
      return FailJob(Where(Part::kNeeds, i),
                     absl::StrCat("has ", job.needs_size(), " needs; the limit is ", kMaxNeeds));
    }
    absl::flat_hash_set<absl::string_view> seen;
    for (int n = 0; n < job.needs_size(); ++n) {
      const std::string& need = job.needs(n);
      if (!index_.contains(need)) {
        return FailJob(
            Where(Part::kNeed, i, n),
            absl::StrCat("needs ", Quote(need), ", which is not a job of this pipeline"));
      }
      if (!seen.insert(need).second) {
        return FailJob(Where(Part::kNeed, i, n), absl::StrCat("needs \"", need, "\" twice"));
      }
    }
    return absl::OkStatus();
  }

  absl::Status CheckMatrix(int i) {
    const PipelineJobSpec& job = spec_.jobs(i);
    if (job.matrix_size() > kMaxMatrixAxes) {
      return FailJob(
          Where(Part::kMatrix, i),
          absl::StrCat("has ", job.matrix_size(), " matrix axes; the limit is ", kMaxMatrixAxes));
    }
    // Saturates well above any limit: the product of 8 sizes could overflow.
    constexpr int64_t kSaturated = int64_t{1} << 40;
    int64_t combinations = 1;
    absl::flat_hash_set<absl::string_view> axes;
    for (int a = 0; a < job.matrix_size(); ++a) {
      const farm::v1::MatrixAxis& axis = job.matrix(a);
      if (!IsValidEnvName(axis.name())) {
        return FailJob(Where(Part::kAxis, i, -1, a),
                       absl::StrCat("has a matrix axis named ", Quote(axis.name()),
                                    "; axis names are environment variable names "
                                    "([A-Za-z_][A-Za-z0-9_]*)"));
      }
      if (!axes.insert(axis.name()).second) {
        return FailJob(Where(Part::kAxis, i, -1, a),
                       absl::StrCat("has the matrix axis \"", axis.name(), "\" twice"));
      }
      if (axis.values().empty()) {
        return FailJob(Where(Part::kAxis, i, -1, a),
                       absl::StrCat("has a matrix axis \"", axis.name(),
                                    "\" with no values; it needs at least one"));
      }
      absl::flat_hash_set<absl::string_view> values;
      for (int v = 0; v < axis.values_size(); ++v) {
        const std::string& value = axis.values(v);
        if (!IsFileNameOf(value, kMaxMatrixValueBytes, "+")) {
          return FailJob(Where(Part::kValue, i, -1, a, v),
                         absl::StrCat("has the matrix value ", Quote(value), " in axis \"",
                                      axis.name(), "\"; values are ", kMatrixValueRule));
        }
        if (!values.insert(value).second) {
          return FailJob(Where(Part::kValue, i, -1, a, v),
                         absl::StrCat("has the value \"", value, "\" twice in matrix axis \"",
                                      axis.name(), "\""));
        }
      }
      combinations = std::min(kSaturated, combinations * axis.values_size());
    }
    if (combinations > kMaxMatrixCombinations) {
      return FailJob(
          Where(Part::kMatrix, i),
          absl::StrCat("has a matrix of ", combinations == kSaturated ? "more than " : "",
                       combinations, " combinations; the limit is ", kMaxMatrixCombinations));
    }
    combinations_[i] = static_cast<int>(combinations);
    return absl::OkStatus();
  }

  // Depth-first in file order, so that the cycle reported is the same every time.
  absl::Status CheckAcyclic() {
    state_.assign(spec_.jobs_size(), kUnvisited);
    for (int i = 0; i < spec_.jobs_size(); ++i) {
      if (state_[i] == kUnvisited) FARM_RETURN_IF_ERROR(Visit(i));
    }
    return absl::OkStatus();
  }

  // The depth is at most kMaxPipelineJobs frames.
  absl::Status Visit(int i) {
    state_[i] = kOnPath;
    path_.push_back(i);
    const PipelineJobSpec& job = spec_.jobs(i);
    for (int n = 0; n < job.needs_size(); ++n) {
      const int next = index_.at(job.needs(n));
      if (state_[next] == kOnPath) return FailCycle(next);
      if (state_[next] == kUnvisited) FARM_RETURN_IF_ERROR(Visit(next));
    }
    path_.pop_back();
    state_[i] = kDone;
    return absl::OkStatus();
  }

  // path_ ends with the job that needs `start`, which is on path_.
  absl::Status FailCycle(int start) {
    size_t from = 0;
    while (path_[from] != start) ++from;
    std::vector<absl::string_view> names;
    for (size_t k = from; k < path_.size(); ++k) names.push_back(spec_.jobs(path_[k]).name());
    names.push_back(spec_.jobs(start).name());
    // Point at the first edge: `start` needing the next job of the cycle.
    const int next = from + 1 < path_.size() ? path_[from + 1] : start;
    const PipelineJobSpec& job = spec_.jobs(start);
    int need = 0;
    while (job.needs(need) != spec_.jobs(next).name()) ++need;
    return Fail(Where(Part::kNeed, start, need),
                absl::StrCat("jobs form a cycle: ", absl::StrJoin(names, " → ")));
  }

  absl::StatusOr<std::vector<ExpandedJob>> Expand(int total) {
    std::vector<ExpandedJob> out;
    out.reserve(total);
    std::vector<int> first(spec_.jobs_size());
    int64_t bytes = 0;
    for (int i = 0; i < spec_.jobs_size(); ++i) {
      const PipelineJobSpec& job = spec_.jobs(i);
      first[i] = static_cast<int>(out.size());
      std::vector<int> choice(job.matrix_size(), 0);  // an odometer, the last axis fastest
      for (int c = 0; c < combinations_[i]; ++c) {
        ExpandedJob expanded;
        expanded.base_name = job.name();
        expanded.input_dir = job.name();
        expanded.spec = job.spec();
        JobSpec& spec = expanded.spec;
        google::protobuf::Map<std::string, std::string> env = spec_.env();
        for (const auto& [k, v] : job.spec().env()) env[k] = v;
        std::vector<absl::string_view> values;
        for (int a = 0; a < job.matrix_size(); ++a) {
          const std::string& value = job.matrix(a).values(choice[a]);
          env[job.matrix(a).name()] = value;
          values.push_back(value);
          absl::StrAppend(&expanded.input_dir, "/", value);
        }
        *spec.mutable_env() = std::move(env);
        spec.set_name(values.empty()
                          ? job.name()
                          : absl::StrCat(job.name(), " (", absl::StrJoin(values, ", "), ")"));
        ApplyJobDefaults(spec);
        if (absl::Status s = ValidateJobSpec(spec, JobOrigin::kPipeline); !s.ok()) {
          PipelineProblem where = Where(Part::kJob, i);
          return Fail(std::move(where),
                      absl::StrCat("jobs[", i, "] (", spec.name(), "): ", s.message()),
                      absl::StrCat("job ", Quote(spec.name()), ": ", s.message()));
        }
        bytes += static_cast<int64_t>(spec.ByteSizeLong());
        if (bytes > kMaxExpandedPipelineBytes) {
          return FailJob(
              Where(Part::kJob, i),
              absl::StrCat("takes the pipeline's jobs past the limit of ",
                           kMaxExpandedPipelineBytes, " bytes encoded after matrix expansion"));
        }
        out.push_back(std::move(expanded));
        for (int a = job.matrix_size() - 1; a >= 0; --a) {
          if (++choice[a] < job.matrix(a).values_size()) break;
          choice[a] = 0;
        }
      }
    }
    // Needs refer to earlier or later jobs alike: resolve them once every job has its index.
    for (int i = 0; i < spec_.jobs_size(); ++i) {
      std::vector<int> needs;
      for (const std::string& name : spec_.jobs(i).needs()) {
        const int j = index_.at(name);
        for (int k = 0; k < combinations_[j]; ++k) needs.push_back(first[j] + k);
      }
      std::sort(needs.begin(), needs.end());
      for (int k = 0; k < combinations_[i]; ++k) out[first[i] + k].needs = needs;
    }
    return out;
  }

  enum VisitState { kUnvisited, kOnPath, kDone };

  const PipelineSpec& spec_;
  PipelineProblem* const problem_;
  absl::flat_hash_map<std::string, int> index_;  // job name → index into spec_.jobs
  std::vector<int> combinations_;                // per job: 1 without a matrix
  std::vector<VisitState> state_;
  std::vector<int> path_;
};

}  // namespace

absl::StatusOr<std::vector<ExpandedJob>> ExpandPipeline(const PipelineSpec& spec,
                                                        PipelineProblem* problem) {
  return Expander(spec, problem).Run();
}

}  // namespace farm::common
