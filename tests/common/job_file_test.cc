#include "common/job_file.h"

#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/job_limits.h"
#include "tests/testing/status_matchers.h"

namespace farm::common {
namespace {

using ::farm::testing::StatusIs;
using ::farm::testing::StatusIsWithMessage;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kHelloYaml[] = R"(name: hello
labels: {os: linux}
priority: 5
timeout: 10m
env: {GREETING: hello}
steps:
  - name: greet
    run: echo "$GREETING from $FARM_JOB_ID"
  - name: build
    run: |
      mkdir -p out
      echo data > out/result.txt
    timeout: 60s
)";

constexpr char kHelloJson[] = R"({
  "name": "hello",
  "labels": {"os": "linux"},
  "priority": 5,
  "timeout": "10m",
  "env": {"GREETING": "hello"},
  "steps": [
    {"name": "greet", "run": "echo \"$GREETING from $FARM_JOB_ID\""},
    {"name": "build", "run": "mkdir -p out\necho data > out/result.txt\n", "timeout": "60s"}
  ]
})";

// Asserts that parsing `text` as "job.yaml" fails with INVALID_ARGUMENT and a message that
// starts with `position` ("job.yaml:3:5: ") and contains `fragment`.
void ExpectError(const std::string& text, const std::string& position,
                 const std::string& fragment) {
  EXPECT_THAT(ParseJobFile(text, "job.yaml"),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                  ::testing::AllOf(StartsWith(position), HasSubstr(fragment))))
      << text.substr(0, 200);
}

TEST(ParseJobFileTest, ParsesTheExampleFromTheReadme) {
  ASSERT_OK_AND_ASSIGN(farm::v1::JobSpec spec, ParseJobFile(kHelloYaml, "hello.yaml"));
  EXPECT_EQ(spec.name(), "hello");
  EXPECT_EQ(spec.labels().at("os"), "linux");
  EXPECT_EQ(spec.priority(), 5);
  EXPECT_EQ(spec.timeout_ms(), 600'000);
  EXPECT_EQ(spec.env().at("GREETING"), "hello");
  ASSERT_EQ(spec.steps_size(), 2);
  EXPECT_EQ(spec.steps(0).name(), "greet");
  EXPECT_EQ(spec.steps(0).run(), "echo \"$GREETING from $FARM_JOB_ID\"");
  EXPECT_EQ(spec.steps(0).timeout_ms(), 0);
  EXPECT_EQ(spec.steps(1).name(), "build");
  EXPECT_EQ(spec.steps(1).run(), "mkdir -p out\necho data > out/result.txt\n");
  EXPECT_EQ(spec.steps(1).timeout_ms(), 60'000);
  EXPECT_TRUE(spec.shell().empty());
  EXPECT_EQ(spec.kill_grace_ms(), 0);
}

TEST(ParseJobFileTest, JsonWithTheSameStructureGivesTheSameJob) {
  ASSERT_OK_AND_ASSIGN(farm::v1::JobSpec from_yaml, ParseJobFile(kHelloYaml, "hello.yaml"));
  ASSERT_OK_AND_ASSIGN(farm::v1::JobSpec from_json, ParseJobFile(kHelloJson, "hello.json"));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(from_yaml, from_json))
      << from_yaml.DebugString() << "\nvs\n"
      << from_json.DebugString();
}

TEST(ParseJobFileTest, ParsesShellKillGraceAndStepEnv) {
  ASSERT_OK_AND_ASSIGN(farm::v1::JobSpec spec, ParseJobFile(R"(
shell: [/bin/bash, -e, -o, pipefail, -c]
kill_grace: 2500ms
steps:
  - run: make
    env: {CC: gcc}
)",
                                                            "job.yaml"));
  EXPECT_THAT(spec.shell(), ::testing::ElementsAre("/bin/bash", "-e", "-o", "pipefail", "-c"));
  EXPECT_EQ(spec.kill_grace_ms(), 2'500);
  ASSERT_EQ(spec.steps_size(), 1);
  EXPECT_EQ(spec.steps(0).env().at("CC"), "gcc");
}

TEST(ParseJobFileTest, ParsesArtifactsAndWhen) {
  ASSERT_OK_AND_ASSIGN(farm::v1::JobSpec spec, ParseJobFile(R"(
steps: [{run: make}]
artifacts: [out/*, "dist/**/*.tar.gz"]
artifacts_when: always
)",
                                                            "job.yaml"));
  EXPECT_THAT(spec.artifacts(), ::testing::ElementsAre("out/*", "dist/**/*.tar.gz"));
  EXPECT_EQ(spec.artifacts_when(), farm::v1::ARTIFACTS_ALWAYS);

  ASSERT_OK_AND_ASSIGN(farm::v1::JobSpec json,
                       ParseJobFile(R"({"steps": [{"run": "make"}], "artifacts": ["bin/tool"],
                       "artifacts_when": "on_success"})",
                                    "job.json"));
  EXPECT_THAT(json.artifacts(), ::testing::ElementsAre("bin/tool"));
  EXPECT_EQ(json.artifacts_when(), farm::v1::ARTIFACTS_ON_SUCCESS);

  ASSERT_OK_AND_ASSIGN(farm::v1::JobSpec none,
                       ParseJobFile("steps: [{run: make}]\nartifacts:\n", "job.yaml"));
  EXPECT_TRUE(none.artifacts().empty());
}

TEST(ParseJobFileTest, ParsesNetwork) {
  ASSERT_OK_AND_ASSIGN(farm::v1::JobSpec off,
                       ParseJobFile("steps: [{run: make}]\nnetwork: false\n", "job.yaml"));
  EXPECT_TRUE(off.no_network());
  ASSERT_OK_AND_ASSIGN(farm::v1::JobSpec on,
                       ParseJobFile("steps: [{run: make}]\nnetwork: true\n", "job.yaml"));
  EXPECT_FALSE(on.no_network());
  ASSERT_OK_AND_ASSIGN(farm::v1::JobSpec unsaid,
                       ParseJobFile("steps: [{run: make}]\n", "job.yaml"));
  EXPECT_FALSE(unsaid.no_network());  // the default: network on
  ExpectError("steps: [{run: make}]\nnetwork: off\n",
              "job.yaml:2:10: ", "network: expected true (the steps may use the network) or false");
  ExpectError("steps: [{run: make}]\nnetwork: \"false\"\n", "job.yaml:2:10: ", "expected true");
}

TEST(ParseJobFileTest, BadArtifactsArePointedAt) {
  ExpectError("steps: [{run: make}]\nartifacts:\n  - out/*\n  - /etc/passwd\n",
              "job.yaml:4:5: ", "artifacts[1]: \"/etc/passwd\" is an absolute path");
  ExpectError("steps: [{run: make}]\nartifacts: [out/*, ../up/*]\n",
              "job.yaml:2:20: ", "\"..\" component");
  ExpectError("steps: [{run: make}]\nartifacts: out/*\n",
              "job.yaml:2:12: ", "artifacts: expected a list of globs");
  ExpectError("steps: [{run: make}]\nartifacts: [{a: b}]\n",
              "job.yaml:2:13: ", "artifacts[0]: expected a glob");
  ExpectError("steps: [{run: make}]\nartifacts: [\"\"]\n", "job.yaml:2:13: ", "the glob is empty");
  ExpectError("steps: [{run: make}]\nartifacts_when: sometimes\n",
              "job.yaml:2:17: ", "expected on_success");
  ExpectError("steps: [{run: make}]\nartifact: [out/*]\n",
              "job.yaml:2:1: ", "did you mean \"artifacts\"?");
  std::string many = "steps: [{run: make}]\nartifacts:\n";
  for (int i = 0; i <= kMaxArtifactGlobs; ++i) absl::StrAppend(&many, "  - g", i, "\n");
  ExpectError(many, "job.yaml:3:3: ", absl::StrCat("the limit is ", kMaxArtifactGlobs));
}

// The job files users see first must stay valid: the quickstart's example and the README's.
TEST(ParseJobFileTest, TheShippedExamplesParse) {
  ASSERT_OK_AND_ASSIGN(farm::v1::JobSpec hello,
                       LoadJobFile(std::string(FARM_SOURCE_DIR) + "/deploy/examples/hello.yaml"));
  EXPECT_THAT(hello.artifacts(), ::testing::ElementsAre("out/*"));

  std::ifstream readme(std::string(FARM_SOURCE_DIR) + "/README.md");
  std::stringstream text;
  text << readme.rdbuf();
  const std::string doc = text.str();
  const size_t start = doc.find("```yaml\n");
  ASSERT_NE(start, std::string::npos);
  const size_t end = doc.find("```", start + 8);
  ASSERT_NE(end, std::string::npos);
  ASSERT_OK_AND_ASSIGN(farm::v1::JobSpec example,
                       ParseJobFile(doc.substr(start + 8, end - start - 8), "README.md"));
  EXPECT_THAT(example.artifacts(), ::testing::ElementsAre("out/*"));
  EXPECT_EQ(example.artifacts_when(), farm::v1::ARTIFACTS_ON_SUCCESS);
}

TEST(ParseJobFileTest, NamesUnnamedSteps) {
  ASSERT_OK_AND_ASSIGN(farm::v1::JobSpec spec,
                       ParseJobFile("steps:\n  - run: a\n  - run: b\n", "job.yaml"));
  ASSERT_EQ(spec.steps_size(), 2);
  EXPECT_EQ(spec.steps(0).name(), "step-1");
  EXPECT_EQ(spec.steps(1).name(), "step-2");
}

TEST(ParseJobFileTest, KeepsNumbersAndBooleansInLabelsAndEnvAsWritten) {
  ASSERT_OK_AND_ASSIGN(farm::v1::JobSpec spec, ParseJobFile(R"(
labels: {gpu: true, cores: 8}
env: {VERSION: 1.20, DEBUG: no, EMPTY: ""}
steps: [{run: "true", name: 42}]
)",
                                                            "job.yaml"));
  EXPECT_EQ(spec.labels().at("gpu"), "true");
  EXPECT_EQ(spec.labels().at("cores"), "8");
  EXPECT_EQ(spec.env().at("VERSION"), "1.20");
  EXPECT_EQ(spec.env().at("DEBUG"), "no");
  EXPECT_EQ(spec.env().at("EMPTY"), "");
  EXPECT_EQ(spec.steps(0).name(), "42");
}

TEST(ParseJobFileTest, AnEmptyMappingOrListIsNoEntries) {
  ASSERT_OK_AND_ASSIGN(farm::v1::JobSpec spec,
                       ParseJobFile("env:\nlabels: {}\nshell:\nsteps: [{run: x}]\n", "job.yaml"));
  EXPECT_TRUE(spec.env().empty());
  EXPECT_TRUE(spec.labels().empty());
  EXPECT_TRUE(spec.shell().empty());
}

TEST(ParseJobFileTest, AcceptsEveryDurationForm) {
  const std::pair<std::string, int64_t> cases[] = {
      {"500ms", 500}, {"60s", 60'000}, {"10m", 600'000}, {"1h30m", 5'400'000},
      {"90", 90'000}, {"1.5", 1'500},  {"0", 0},         {"\"45\"", 45'000},
  };
  for (const auto& [text, ms] : cases) {
    ASSERT_OK_AND_ASSIGN(
        farm::v1::JobSpec spec,
        ParseJobFile(absl::StrCat("timeout: ", text, "\nsteps: [{run: x}]\n"), "job.yaml"));
    EXPECT_EQ(spec.timeout_ms(), ms) << text;
  }
}

TEST(ParseJobFileTest, ParsesStepWhen) {
  ASSERT_OK_AND_ASSIGN(farm::v1::JobSpec spec, ParseJobFile(R"(
steps:
  - run: make
  - {run: ./report-failure, when: on_failure}
  - {run: ./cleanup, when: always}
  - {run: ./publish, when: on_success}
)",
                                                            "job.yaml"));
  ASSERT_EQ(spec.steps_size(), 4);
  EXPECT_EQ(spec.steps(0).when(), farm::v1::WHEN_ON_SUCCESS);
  EXPECT_EQ(spec.steps(1).when(), farm::v1::WHEN_ON_FAILURE);
  EXPECT_EQ(spec.steps(2).when(), farm::v1::WHEN_ALWAYS);
  EXPECT_EQ(spec.steps(3).when(), farm::v1::WHEN_ON_SUCCESS);
}

TEST(ParseJobFileTest, ParsesRetryAndConcurrency) {
  ASSERT_OK_AND_ASSIGN(farm::v1::JobSpec spec, ParseJobFile(R"(
steps: [{run: make}]
retry: {max_attempts: 3, on_exit_codes: [75, 1]}
concurrency_group: publish-v1.2_x
concurrency: 2
)",
                                                            "job.yaml"));
  EXPECT_EQ(spec.retry().max_attempts(), 3);
  EXPECT_THAT(spec.retry().on_exit_codes(), ::testing::ElementsAre(75, 1));
  EXPECT_EQ(spec.concurrency_group(), "publish-v1.2_x");
  EXPECT_EQ(spec.concurrency(), 2);

  // Each part is optional: a group without a figure is concurrency 0 (which means 1).
  ASSERT_OK_AND_ASSIGN(farm::v1::JobSpec minimal, ParseJobFile(R"(
steps: [{run: make}]
retry: {max_attempts: 2}
concurrency_group: deploy
)",
                                                               "job.yaml"));
  EXPECT_EQ(minimal.retry().max_attempts(), 2);
  EXPECT_TRUE(minimal.retry().on_exit_codes().empty());
  EXPECT_EQ(minimal.concurrency(), 0);

  ASSERT_OK_AND_ASSIGN(farm::v1::JobSpec json, ParseJobFile(R"({"steps": [{"run": "make"}],
      "retry": {"max_attempts": 10, "on_exit_codes": [255]}, "concurrency_group": "g",
      "concurrency": 1000})",
                                                            "job.json"));
  EXPECT_EQ(json.retry().max_attempts(), 10);
  EXPECT_EQ(json.concurrency(), 1000);
}

TEST(ParseJobFileErrorTest, BadWhenListsTheAllowedValues) {
  ExpectError("steps:\n  - run: x\n    when: sometimes\n", "job.yaml:3:11: ",
              "steps[0].when: expected on_success (run only while every earlier step succeeded), "
              "on_failure (only once one failed) or always; found \"sometimes\"");
  ExpectError("steps:\n  - run: x\n    when: [always]\n",
              "job.yaml:3:11: ", "steps[0].when: expected on_success");
  ExpectError("steps:\n  - run: x\n    when:\n", "job.yaml:3:5: ", "found nothing");
}

TEST(ParseJobFileErrorTest, BadRetry) {
  ExpectError("steps: [{run: x}]\nretry: 3\n", "job.yaml:2:8: ",
              "retry: expected a mapping such as {max_attempts: 3, on_exit_codes: [75]}");
  ExpectError("steps: [{run: x}]\nretry: {max_attempts: 11}\n", "job.yaml:2:23: ",
              "retry.max_attempts: 11 is out of range; expected an integer from 0 to 10");
  ExpectError("steps: [{run: x}]\nretry: {max_attempts: -1}\n", "job.yaml:2:23: ", "out of range");
  ExpectError("steps: [{run: x}]\nretry: {max_attempts: many}\n", "job.yaml:2:23: ",
              "retry.max_attempts: expected an integer from 0 to 10, found \"many\"");
  ExpectError("steps: [{run: x}]\nretry: {max_attempts: 3, on_exit_codes: [75, 0]}\n",
              "job.yaml:2:46: ",
              "retry.on_exit_codes[1]: 0 is out of range; expected an integer from 1 to 255");
  ExpectError("steps: [{run: x}]\nretry: {on_exit_codes: [256]}\n",
              "job.yaml:2:25: ", "retry.on_exit_codes[0]: 256 is out of range");
  ExpectError("steps: [{run: x}]\nretry: {on_exit_codes: 75}\n",
              "job.yaml:2:24: ", "retry.on_exit_codes: expected a list of exit codes");
  ExpectError("steps: [{run: x}]\nretry: {max_attempt: 3}\n", "job.yaml:2:9: ",
              "unknown key \"max_attempt\" in retry; did you mean \"max_attempts\"?");
  std::string many = "steps: [{run: x}]\nretry:\n  on_exit_codes: [";
  for (int i = 0; i <= kMaxRetryExitCodes; ++i) absl::StrAppend(&many, i == 0 ? "" : ", ", i + 1);
  many += "]\n";
  ExpectError(many, "job.yaml:3:18: ",
              absl::StrCat("retry.on_exit_codes: ", kMaxRetryExitCodes + 1, " codes; the limit is ",
                           kMaxRetryExitCodes));
}

TEST(ParseJobFileErrorTest, BadConcurrency) {
  ExpectError("steps: [{run: x}]\nconcurrency: 2\n",
              "job.yaml:2:1: ", "concurrency: a limit needs a \"concurrency_group\"");
  ExpectError("steps: [{run: x}]\nconcurrency_group: g\nconcurrency: 1001\n", "job.yaml:3:14: ",
              "concurrency: 1001 is out of range; expected an integer from 0 to 1000");
  ExpectError("steps: [{run: x}]\nconcurrency_group: g\nconcurrency: -1\n",
              "job.yaml:3:14: ", "out of range");
  ExpectError("steps: [{run: x}]\nconcurrency_group: \"a b\"\n",
              "job.yaml:2:20: ", "concurrency_group: \"a b\" is not a group name");
  ExpectError("steps: [{run: x}]\nconcurrency_group: \"\"\n",
              "job.yaml:2:20: ", "concurrency_group: the group name is empty");
  ExpectError(absl::StrCat("steps: [{run: x}]\nconcurrency_group: ",
                           std::string(kMaxNameBytes + 1, 'g'), "\n"),
              "job.yaml:2:20: ", absl::StrCat("the limit is ", kMaxNameBytes));
  ExpectError("steps: [{run: x}]\nconcurrency_group: [a]\n",
              "job.yaml:2:20: ", "concurrency_group: expected a group name, found a list");
}

TEST(ParseJobDurationMsTest, BareNumbersAreSeconds) {
  EXPECT_EQ(ParseJobDurationMs("5").value(), 5'000);
  EXPECT_EQ(ParseJobDurationMs("0.25").value(), 250);
  EXPECT_EQ(ParseJobDurationMs("2m").value(), 120'000);
  EXPECT_THAT(ParseJobDurationMs("-5"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseJobDurationMs("."), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseJobDurationMs("5 s"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseJobDurationMs(""), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ParseJobFileErrorTest, MalformedYaml) {
  ExpectError("name: [a, b\nsteps:\n  - run: x\n", "job.yaml:", "malformed YAML/JSON");
  ExpectError("name: x\n  priority: 5\nsteps: [{run: x}]\n",
              "job.yaml:2:11: ", "malformed YAML/JSON: illegal map value");
}

TEST(ParseJobFileErrorTest, MalformedJson) {
  ExpectError("{\"name\": \"x\",\n \"steps\": [{\"run\": \"x\"}}\n",
              "job.yaml:2:24: ", "malformed YAML/JSON");
  ExpectError("{\"name\": \"x\", \"steps\": [{\"run\": \"x\"}]\n",
              "job.yaml:", "malformed YAML/JSON");
}

TEST(ParseJobFileErrorTest, UnknownKeys) {
  ExpectError("name: x\nprority: 5\nsteps: [{run: x}]\n",
              "job.yaml:2:1: ", "unknown key \"prority\" in the job; did you mean \"priority\"?");
  ExpectError(
      "steps:\n  - name: a\n    command: ls\n", "job.yaml:3:5: ",
      "unknown key \"command\" in steps[0] (expected one of: name, run, env, timeout, when)");
  ExpectError("{\"steps\": [{\"run\": \"x\"}], \"retries\": 3}",
              "job.yaml:1:27: ", "unknown key \"retries\" in the job");
}

TEST(ParseJobFileErrorTest, DuplicateKeys) {
  ExpectError("name: a\nsteps: [{run: x}]\nname: b\n",
              "job.yaml:3:1: ", "duplicate key \"name\" in the job (first given on line 1)");
  ExpectError("env: {A: 1, A: 2}\nsteps: [{run: x}]\n",
              "job.yaml:1:13: ", "duplicate key \"A\" in env");
}

TEST(ParseJobFileErrorTest, WrongTypes) {
  ExpectError("priority: high\nsteps: [{run: x}]\n", "job.yaml:1:11: ",
              "priority: expected an integer from -1000 to 1000, found \"high\"");
  ExpectError("{\"priority\": \"5\", \"steps\": [{\"run\": \"x\"}]}",
              "job.yaml:1:14: ", "priority: expected an integer");
  ExpectError("priority: 1.5\nsteps: [{run: x}]\n", "job.yaml:1:11: ", "expected an integer");
  ExpectError("name: {a: b}\nsteps: [{run: x}]\n",
              "job.yaml:1:7: ", "name: expected a string, found a mapping");
  ExpectError("labels: [linux]\nsteps: [{run: x}]\n",
              "job.yaml:1:9: ", "labels: expected a mapping of names to values, found a list");
  ExpectError("env:\n  PATHS: [a, b]\nsteps: [{run: x}]\n",
              "job.yaml:2:10: ", "env.PATHS: expected a string");
  ExpectError("shell: /bin/bash\nsteps: [{run: x}]\n",
              "job.yaml:1:8: ", "shell: expected a list of strings");
  ExpectError("shell: [/bin/sh, [-c]]\nsteps: [{run: x}]\n",
              "job.yaml:1:18: ", "shell[1]: expected a string, found a list");
  ExpectError("steps:\n  - run: [echo, hi]\n",
              "job.yaml:2:10: ", "steps[0].run: expected a string");
  ExpectError("steps: {run: x}\n", "job.yaml:1:8: ", "steps: expected a list of steps");
  ExpectError("steps:\n  - echo hi\n",
              "job.yaml:2:5: ", "steps[0]: expected a step (a mapping with \"run\"");
}

TEST(ParseJobFileErrorTest, AMissingValuePointsAtItsKey) {
  ExpectError("name:\nsteps: [{run: x}]\n",
              "job.yaml:1:1: ", "name: expected a string, found nothing");
  ExpectError("env:\n  A:\nsteps: [{run: x}]\n", "job.yaml:2:3: ",
              "env.A: expected a string (write \"\" for an empty value), found nothing");
}

TEST(ParseJobFileErrorTest, BadDurations) {
  ExpectError("timeout: soon\nsteps: [{run: x}]\n", "job.yaml:1:10: ",
              "timeout: expected a duration such as 500ms, 60s, 10m or 1h30m (a bare number is "
              "seconds), found \"soon\"");
  ExpectError("steps:\n  - run: x\n    timeout: -5s\n",
              "job.yaml:3:14: ", "steps[0].timeout: duration \"-5s\" is negative");
  ExpectError("kill_grace: [1]\nsteps: [{run: x}]\n",
              "job.yaml:1:13: ", "kill_grace: expected a duration");
}

TEST(ParseJobFileErrorTest, StepsMissingOrEmpty) {
  ExpectError("name: x\nenv: {A: b}\n", "job.yaml:1:1: ", "missing \"steps\"");
  ExpectError("name: x\nsteps: []\n", "job.yaml:2:8: ", "a job needs at least one step");
  ExpectError("name: x\nsteps:\n", "job.yaml:2:1: ", "a job needs at least one step");
  ExpectError("{\"name\": \"x\", \"steps\": []}",
              "job.yaml:1:24: ", "a job needs at least one step");
  ExpectError("steps:\n  - name: a\n", "job.yaml:2:5: ", "steps[0]: missing \"run\"");
}

TEST(ParseJobFileErrorTest, NotAJob) {
  ExpectError("", "job.yaml: ", "the file is empty");
  ExpectError("# only a comment\n", "job.yaml: ", "the file is empty");
  ExpectError("- run: x\n", "job.yaml:1:1: ", "expected a job: a mapping");
  ExpectError("\"just a string\"\n", "job.yaml:1:1: ", "expected a job: a mapping");
  ExpectError("steps: [{run: x}]\n---\nsteps: [{run: y}]\n",
              "job.yaml:3:1: ", "a second YAML document starts here");
}

// Found by the job file fuzzer: yaml-cpp's LoadAll built empty documents forever (and without
// bound in memory) after a top-level flow collection or quoted scalar followed by ','.
TEST(ParseJobFileErrorTest, AStrayCommaAfterTheDocumentIsAnErrorNotAHang) {
  for (const char* text : {"{},", "{}, \"\n", "[],", "{steps: [{run: x}]},", "\"a\","}) {
    EXPECT_THAT(ParseJobFile(text, "job.yaml"), StatusIs(absl::StatusCode::kInvalidArgument))
        << text;
  }
}

TEST(ParseJobFileErrorTest, PriorityOutOfRangeIsReportedWhereItIsWritten) {
  ExpectError("priority: 5000\nsteps: [{run: x}]\n",
              "job.yaml:1:11: ", "priority: 5000 is out of range");
}

TEST(ParseJobFileErrorTest, LimitsOfJobLimitsAreCheckedWithTheFileName) {
  ExpectError("env: {1BAD: x}\nsteps: [{run: x}]\n", "job.yaml: ", "env name \"1BAD\"");
  ExpectError("steps: [{name: a, run: x}, {name: a, run: y}]\n",
              "job.yaml: ", "duplicate step name \"a\"");
  ExpectError("steps: [{run: \"\"}]\n", "job.yaml: ", "run is empty");
  ExpectError(absl::StrCat("name: ", std::string(kMaxNameBytes + 1, 'n'), "\nsteps: [{run: x}]\n"),
              "job.yaml: ", absl::StrCat("limit is ", kMaxNameBytes));
  ExpectError("timeout: 200h\nsteps: [{run: x}]\n", "job.yaml: ", "timeout must be between");
}

TEST(ParseJobFileErrorTest, TooManySteps) {
  std::string text = "steps:\n";
  for (int i = 0; i <= kMaxSteps; ++i) text += "  - run: x\n";
  ExpectError(text, "job.yaml:2:3: ", absl::StrCat("the limit is ", kMaxSteps));
}

TEST(ParseJobFileErrorTest, AFileOverTheSizeLimitIsRejectedNamingTheLimit) {
  const std::string text =
      absl::StrCat("steps: [{run: x}]\n#", std::string(kMaxJobFileBytes, 'x'), "\n");
  ExpectError(text, "job.yaml: ", absl::StrCat("the limit is ", kMaxJobFileBytes, " bytes"));
}

TEST(ParseJobFileErrorTest, AliasesCannotInflateTheJobPastTheEncodedLimit) {
  // 64 KiB written once, referenced 1000 times: 64 MiB if expanded.
  std::string text = absl::StrCat("env:\n  V0: &big ", std::string(kMaxEnvValueBytes, 'x'), "\n");
  for (int i = 1; i < kMaxEnvVars; ++i) absl::StrAppend(&text, "  V", i, ": *big\n");
  text += "steps: [{run: x}]\n";
  ASSERT_LT(text.size(), static_cast<size_t>(kMaxJobFileBytes));
  ExpectError(text, "job.yaml:", absl::StrCat("limit of ", kMaxSerializedSpecBytes, " bytes"));
}

TEST(ParseJobFileErrorTest, DeepNestingIsAnErrorNotACrash) {
  const std::string text = absl::StrCat("name: ", std::string(100'000, '['), "\n");
  ExpectError(text, "job.yaml:", "nested too deeply");
}

class LoadJobFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = ::testing::TempDir() + "/job_file_test.XXXXXX";
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

TEST_F(LoadJobFileTest, LoadsAFile) {
  const std::string path = Write("hello.yaml", kHelloYaml);
  ASSERT_OK_AND_ASSIGN(farm::v1::JobSpec spec, LoadJobFile(path));
  EXPECT_EQ(spec.name(), "hello");
}

TEST_F(LoadJobFileTest, ErrorsNameThePath) {
  const std::string path = Write("bad.yaml", "steps:\n  - rnu: x\n");
  EXPECT_THAT(LoadJobFile(path), StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                                     StartsWith(path + ":2:5: unknown key")));
}

TEST_F(LoadJobFileTest, AMissingFileIsNotFound) {
  EXPECT_THAT(LoadJobFile(dir_ + "/nope.yaml"),
              StatusIsWithMessage(absl::StatusCode::kNotFound, StartsWith(dir_ + "/nope.yaml: ")));
}

TEST_F(LoadJobFileTest, ADirectoryIsInvalid) {
  EXPECT_THAT(LoadJobFile(dir_),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("is a directory")));
}

TEST_F(LoadJobFileTest, AnUnreadableFileIsPermissionDenied) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads every file";
  const std::string path = Write("secret.yaml", kHelloYaml);
  ASSERT_EQ(chmod(path.c_str(), 0), 0);
  EXPECT_THAT(LoadJobFile(path), StatusIs(absl::StatusCode::kPermissionDenied));
}

TEST_F(LoadJobFileTest, AnOversizedFileIsRejectedBeforeParsing) {
  const std::string path = Write("big.yaml", std::string(kMaxJobFileBytes + 1, '#'));
  EXPECT_THAT(LoadJobFile(path),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                  HasSubstr(absl::StrCat("limit is ", kMaxJobFileBytes))));
}

}  // namespace
}  // namespace farm::common

namespace farm::common {
namespace {

TEST(JobFileSecretsTest, SecretsAreAListOfNames) {
  ASSERT_OK_AND_ASSIGN(farm::v1::JobSpec spec,
                       ParseJobFile("secrets: [DEPLOY_KEY, NPM_TOKEN]\n"
                                    "steps: [{run: 'deploy \"$DEPLOY_KEY\"'}]\n",
                                    "job.yaml"));
  ASSERT_EQ(spec.secrets_size(), 2);
  EXPECT_EQ(spec.secrets(0), "DEPLOY_KEY");
  EXPECT_EQ(spec.secrets(1), "NPM_TOKEN");
  EXPECT_THAT(ParseJobFile("secrets: DEPLOY_KEY\nsteps: [{run: x}]\n", "job.yaml"),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                  HasSubstr("expected a list of secret names")));
  EXPECT_THAT(ParseJobFile("secrets: [deploy-key]\nsteps: [{run: x}]\n", "job.yaml"),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("secrets[0]")));
  EXPECT_THAT(ParseJobFile("secrets: [A_KEY, A_KEY]\nsteps: [{run: x}]\n", "job.yaml"),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("twice")));
}

}  // namespace
}  // namespace farm::common
