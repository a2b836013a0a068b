#include "common/pipeline.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/job_limits.h"
#include "tests/testing/status_matchers.h"

namespace farm::common {
namespace {

using ::farm::testing::StatusIsWithMessage;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;
using Part = PipelineProblem::Part;

using Axis = std::pair<std::string, std::vector<std::string>>;

farm::v1::PipelineJobSpec* AddJob(farm::v1::PipelineSpec& spec, const std::string& name,
                                  std::initializer_list<std::string> needs = {},
                                  std::vector<Axis> matrix = {}) {
  farm::v1::PipelineJobSpec* job = spec.add_jobs();
  job->set_name(name);
  job->mutable_spec()->add_steps()->set_run(absl::StrCat("echo ", name));
  for (const std::string& need : needs) job->add_needs(need);
  for (const auto& [axis, values] : matrix) {
    farm::v1::MatrixAxis* out = job->add_matrix();
    out->set_name(axis);
    for (const std::string& value : values) out->add_values(value);
  }
  return job;
}

std::vector<std::string> Names(const std::vector<ExpandedJob>& jobs) {
  std::vector<std::string> names;
  for (const ExpandedJob& job : jobs) names.push_back(job.spec.name());
  return names;
}

// Asserts that `spec` is rejected with INVALID_ARGUMENT and a message containing `fragment`,
// and returns where ExpandPipeline said the problem is.
PipelineProblem ExpectRejected(const farm::v1::PipelineSpec& spec, const std::string& fragment) {
  PipelineProblem problem;
  EXPECT_THAT(ExpandPipeline(spec, &problem),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr(fragment)));
  return problem;
}

std::vector<std::string> Values(int n, const std::string& prefix = "v") {
  std::vector<std::string> values;
  for (int i = 0; i < n; ++i) values.push_back(absl::StrCat(prefix, i));
  return values;
}

TEST(ExpandPipelineTest, AJobWithoutMatrixIsOneJob) {
  farm::v1::PipelineSpec spec;
  AddJob(spec, "lint");
  ASSERT_OK_AND_ASSIGN(std::vector<ExpandedJob> jobs, ExpandPipeline(spec));
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].spec.name(), "lint");
  EXPECT_EQ(jobs[0].base_name, "lint");
  EXPECT_EQ(jobs[0].input_dir, "lint");
  EXPECT_THAT(jobs[0].needs, IsEmpty());
  EXPECT_EQ(jobs[0].spec.steps(0).name(), "step-1");  // ApplyJobDefaults ran
}

TEST(ExpandPipelineTest, ATwoByThreeMatrixIsSixJobsFirstAxisSlowest) {
  farm::v1::PipelineSpec spec;
  AddJob(spec, "build", {}, {{"os", {"linux", "mac"}}, {"arch", {"amd64", "arm64", "riscv"}}});
  ASSERT_OK_AND_ASSIGN(std::vector<ExpandedJob> jobs, ExpandPipeline(spec));
  EXPECT_THAT(Names(jobs),
              ElementsAre("build (linux, amd64)", "build (linux, arm64)", "build (linux, riscv)",
                          "build (mac, amd64)", "build (mac, arm64)", "build (mac, riscv)"));
  ASSERT_EQ(jobs.size(), 6u);
  EXPECT_EQ(jobs[4].base_name, "build");
  EXPECT_EQ(jobs[4].input_dir, "build/mac/arm64");
  EXPECT_THAT(jobs[4].spec.env(), UnorderedElementsAre(Pair("os", "mac"), Pair("arch", "arm64")));
  EXPECT_EQ(jobs[0].input_dir, "build/linux/amd64");
  EXPECT_THAT(jobs[0].spec.env(), UnorderedElementsAre(Pair("os", "linux"), Pair("arch", "amd64")));
}

TEST(ExpandPipelineTest, MatrixValuesWinOverJobEnvWhichWinsOverPipelineEnv) {
  farm::v1::PipelineSpec spec;
  (*spec.mutable_env())["VERSION"] = "1.2";
  (*spec.mutable_env())["MODE"] = "pipeline";
  (*spec.mutable_env())["arch"] = "pipeline";
  farm::v1::PipelineJobSpec* job = AddJob(spec, "build", {}, {{"arch", {"amd64"}}});
  (*job->mutable_spec()->mutable_env())["MODE"] = "job";
  (*job->mutable_spec()->mutable_env())["arch"] = "job";
  ASSERT_OK_AND_ASSIGN(std::vector<ExpandedJob> jobs, ExpandPipeline(spec));
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_THAT(jobs[0].spec.env(), UnorderedElementsAre(Pair("VERSION", "1.2"), Pair("MODE", "job"),
                                                       Pair("arch", "amd64")));
}

TEST(ExpandPipelineTest, NeedingAMatrixJobNeedsEveryExpansion) {
  farm::v1::PipelineSpec spec;
  AddJob(spec, "build", {}, {{"arch", {"amd64", "arm64"}}, {"os", {"linux", "mac"}}});
  AddJob(spec, "test", {"build"}, {{"arch", {"amd64", "arm64"}}});
  AddJob(spec, "package", {"test"});
  ASSERT_OK_AND_ASSIGN(std::vector<ExpandedJob> jobs, ExpandPipeline(spec));
  ASSERT_EQ(jobs.size(), 7u);
  EXPECT_THAT(jobs[4].needs, ElementsAre(0, 1, 2, 3));
  EXPECT_THAT(jobs[5].needs, ElementsAre(0, 1, 2, 3));
  EXPECT_EQ(jobs[6].spec.name(), "package");
  EXPECT_THAT(jobs[6].needs, ElementsAre(4, 5));
}

TEST(ExpandPipelineTest, ADiamond) {
  farm::v1::PipelineSpec spec;
  AddJob(spec, "a");
  AddJob(spec, "b", {"a"});
  AddJob(spec, "c", {"a"});
  AddJob(spec, "d", {"c", "b"});
  ASSERT_OK_AND_ASSIGN(std::vector<ExpandedJob> jobs, ExpandPipeline(spec));
  EXPECT_THAT(Names(jobs), ElementsAre("a", "b", "c", "d"));
  EXPECT_THAT(jobs[0].needs, IsEmpty());
  EXPECT_THAT(jobs[1].needs, ElementsAre(0));
  EXPECT_THAT(jobs[2].needs, ElementsAre(0));
  EXPECT_THAT(jobs[3].needs, ElementsAre(1, 2));
}

TEST(ExpandPipelineTest, KeepsTheGivenOrderWhenAJobNeedsALaterOne) {
  farm::v1::PipelineSpec spec;
  AddJob(spec, "deploy", {"build"});
  AddJob(spec, "build", {}, {{"arch", {"x", "y"}}});
  ASSERT_OK_AND_ASSIGN(std::vector<ExpandedJob> jobs, ExpandPipeline(spec));
  EXPECT_THAT(Names(jobs), ElementsAre("deploy", "build (x)", "build (y)"));
  EXPECT_THAT(jobs[0].needs, ElementsAre(1, 2));
}

TEST(ExpandPipelineTest, AJobMayHaveNoSteps) {
  farm::v1::PipelineSpec spec;
  AddJob(spec, "a");
  AddJob(spec, "gate", {"a"})->mutable_spec()->clear_steps();
  ASSERT_OK_AND_ASSIGN(std::vector<ExpandedJob> jobs, ExpandPipeline(spec));
  EXPECT_EQ(jobs[1].spec.steps_size(), 0);
}

TEST(ExpandPipelineTest, TheSpecNameIsReplacedByTheExpandedName) {
  farm::v1::PipelineSpec spec;
  AddJob(spec, "lint")->mutable_spec()->set_name("whatever the client sent");
  ASSERT_OK_AND_ASSIGN(std::vector<ExpandedJob> jobs, ExpandPipeline(spec));
  EXPECT_EQ(jobs[0].spec.name(), "lint");
}

TEST(ExpandPipelineTest, RejectsACycleNamingItsPath) {
  farm::v1::PipelineSpec spec;
  AddJob(spec, "setup");
  AddJob(spec, "a", {"setup", "b"});
  AddJob(spec, "b", {"c"});
  AddJob(spec, "c", {"a"});
  PipelineProblem problem = ExpectRejected(spec, "jobs form a cycle: a → b → c → a");
  EXPECT_EQ(problem.part, Part::kNeed);
  EXPECT_EQ(problem.job, 1);
  EXPECT_EQ(problem.need, 1);
  EXPECT_EQ(problem.located_message, "jobs form a cycle: a → b → c → a");
}

TEST(ExpandPipelineTest, RejectsACycleFoundFromALaterJob) {
  farm::v1::PipelineSpec spec;
  AddJob(spec, "x", {"b"});
  AddJob(spec, "a", {"b"});
  AddJob(spec, "b", {"a"});
  PipelineProblem problem = ExpectRejected(spec, "jobs form a cycle: b → a → b");
  EXPECT_EQ(problem.job, 2);
  EXPECT_EQ(problem.need, 0);
}

TEST(ExpandPipelineTest, RejectsASelfCycle) {
  farm::v1::PipelineSpec spec;
  AddJob(spec, "a", {"a"}, {{"arch", {"x", "y"}}});
  PipelineProblem problem = ExpectRejected(spec, "jobs form a cycle: a → a");
  EXPECT_EQ(problem.job, 0);
  EXPECT_EQ(problem.need, 0);
}

TEST(ExpandPipelineTest, RejectsAnUnknownNeed) {
  farm::v1::PipelineSpec spec;
  AddJob(spec, "build");
  AddJob(spec, "lint");
  AddJob(spec, "test", {"build", "buld"});
  PipelineProblem problem;
  EXPECT_THAT(
      ExpandPipeline(spec, &problem),
      StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                          "jobs[2] (test): needs \"buld\", which is not a job of this pipeline"));
  EXPECT_EQ(problem.part, Part::kNeed);
  EXPECT_EQ(problem.job, 2);
  EXPECT_EQ(problem.need, 1);
  EXPECT_EQ(problem.located_message,
            "job \"test\" needs \"buld\", which is not a job of this pipeline");
}

TEST(ExpandPipelineTest, RejectsANeedGivenTwice) {
  farm::v1::PipelineSpec spec;
  AddJob(spec, "build");
  AddJob(spec, "test", {"build", "build"});
  EXPECT_EQ(ExpectRejected(spec, "jobs[1] (test): needs \"build\" twice").need, 1);
}

TEST(ExpandPipelineTest, RejectsADuplicateJobName) {
  farm::v1::PipelineSpec spec;
  AddJob(spec, "build");
  AddJob(spec, "test");
  AddJob(spec, "build");
  PipelineProblem problem =
      ExpectRejected(spec, "jobs[2]: duplicate job name \"build\" (also jobs[0])");
  EXPECT_EQ(problem.part, Part::kJobName);
  EXPECT_EQ(problem.job, 2);
}

TEST(ExpandPipelineTest, RejectsAnEmptyPipeline) {
  farm::v1::PipelineSpec spec;
  spec.set_name("nothing");
  EXPECT_EQ(ExpectRejected(spec, "the pipeline has no jobs").part, Part::kJobs);
}

TEST(ExpandPipelineTest, JobNamesArePathComponents) {
  for (const std::string& bad : {std::string(""), std::string("."), std::string(".."),
                                 std::string("a b"), std::string("a/b"), std::string("a(1)"),
                                 std::string("caf\xc3\xa9"), std::string(kMaxNameBytes + 1, 'n')}) {
    farm::v1::PipelineSpec spec;
    AddJob(spec, "ok");
    AddJob(spec, bad);
    PipelineProblem problem = ExpectRejected(spec, "jobs[1]: job name \"");
    EXPECT_EQ(problem.part, Part::kJobName) << bad;
    EXPECT_EQ(problem.job, 1) << bad;
  }
  farm::v1::PipelineSpec spec;
  AddJob(spec, "Build-1.x_y");
  AddJob(spec, std::string(kMaxNameBytes, 'n'));
  AddJob(spec, "...");
  EXPECT_OK(ExpandPipeline(spec));
}

TEST(ExpandPipelineTest, AxisNamesAreVariableNames) {
  for (const char* bad : {"1x", "a-b", "", "a.b"}) {
    farm::v1::PipelineSpec spec;
    AddJob(spec, "build", {}, {{"ok", {"1"}}, {bad, {"x"}}});
    PipelineProblem problem =
        ExpectRejected(spec, absl::StrCat("jobs[0] (build): has a matrix axis named \"", bad,
                                          "\"; axis names are environment variable names"));
    EXPECT_EQ(problem.part, Part::kAxis);
    EXPECT_EQ(problem.axis, 1);
  }
  farm::v1::PipelineSpec spec;
  AddJob(spec, "build", {}, {{"arch", {"x"}}, {"arch", {"y"}}});
  EXPECT_EQ(ExpectRejected(spec, "has the matrix axis \"arch\" twice").axis, 1);
  spec.clear_jobs();
  AddJob(spec, "build", {}, {{"arch", {}}});
  ExpectRejected(spec, "has a matrix axis \"arch\" with no values");
}

TEST(ExpandPipelineTest, MatrixValuesArePathComponents) {
  for (const std::string& bad : {std::string(""), std::string("."), std::string(".."),
                                 std::string("a/b"), std::string("a b"), std::string("a,b"),
                                 std::string("x)"), std::string(kMaxMatrixValueBytes + 1, 'v')}) {
    farm::v1::PipelineSpec spec;
    AddJob(spec, "build", {}, {{"arch", {"amd64", bad}}});
    PipelineProblem problem = ExpectRejected(spec, "jobs[0] (build): has the matrix value \"");
    EXPECT_EQ(problem.part, Part::kValue) << bad;
    EXPECT_EQ(problem.axis, 0) << bad;
    EXPECT_EQ(problem.value, 1) << bad;
  }
  farm::v1::PipelineSpec spec;
  AddJob(spec, "build", {}, {{"arch", {"amd64", "arm64", "amd64"}}});
  PipelineProblem problem = ExpectRejected(
      spec, "jobs[0] (build): has the value \"amd64\" twice in matrix axis \"arch\"");
  EXPECT_EQ(problem.value, 2);

  spec.clear_jobs();
  AddJob(spec, "build", {}, {{"v", {"1.2+rc-1_x", "...", std::string(kMaxMatrixValueBytes, 'v')}}});
  ASSERT_OK_AND_ASSIGN(std::vector<ExpandedJob> jobs, ExpandPipeline(spec));
  EXPECT_EQ(jobs[0].input_dir, "build/1.2+rc-1_x");
}

TEST(ExpandPipelineTest, TheLimitOnJobsCountsExpansions) {
  farm::v1::PipelineSpec spec;
  for (int i = 0; i < kMaxPipelineJobs; ++i) AddJob(spec, absl::StrCat("j", i));
  EXPECT_OK(ExpandPipeline(spec));
  AddJob(spec, "one-too-many");
  EXPECT_EQ(ExpectRejected(spec, absl::StrCat("the pipeline has ", kMaxPipelineJobs + 1,
                                              " jobs; the limit is ", kMaxPipelineJobs))
                .part,
            Part::kJobs);

  spec.clear_jobs();
  for (int i = 0; i < 3; ++i) AddJob(spec, absl::StrCat("m", i), {}, {{"n", Values(256)}});
  AddJob(spec, "rest", {}, {{"n", Values(kMaxPipelineJobs - 3 * 256)}});
  EXPECT_OK(ExpandPipeline(spec));
  AddJob(spec, "one-too-many");
  EXPECT_EQ(ExpectRejected(
                spec, absl::StrCat("the pipeline has ", kMaxPipelineJobs + 1,
                                   " jobs after matrix expansion; the limit is ", kMaxPipelineJobs))
                .part,
            Part::kJobs);
}

TEST(ExpandPipelineTest, TheLimitOnMatrixAxes) {
  std::vector<Axis> axes;
  for (int i = 0; i < kMaxMatrixAxes; ++i) axes.push_back({absl::StrCat("a", i), {"x"}});
  farm::v1::PipelineSpec spec;
  AddJob(spec, "build", {}, axes);
  EXPECT_OK(ExpandPipeline(spec));
  axes.push_back({"one_too_many", {"x"}});
  spec.clear_jobs();
  AddJob(spec, "build", {}, axes);
  PipelineProblem problem =
      ExpectRejected(spec, absl::StrCat("jobs[0] (build): has ", kMaxMatrixAxes + 1,
                                        " matrix axes; the limit is ", kMaxMatrixAxes));
  EXPECT_EQ(problem.part, Part::kMatrix);
}

TEST(ExpandPipelineTest, TheLimitOnCombinations) {
  farm::v1::PipelineSpec spec;
  AddJob(spec, "build", {}, {{"a", Values(16)}, {"b", Values(16)}});
  EXPECT_OK(ExpandPipeline(spec));
  spec.clear_jobs();
  AddJob(spec, "build", {}, {{"a", Values(16)}, {"b", Values(17)}});
  EXPECT_EQ(ExpectRejected(spec, absl::StrCat("jobs[0] (build): has a matrix of 272 "
                                              "combinations; the limit is ",
                                              kMaxMatrixCombinations))
                .part,
            Part::kMatrix);

  // A product too large to compute is still reported, not overflowed.
  std::vector<Axis> axes;
  for (int i = 0; i < kMaxMatrixAxes; ++i) axes.push_back({absl::StrCat("a", i), Values(1000)});
  spec.clear_jobs();
  AddJob(spec, "build", {}, axes);
  ExpectRejected(spec, "has a matrix of more than ");
}

TEST(ExpandPipelineTest, TheLimitOnNeeds) {
  farm::v1::PipelineSpec spec;
  for (int i = 0; i <= kMaxNeeds; ++i) AddJob(spec, absl::StrCat("j", i));
  farm::v1::PipelineJobSpec* last = AddJob(spec, "last");
  for (int i = 0; i < kMaxNeeds; ++i) last->add_needs(absl::StrCat("j", i));
  EXPECT_OK(ExpandPipeline(spec));
  last->add_needs(absl::StrCat("j", kMaxNeeds));
  PipelineProblem problem = ExpectRejected(
      spec, absl::StrCat("(last): has ", kMaxNeeds + 1, " needs; the limit is ", kMaxNeeds));
  EXPECT_EQ(problem.part, Part::kNeeds);
}

TEST(ExpandPipelineTest, EveryExpandedJobIsValidated) {
  farm::v1::PipelineSpec spec;
  AddJob(spec, "build", {}, {{"arch", {"x"}}})->mutable_spec()->mutable_steps(0)->set_run("");
  PipelineProblem problem = ExpectRejected(spec, "jobs[0] (build (x)): steps[0]");
  EXPECT_EQ(problem.part, Part::kJob);
  EXPECT_EQ(problem.job, 0);
  EXPECT_THAT(problem.located_message, HasSubstr("job \"build (x)\": steps[0]"));

  // The expanded name counts against the name limit.
  spec.clear_jobs();
  AddJob(spec, std::string(kMaxNameBytes - 4, 'n'), {}, {{"arch", {"amd64"}}});
  ExpectRejected(spec, absl::StrCat("name is ", kMaxNameBytes - 4 + 8, " bytes; the limit is ",
                                    kMaxNameBytes));
  // So do the variables a matrix adds.
  spec.clear_jobs();
  farm::v1::PipelineJobSpec* job = AddJob(spec, "build", {}, {{"arch", {"amd64"}}});
  for (int i = 0; i < kMaxEnvVars; ++i) {
    (*job->mutable_spec()->mutable_env())[absl::StrCat("V", i)] = "x";
  }
  ExpectRejected(spec, absl::StrCat("env has ", kMaxEnvVars + 1, " variables"));
}

TEST(ExpandPipelineTest, RejectsABadPipelineEnvOrName) {
  farm::v1::PipelineSpec spec;
  AddJob(spec, "build");
  (*spec.mutable_env())["1BAD"] = "x";
  EXPECT_EQ(ExpectRejected(spec, "env name \"1BAD\"").part, Part::kEnv);
  spec.clear_env();
  spec.set_name(std::string(kMaxNameBytes + 1, 'p'));
  EXPECT_EQ(ExpectRejected(spec, absl::StrCat("limit is ", kMaxNameBytes)).part, Part::kName);
}

TEST(ExpandPipelineTest, TheLimitOnTheEncodedPipeline) {
  farm::v1::PipelineSpec spec;
  const std::string script(kMaxScriptBytes, 's');
  for (int i = 0; i * kMaxScriptBytes <= kMaxSerializedPipelineBytes; ++i) {
    AddJob(spec, absl::StrCat("j", i))->mutable_spec()->mutable_steps(0)->set_run(script);
  }
  EXPECT_EQ(ExpectRejected(
                spec, absl::StrCat("bytes encoded; the limit is ", kMaxSerializedPipelineBytes))
                .part,
            Part::kPipeline);
}

TEST(ExpandPipelineTest, TheLimitOnTheExpandedJobs) {
  // 256 copies of a 256 KiB script are 64 MiB and then some, past the limit.
  farm::v1::PipelineSpec spec;
  AddJob(spec, "build", {}, {{"n", Values(kMaxMatrixCombinations)}})
      ->mutable_spec()
      ->mutable_steps(0)
      ->set_run(std::string(kMaxScriptBytes, 's'));
  PipelineProblem problem = ExpectRejected(
      spec, absl::StrCat("jobs[0] (build): takes the pipeline's jobs past the limit of ",
                         kMaxExpandedPipelineBytes, " bytes"));
  EXPECT_EQ(problem.part, Part::kJob);
}

}  // namespace
}  // namespace farm::common
