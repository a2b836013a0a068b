#include "coordinator/factory/provenance.h"

#include <deque>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/job_state.h"
#include "common/status_macros.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace farm::coordinator::factory {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

Value& Field(Struct& s, const char* name) { return (*s.mutable_fields())[name]; }
Struct& Object(Struct& s, const char* name) { return *Field(s, name).mutable_struct_value(); }

std::string Rfc3339(int64_t ms) {
  return absl::FormatTime(absl::RFC3339_full, absl::FromUnixMillis(ms), absl::UTCTimeZone());
}

Struct Descriptor(const std::string& name, const std::string& sha256) {
  Struct d;
  Field(d, "name").set_string_value(name);
  Field(Object(d, "digest"), "sha256").set_string_value(sha256);
  return d;
}

std::string NameOf(const farm::v1::Job& job) {
  return job.pipeline_job().empty() ? job.spec().name() : job.pipeline_job();
}

// Every artifact the job was given, and those its inputs' jobs were given, breadth first.
absl::Status AddDependencies(const JobReads& reads, const farm::v1::Job& job, Struct& definition) {
  auto* deps = Field(definition, "resolvedDependencies").mutable_list_value();
  std::deque<std::pair<farm::v1::Job, int>> todo;
  todo.emplace_back(job, 1);
  std::set<std::string> seen = {job.id()};
  while (!todo.empty()) {
    auto [user, depth] = std::move(todo.front());
    todo.pop_front();
    for (const farm::v1::JobInput& in : user.inputs()) {
      absl::StatusOr<farm::v1::Job> maker = reads.GetJob(in.job_id());
      if (!maker.ok()) {
        return absl::Status(maker.status().code(),
                            absl::StrCat("input job ", in.job_id(), " of job ", user.id(), ": ",
                                         maker.status().message()));
      }
      for (const farm::v1::Artifact& a : in.artifacts()) {
        Struct d = Descriptor(absl::StrCat("inputs/", in.dir(), "/", a.path()), a.hash());
        Struct& notes = Object(d, "annotations");
        Field(notes, "madeBy").set_string_value(in.job_id());
        Field(notes, "madeByName").set_string_value(NameOf(*maker));
        Field(notes, "usedBy").set_string_value(user.id());
        Field(notes, "depth").set_number_value(depth);
        Field(notes, "size").set_number_value(static_cast<double>(a.size()));
        *deps->add_values()->mutable_struct_value() = std::move(d);
      }
      if (!seen.insert(in.job_id()).second) continue;
      if (seen.size() > static_cast<size_t>(kMaxProvenanceJobs)) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "job ", job.id(), " has more than ", kMaxProvenanceJobs, " jobs behind its inputs"));
      }
      todo.emplace_back(*std::move(maker), depth + 1);
    }
  }
  return absl::OkStatus();
}

absl::Status AddDefinition(const JobReads& reads, const farm::v1::Job& job, Struct& predicate) {
  Struct& def = Object(predicate, "buildDefinition");
  Field(def, "buildType").set_string_value(std::string(kBuildType));
  Struct& external = Object(def, "externalParameters");
  std::string spec;
  if (!google::protobuf::util::MessageToJsonString(job.spec(), &spec).ok() ||
      !google::protobuf::util::JsonStringToMessage(spec, &Object(external, "job")).ok()) {
    return absl::InternalError(absl::StrCat("job ", job.id(), "'s spec does not convert to JSON"));
  }
  if (!job.pipeline_id().empty()) {
    Struct& p = Object(external, "pipeline");
    Field(p, "id").set_string_value(job.pipeline_id());
    Field(p, "job").set_string_value(job.pipeline_job());
  }
  const farm::v1::Attempt& last = job.attempts(job.attempts_size() - 1);
  Struct& internal = Object(def, "internalParameters");
  Field(internal, "jobId").set_string_value(job.id());
  Field(internal, "attempt").set_number_value(last.number());
  Field(internal, "agent").set_string_value(last.agent());
  Field(internal, "epoch").set_string_value(absl::StrCat(last.epoch()));
  return AddDependencies(reads, job, def);
}

void AddRunDetails(const farm::v1::Job& job, absl::string_view builder_id, Struct& predicate) {
  const farm::v1::Attempt& last = job.attempts(job.attempts_size() - 1);
  Struct& run = Object(predicate, "runDetails");
  Field(Object(run, "builder"), "id").set_string_value(std::string(builder_id));
  Struct& meta = Object(run, "metadata");
  Field(meta, "invocationId")
      .set_string_value(absl::StrCat("job/", job.id(), "/attempt/", last.number()));
  Field(meta, "startedOn").set_string_value(Rfc3339(last.started_ms()));
  Field(meta, "finishedOn").set_string_value(Rfc3339(last.ended_ms()));
  auto* byproducts = Field(run, "byproducts").mutable_list_value();
  for (const farm::v1::StepResult& step : last.steps()) {
    Struct b;
    Field(b, "name").set_string_value(absl::StrCat("step/", step.name()));
    Struct& notes = Object(b, "annotations");
    Field(notes, "state").set_string_value(farm::v1::StepState_Name(step.state()));
    Field(notes, "exitCode").set_number_value(step.exit_code());
    Field(notes, "durationMs").set_number_value(static_cast<double>(step.duration_ms()));
    *byproducts->add_values()->mutable_struct_value() = std::move(b);
  }
}

}  // namespace

absl::StatusOr<std::string> ProvenanceStatement(const JobReads& reads, absl::string_view job_id,
                                                absl::string_view builder_id) {
  FARM_ASSIGN_OR_RETURN(farm::v1::Job job, reads.GetJob(job_id));
  if (!common::IsTerminal(job.state()) || job.attempts().empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", job.id(), " has not ended: its artifacts are not final yet"));
  }
  if (job.artifacts().empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", job.id(), " made no artifacts: provenance describes artifacts"));
  }
  Struct statement;
  Field(statement, "_type").set_string_value(std::string(kStatementType));
  auto* subjects = Field(statement, "subject").mutable_list_value();
  for (const farm::v1::Artifact& a : job.artifacts()) {
    Struct d = Descriptor(a.path(), a.hash());
    Field(Object(d, "annotations"), "size").set_number_value(static_cast<double>(a.size()));
    *subjects->add_values()->mutable_struct_value() = std::move(d);
  }
  Field(statement, "predicateType").set_string_value(std::string(kPredicateType));
  Struct& predicate = Object(statement, "predicate");
  FARM_RETURN_IF_ERROR(AddDefinition(reads, job, predicate));
  AddRunDetails(job, builder_id, predicate);
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(statement, &json).ok()) {
    return absl::InternalError("the statement does not convert to JSON");
  }
  return json;
}

}  // namespace farm::coordinator::factory
