#include "common/pipeline_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/job_limits.h"
#include "common/pipeline.h"
#include "tests/testing/status_matchers.h"

namespace farm::common {
namespace {

using ::farm::testing::StatusIs;
using ::farm::testing::StatusIsWithMessage;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::StartsWith;
using ::testing::UnorderedElementsAre;

// The example of the issue that asked for pipelines.
constexpr char kReleaseYaml[] = R"(name: release
env: {VERSION: "1.2"}
jobs:
  build:
    labels: {os: linux}
    matrix: {arch: [amd64, arm64]}
    steps:
      - run: mkdir -p out && echo "bin $arch" > out/app-$arch
    artifacts: [out/*]
  test:
    needs: [build]
    steps:
      - run: ls inputs/ && cat inputs/build/*/out/app-*
      - name: cleanup
        run: echo always
        when: always
    retry: {max_attempts: 3, on_exit_codes: [75]}
  package:
    needs: [test]
    concurrency_group: publish
    concurrency: 1
    priority: 10
)";

// Asserts that parsing `text` as "ci.yaml" fails with INVALID_ARGUMENT and a message that
// starts with `position` ("ci.yaml:3:5: ") and contains `fragment`.
void ExpectPipelineError(const std::string& text, const std::string& position,
                         const std::string& fragment) {
  EXPECT_THAT(ParsePipelineFile(text, "ci.yaml"),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                  ::testing::AllOf(StartsWith(position), HasSubstr(fragment))))
      << text.substr(0, 300);
}

std::vector<std::string> Names(const std::vector<ExpandedJob>& jobs) {
  std::vector<std::string> names;
  for (const ExpandedJob& job : jobs) names.push_back(job.spec.name());
  return names;
}

TEST(ParsePipelineFileTest, ParsesTheIssuesExample) {
  ASSERT_OK_AND_ASSIGN(farm::v1::PipelineSpec spec, ParsePipelineFile(kReleaseYaml, "r.yaml"));
  EXPECT_EQ(spec.name(), "release");
  EXPECT_THAT(spec.env(), UnorderedElementsAre(Pair("VERSION", "1.2")));
  ASSERT_EQ(spec.jobs_size(), 3);
  const farm::v1::PipelineJobSpec& build = spec.jobs(0);
  EXPECT_EQ(build.name(), "build");
  ASSERT_EQ(build.matrix_size(), 1);
  EXPECT_EQ(build.matrix(0).name(), "arch");
  EXPECT_THAT(build.matrix(0).values(), ElementsAre("amd64", "arm64"));
  EXPECT_THAT(build.spec().artifacts(), ElementsAre("out/*"));
  const farm::v1::PipelineJobSpec& test = spec.jobs(1);
  EXPECT_THAT(test.needs(), ElementsAre("build"));
  EXPECT_EQ(test.spec().retry().max_attempts(), 3);
  EXPECT_THAT(test.spec().retry().on_exit_codes(), ElementsAre(75));
  ASSERT_EQ(test.spec().steps_size(), 2);
  EXPECT_EQ(test.spec().steps(1).when(), farm::v1::WHEN_ALWAYS);
  const farm::v1::PipelineJobSpec& package = spec.jobs(2);
  EXPECT_EQ(package.spec().steps_size(), 0);
  EXPECT_EQ(package.spec().concurrency_group(), "publish");
  EXPECT_EQ(package.spec().concurrency(), 1);
  EXPECT_EQ(package.spec().priority(), 10);

  ASSERT_OK_AND_ASSIGN(std::vector<ExpandedJob> jobs, ExpandPipeline(spec));
  EXPECT_THAT(Names(jobs), ElementsAre("build (amd64)", "build (arm64)", "test", "package"));
  EXPECT_EQ(jobs[0].input_dir, "build/amd64");
  EXPECT_EQ(jobs[1].input_dir, "build/arm64");
  EXPECT_EQ(jobs[2].input_dir, "test");
  EXPECT_EQ(jobs[3].input_dir, "package");
  EXPECT_EQ(jobs[1].base_name, "build");
  EXPECT_THAT(jobs[0].spec.env(),
              UnorderedElementsAre(Pair("VERSION", "1.2"), Pair("arch", "amd64")));
  EXPECT_THAT(jobs[1].spec.env(),
              UnorderedElementsAre(Pair("VERSION", "1.2"), Pair("arch", "arm64")));
  EXPECT_THAT(jobs[2].spec.env(), UnorderedElementsAre(Pair("VERSION", "1.2")));
  EXPECT_THAT(jobs[0].spec.labels(), UnorderedElementsAre(Pair("os", "linux")));
  EXPECT_THAT(jobs[0].needs, IsEmpty());
  EXPECT_THAT(jobs[1].needs, IsEmpty());
  EXPECT_THAT(jobs[2].needs, ElementsAre(0, 1));
  EXPECT_THAT(jobs[3].needs, ElementsAre(2));
  EXPECT_EQ(jobs[2].spec.steps(0).name(), "step-1");
  EXPECT_EQ(jobs[2].spec.steps(1).name(), "cleanup");
}

TEST(ParsePipelineFileTest, JsonWithTheSameStructureWorks) {
  ASSERT_OK_AND_ASSIGN(farm::v1::PipelineSpec spec, ParsePipelineFile(R"({
  "name": "ci",
  "jobs": {
    "build": {"matrix": {"arch": ["amd64", "arm64"]}, "steps": [{"run": "make"}]},
    "test": {"needs": ["build"], "steps": [{"run": "make test"}]}
  }
})",
                                                                      "ci.json"));
  ASSERT_OK_AND_ASSIGN(std::vector<ExpandedJob> jobs, ExpandPipeline(spec));
  EXPECT_THAT(Names(jobs), ElementsAre("build (amd64)", "build (arm64)", "test"));
  EXPECT_THAT(jobs[2].needs, ElementsAre(0, 1));
}

TEST(ParsePipelineFileTest, NeedsMayBeASingleName) {
  ASSERT_OK_AND_ASSIGN(farm::v1::PipelineSpec spec, ParsePipelineFile(R"(
jobs:
  a: {steps: [{run: x}]}
  b: {needs: a, steps: [{run: y}]}
  c: {needs: [], steps: [{run: z}]}
)",
                                                                      "ci.yaml"));
  EXPECT_THAT(spec.jobs(1).needs(), ElementsAre("a"));
  EXPECT_THAT(spec.jobs(2).needs(), IsEmpty());
}

TEST(ParsePipelineFileTest, EachJobNamesItsOwnSecrets) {
  ASSERT_OK_AND_ASSIGN(farm::v1::PipelineSpec spec, ParsePipelineFile(R"(
jobs:
  build: {steps: [{run: make}]}
  deploy: {needs: build, secrets: [DEPLOY_KEY], steps: [{run: ./deploy}]}
)",
                                                                      "ci.yaml"));
  EXPECT_THAT(spec.jobs(0).spec().secrets(), IsEmpty());
  EXPECT_THAT(spec.jobs(1).spec().secrets(), ElementsAre("DEPLOY_KEY"));
}

TEST(ParsePipelineFileTest, NetworkIsPerJob) {
  ASSERT_OK_AND_ASSIGN(farm::v1::PipelineSpec spec, ParsePipelineFile(R"(
jobs:
  fetch: {steps: [{run: x}]}
  build: {needs: fetch, network: false, steps: [{run: y}]}
)",
                                                                      "ci.yaml"));
  EXPECT_FALSE(spec.jobs(0).spec().no_network());
  EXPECT_TRUE(spec.jobs(1).spec().no_network());
}

TEST(ParsePipelineFileTest, MatrixValuesAreKeptAsWrittenInAxisOrder) {
  ASSERT_OK_AND_ASSIGN(farm::v1::PipelineSpec spec, ParsePipelineFile(R"(
jobs:
  test:
    matrix:
      python: [3.10, "3.12"]
      os: [linux, mac, win]
    steps: [{run: tox}]
)",
                                                                      "ci.yaml"));
  ASSERT_OK_AND_ASSIGN(std::vector<ExpandedJob> jobs, ExpandPipeline(spec));
  EXPECT_THAT(Names(jobs),
              ElementsAre("test (3.10, linux)", "test (3.10, mac)", "test (3.10, win)",
                          "test (3.12, linux)", "test (3.12, mac)", "test (3.12, win)"));
  EXPECT_EQ(jobs[5].input_dir, "test/3.12/win");
  EXPECT_THAT(jobs[5].spec.env(), UnorderedElementsAre(Pair("python", "3.12"), Pair("os", "win")));
}

TEST(ParsePipelineFileTest, AJobWithoutStepsIsAGate) {
  ASSERT_OK_AND_ASSIGN(farm::v1::PipelineSpec spec, ParsePipelineFile(R"(
jobs:
  a: {steps: [{run: x}]}
  b: {steps: [{run: y}]}
  all: {needs: [a, b]}
  nothing: {}
  empty: {steps: []}
)",
                                                                      "ci.yaml"));
  EXPECT_EQ(spec.jobs(2).spec().steps_size(), 0);
  EXPECT_EQ(spec.jobs(3).spec().steps_size(), 0);
  EXPECT_EQ(spec.jobs(4).spec().steps_size(), 0);
}

TEST(ParsePipelineFileTest, AJobFileIsAPipelineOfOneJob) {
  ASSERT_OK_AND_ASSIGN(farm::v1::PipelineSpec named,
                       ParsePipelineFile("name: hello\nsteps: [{run: echo hi}]\n", "x.yaml"));
  EXPECT_EQ(named.name(), "hello");
  ASSERT_EQ(named.jobs_size(), 1);
  EXPECT_EQ(named.jobs(0).name(), "hello");
  EXPECT_EQ(named.jobs(0).spec().steps(0).run(), "echo hi");
  EXPECT_THAT(named.jobs(0).needs(), IsEmpty());
  EXPECT_THAT(named.jobs(0).matrix(), IsEmpty());

  ASSERT_OK_AND_ASSIGN(farm::v1::PipelineSpec unnamed,
                       ParsePipelineFile("steps: [{run: make}]\n", "some/dir/nightly.build.yaml"));
  EXPECT_EQ(unnamed.name(), "nightly.build");
  EXPECT_EQ(unnamed.jobs(0).name(), "nightly.build");

  // Names that are not valid job names are made valid for the job, kept for the pipeline.
  ASSERT_OK_AND_ASSIGN(farm::v1::PipelineSpec spaced,
                       ParsePipelineFile("name: \"Hello, world!\"\nsteps: [{run: x}]\n", "x.yaml"));
  EXPECT_EQ(spaced.name(), "Hello, world!");
  EXPECT_EQ(spaced.jobs(0).name(), "Hello-world");
  ASSERT_OK_AND_ASSIGN(farm::v1::PipelineSpec stdin_job,
                       ParsePipelineFile("steps: [{run: x}]\n", "<stdin>"));
  EXPECT_EQ(stdin_job.jobs(0).name(), "stdin");
  ASSERT_OK_AND_ASSIGN(farm::v1::PipelineSpec odd,
                       ParsePipelineFile("name: \"..!\"\nsteps: [{run: x}]\n", "x.yaml"));
  EXPECT_EQ(odd.jobs(0).name(), "job");

  ASSERT_OK_AND_ASSIGN(std::vector<ExpandedJob> jobs, ExpandPipeline(spaced));
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].spec.name(), "Hello-world");
  EXPECT_EQ(jobs[0].input_dir, "Hello-world");
}

TEST(ParsePipelineFileTest, APipelineWithoutANameIsNamedAfterItsFile) {
  ASSERT_OK_AND_ASSIGN(farm::v1::PipelineSpec spec,
                       ParsePipelineFile("jobs: {a: {steps: [{run: x}]}}\n", "/tmp/ci.yml"));
  EXPECT_EQ(spec.name(), "ci");
}

TEST(ParsePipelineFileErrorTest, AJobFileStillNeedsSteps) {
  ExpectPipelineError("name: x\nsteps: []\n", "ci.yaml:2:8: ", "a job needs at least one step");
  ExpectPipelineError("name: x\nsteps: [{run: \"\"}]\n", "ci.yaml: ", "run is empty");
}

TEST(ParsePipelineFileErrorTest, NotAPipeline) {
  ExpectPipelineError("", "ci.yaml: ", "the file is empty; expected a pipeline");
  ExpectPipelineError("- a\n", "ci.yaml:1:1: ", "expected a pipeline: a mapping with \"jobs\"");
  ExpectPipelineError("name: x\nenv: {A: b}\n", "ci.yaml:1:1: ", "missing \"jobs\"");
  ExpectPipelineError("jobs: {a: {}}\n---\njobs: {b: {}}\n",
                      "ci.yaml:3:1: ", "a pipeline file holds exactly one pipeline");
  ExpectPipelineError("name: x\njobs: [a, b]\n", "ci.yaml:2:7: ",
                      "jobs: expected a mapping of job names to jobs, found a list");
  ExpectPipelineError("name: x\njobs:\n", "ci.yaml:2:1: ", "found nothing");
  ExpectPipelineError("name: x\njobs: {}\n", "ci.yaml:2:1: ", "the pipeline has no jobs");
  ExpectPipelineError("jobs: {a: {}}\nlabels: {os: linux}\n", "ci.yaml:2:1: ",
                      "unknown key \"labels\" in the pipeline (expected one of: name, env, jobs)");
  ExpectPipelineError("jobs: {a: {steps: [{run: x}]\n", "ci.yaml:", "malformed YAML/JSON");
}

TEST(ParsePipelineFileErrorTest, DuplicateJobNamesPointAtTheSecond) {
  ExpectPipelineError("jobs:\n  build: {}\n  test: {}\n  build: {}\n",
                      "ci.yaml:4:3: ", "duplicate key \"build\" in jobs (first given on line 2)");
}

TEST(ParsePipelineFileErrorTest, AnUnknownNeedPointsAtTheEntry) {
  EXPECT_THAT(ParsePipelineFile(R"(jobs:
  build: {}
  test:
    needs:
      - build
      - buld
)",
                                "ci.yaml"),
              StatusIsWithMessage(
                  absl::StatusCode::kInvalidArgument,
                  "ci.yaml:6:9: job \"test\" needs \"buld\", which is not a job of this pipeline"));
  ExpectPipelineError("jobs:\n  test: {needs: buld}\n", "ci.yaml:2:17: ", "needs \"buld\"");
  ExpectPipelineError("jobs:\n  b: {}\n  test: {needs: [b, b]}\n",
                      "ci.yaml:3:21: ", "job \"test\" needs \"b\" twice");
}

TEST(ParsePipelineFileErrorTest, ACycleIsReportedWithItsPath) {
  EXPECT_THAT(ParsePipelineFile(R"(jobs:
  setup: {}
  a:
    needs: [setup, b]
  b: {needs: [c]}
  c: {needs: a}
)",
                                "ci.yaml"),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                  "ci.yaml:4:20: jobs form a cycle: a → b → c → a"));
  ExpectPipelineError("jobs:\n  a:\n    needs: [a]\n",
                      "ci.yaml:3:13: ", "jobs form a cycle: a → a");
}

TEST(ParsePipelineFileErrorTest, BadNeeds) {
  ExpectPipelineError("jobs:\n  a: {needs: {b: c}}\n", "ci.yaml:2:14: ",
                      "jobs.a.needs: expected a job name or a list of job names, found a mapping");
  ExpectPipelineError("jobs:\n  a: {needs: [[b]]}\n",
                      "ci.yaml:2:15: ", "jobs.a.needs[0]: expected a job name, found a list");
}

TEST(ParsePipelineFileErrorTest, ErrorsInsideAJobNameItsPath) {
  ExpectPipelineError(
      "jobs:\n  build:\n    name: b\n", "ci.yaml:3:5: ",
      "\"name\" is not allowed in a pipeline's job (jobs.build): its key under \"jobs\" "
      "is its name");
  ExpectPipelineError("jobs:\n  build:\n    need: [x]\n", "ci.yaml:3:5: ",
                      "unknown key \"need\" in jobs.build; did you mean \"needs\"?");
  ExpectPipelineError(
      "jobs:\n  build:\n    steps:\n      - run: x\n        when: sometimes\n", "ci.yaml:5:15: ",
      "jobs.build.steps[0].when: expected on_success (run only while every earlier step "
      "succeeded), on_failure (only once one failed) or always; found \"sometimes\"");
  ExpectPipelineError("jobs:\n  build:\n    steps:\n      - nur: x\n",
                      "ci.yaml:4:9: ", "unknown key \"nur\" in jobs.build.steps[0]");
  ExpectPipelineError("jobs:\n  build:\n    retry: {max_attempts: 11}\n",
                      "ci.yaml:3:27: ", "jobs.build.retry.max_attempts: 11 is out of range");
  ExpectPipelineError("jobs:\n  build:\n    concurrency: 3\n", "ci.yaml:3:5: ",
                      "jobs.build.concurrency: a limit needs a \"concurrency_group\"");
  ExpectPipelineError(
      "jobs:\n  build: [x]\n", "ci.yaml:2:10: ",
      "jobs.build: expected a job: a mapping with keys such as labels, steps; found a "
      "list");
  ExpectPipelineError(
      "jobs:\n  build:\n  test: {}\n", "ci.yaml:2:3: ",
      "jobs.build: expected a job: a mapping with keys such as needs, steps (write {} for "
      "a job that does nothing); found nothing");
}

TEST(ParsePipelineFileErrorTest, BadJobNamesPointAtTheKey) {
  ExpectPipelineError(
      "jobs:\n  ok: {}\n  \"a b\": {}\n", "ci.yaml:3:3: ",
      "job name \"a b\" is not valid: use 1 to 200 bytes of letters, digits, '.', '_' "
      "and '-', not \".\" or \"..\"");
  ExpectPipelineError("jobs:\n  ..: {}\n", "ci.yaml:2:3: ", "job name \"..\" is not valid");
}

TEST(ParsePipelineFileErrorTest, JobSpecLimitsPointAtTheJob) {
  ExpectPipelineError("jobs:\n  ok: {}\n  build:\n    matrix: {arch: [x]}\n    env: {1BAD: y}\n",
                      "ci.yaml:3:3: ", "job \"build (x)\": env name \"1BAD\"");
  ExpectPipelineError("env: {1BAD: y}\njobs: {a: {}}\n", "ci.yaml:1:6: ", "env name \"1BAD\"");
}

TEST(ParsePipelineFileErrorTest, BadMatrices) {
  ExpectPipelineError("jobs:\n  b:\n    matrix: [amd64]\n", "ci.yaml:3:13: ",
                      "jobs.b.matrix: expected a mapping of axis names to lists of values");
  ExpectPipelineError("jobs:\n  b:\n    matrix: {arch: amd64}\n", "ci.yaml:3:20: ",
                      "jobs.b.matrix.arch: expected a list of values such as [amd64, arm64], found "
                      "\"amd64\"");
  ExpectPipelineError("jobs:\n  b:\n    matrix: {arch: [amd64, [x]]}\n", "ci.yaml:3:28: ",
                      "jobs.b.matrix.arch[1]: expected a value (a string), found a list");
  ExpectPipelineError(
      "jobs:\n  b:\n    matrix:\n      arch: [x]\n      1arch: [y]\n", "ci.yaml:5:7: ",
      "job \"b\" has a matrix axis named \"1arch\"; axis names are environment variable "
      "names ([A-Za-z_][A-Za-z0-9_]*)");
  ExpectPipelineError("jobs:\n  b:\n    matrix: {arch: []}\n",
                      "ci.yaml:3:14: ", "job \"b\" has a matrix axis \"arch\" with no values");
  ExpectPipelineError(
      "jobs:\n  b:\n    matrix: {arch: [amd64, a/b]}\n", "ci.yaml:3:28: ",
      "job \"b\" has the matrix value \"a/b\" in axis \"arch\"; values are 1 to 64 bytes of "
      "letters, digits, '.', '_', '+' and '-', not \".\" or \"..\"");
  ExpectPipelineError("jobs:\n  b:\n    matrix: {arch: [\"..\"]}\n",
                      "ci.yaml:3:21: ", "the matrix value \"..\"");
  ExpectPipelineError("jobs:\n  b:\n    matrix: {arch: [x, y, x]}\n", "ci.yaml:3:27: ",
                      "job \"b\" has the value \"x\" twice in matrix axis \"arch\"");
  ExpectPipelineError("jobs:\n  b:\n    matrix: {arch: [x], arch: [y]}\n",
                      "ci.yaml:3:25: ", "duplicate key \"arch\" in jobs.b.matrix");
}

TEST(ParsePipelineFileErrorTest, Limits) {
  // Needs: at the list.
  std::string text = "jobs:\n";
  for (int i = 0; i <= kMaxNeeds; ++i) absl::StrAppend(&text, "  j", i, ": {}\n");
  text += "  last:\n    needs:\n";
  for (int i = 0; i <= kMaxNeeds; ++i) absl::StrAppend(&text, "      - j", i, "\n");
  ExpectPipelineError(
      text, absl::StrCat("ci.yaml:", kMaxNeeds + 5, ":7: "),
      absl::StrCat("job \"last\" has ", kMaxNeeds + 1, " needs; the limit is ", kMaxNeeds));

  // Axes and combinations: at the matrix.
  text = "jobs:\n  b:\n    matrix:\n";
  for (int i = 0; i <= kMaxMatrixAxes; ++i) absl::StrAppend(&text, "      a", i, ": [x]\n");
  ExpectPipelineError(text, "ci.yaml:4:7: ",
                      absl::StrCat("job \"b\" has ", kMaxMatrixAxes + 1,
                                   " matrix axes; the limit is ", kMaxMatrixAxes));
  text = "jobs:\n  b:\n    matrix:\n      x: [";
  for (int i = 0; i <= kMaxMatrixCombinations; ++i) absl::StrAppend(&text, i == 0 ? "" : ", ", i);
  text += "]\n";
  ExpectPipelineError(text, "ci.yaml:4:7: ",
                      absl::StrCat("job \"b\" has a matrix of ", kMaxMatrixCombinations + 1,
                                   " combinations; the limit is ", kMaxMatrixCombinations));

  // Jobs after expansion: at `jobs`.
  text = "jobs:\n";
  for (int j = 0; j < 4; ++j) {
    absl::StrAppend(&text, "  m", j, ":\n    matrix:\n      n: [");
    for (int i = 0; i < 256; ++i) absl::StrAppend(&text, i == 0 ? "" : ", ", i);
    text += "]\n";
  }
  ExpectPipelineError(
      text, "ci.yaml:1:1: ",
      absl::StrCat("the pipeline has 1024 jobs after matrix expansion; the limit is ",
                   kMaxPipelineJobs));
  // And before: at `jobs` too, without reading them all.
  text = "jobs:\n";
  for (int i = 0; i <= kMaxPipelineJobs; ++i) absl::StrAppend(&text, "  j", i, ": {}\n");
  ExpectPipelineError(
      text, "ci.yaml:2:3: ",
      absl::StrCat("jobs: ", kMaxPipelineJobs + 1, " jobs; the limit is ", kMaxPipelineJobs));

  // A value too long.
  ExpectPipelineError(absl::StrCat("jobs:\n  b:\n    matrix: {v: [", std::string(65, 'v'), "]}\n"),
                      "ci.yaml:3:18: ", "values are 1 to 64 bytes");
}

TEST(ParsePipelineFileErrorTest, AFileOverTheSizeLimitIsRejected) {
  const std::string text =
      absl::StrCat("jobs: {a: {}}\n#", std::string(kMaxPipelineFileBytes, 'x'), "\n");
  ExpectPipelineError(text,
                      "ci.yaml: ", absl::StrCat("the limit is ", kMaxPipelineFileBytes, " bytes"));
}

// Found by the job file fuzzer (see job_file_test.cc): a ',' after a top-level flow mapping
// made yaml-cpp build empty documents forever.
TEST(ParsePipelineFileErrorTest, AStrayCommaAfterTheDocumentIsAnErrorNotAHang) {
  EXPECT_THAT(ParsePipelineFile("{jobs: {a: {steps: [{run: x}]}}},", "p.yaml"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ParsePipelineFileErrorTest, AliasesCannotInflateThePipeline) {
  // One 64 KiB value, referenced by 1000 variables of each of many jobs.
  std::string text = absl::StrCat("jobs:\n  j0:\n    env:\n      V0: &big ",
                                  std::string(kMaxEnvValueBytes, 'x'), "\n");
  for (int i = 1; i < 60; ++i) absl::StrAppend(&text, "      V", i, ": *big\n");
  for (int j = 1; j < 200; ++j) {
    absl::StrAppend(&text, "  j", j, ":\n    env: {");
    for (int i = 0; i < 60; ++i) absl::StrAppend(&text, i == 0 ? "" : ", ", "V", i, ": *big");
    text += "}\n";
  }
  ASSERT_LT(text.size(), static_cast<size_t>(kMaxPipelineFileBytes));
  ExpectPipelineError(
      text,
      "ci.yaml:", absl::StrCat("larger than the limit of ", kMaxSerializedPipelineBytes, " bytes"));
}

class LoadPipelineFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = ::testing::TempDir() + "/pipeline_file_test.XXXXXX";
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override { std::system(("rm -rf '" + dir_ + "'").c_str()); }

  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }

  std::string dir_;
};

TEST_F(LoadPipelineFileTest, LoadsAFile) {
  ASSERT_OK_AND_ASSIGN(farm::v1::PipelineSpec spec,
                       LoadPipelineFile(Write("release.yaml", kReleaseYaml)));
  EXPECT_EQ(spec.jobs_size(), 3);
}

TEST_F(LoadPipelineFileTest, ErrorsNameThePath) {
  const std::string path = Write("bad.yaml", "jobs:\n  a: {needs: [b]}\n");
  EXPECT_THAT(LoadPipelineFile(path),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                  StartsWith(path + ":2:15: job \"a\" needs \"b\"")));
  EXPECT_THAT(LoadPipelineFile(dir_ + "/nope.yaml"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(LoadPipelineFile(dir_), StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                                          HasSubstr("not a pipeline file")));
}

}  // namespace
}  // namespace farm::common
