#include "common/job_limits.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "tests/testing/status_matchers.h"

namespace farm::common {
namespace {

using ::farm::testing::StatusIsWithMessage;
using ::testing::HasSubstr;

farm::v1::JobSpec ValidSpec() {
  farm::v1::JobSpec spec;
  spec.set_name("hello");
  (*spec.mutable_labels())["os"] = "linux";
  (*spec.mutable_env())["GREETING"] = "hello";
  spec.set_priority(5);
  spec.set_timeout_ms(600'000);
  farm::v1::StepSpec* step = spec.add_steps();
  step->set_name("greet");
  step->set_run("echo hi");
  return spec;
}

// Asserts that `spec` is rejected with INVALID_ARGUMENT and a message containing `fragment`.
void ExpectRejected(const farm::v1::JobSpec& spec, const std::string& fragment) {
  EXPECT_THAT(ValidateJobSpec(spec),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr(fragment)));
}

TEST(ValidateJobSpecTest, AcceptsAValidJob) {
  EXPECT_EQ(ValidateJobSpec(ValidSpec()), absl::OkStatus());
}

TEST(ValidateJobSpecTest, AcceptsTheLimitsThemselves) {
  farm::v1::JobSpec spec = ValidSpec();
  spec.set_priority(kMaxPriority);
  spec.set_timeout_ms(kMaxTimeoutMs);
  spec.set_name(std::string(kMaxNameBytes, 'n'));
  EXPECT_EQ(ValidateJobSpec(spec), absl::OkStatus());
  spec.set_priority(kMinPriority);
  EXPECT_EQ(ValidateJobSpec(spec), absl::OkStatus());
}

TEST(ValidateJobSpecTest, RejectsAJobWithoutSteps) {
  farm::v1::JobSpec spec = ValidSpec();
  spec.clear_steps();
  ExpectRejected(spec, "at least one step");
}

TEST(ValidateJobSpecTest, RejectsTooManySteps) {
  farm::v1::JobSpec spec = ValidSpec();
  spec.clear_steps();
  for (int i = 0; i <= kMaxSteps; ++i) spec.add_steps()->set_run("true");
  ExpectRejected(spec, absl::StrCat("limit is ", kMaxSteps));
}

TEST(ValidateJobSpecTest, RejectsPriorityOutOfRange) {
  farm::v1::JobSpec spec = ValidSpec();
  spec.set_priority(kMaxPriority + 1);
  ExpectRejected(spec, "priority");
  spec.set_priority(kMinPriority - 1);
  ExpectRejected(spec, "priority");
}

TEST(ValidateJobSpecTest, RejectsALongName) {
  farm::v1::JobSpec spec = ValidSpec();
  spec.set_name(std::string(kMaxNameBytes + 1, 'n'));
  ExpectRejected(spec, absl::StrCat("limit is ", kMaxNameBytes));
}

TEST(ValidateJobSpecTest, RejectsBadLabels) {
  farm::v1::JobSpec spec = ValidSpec();
  (*spec.mutable_labels())["a=b"] = "c";
  ExpectRejected(spec, "labels");

  spec = ValidSpec();
  (*spec.mutable_labels())[""] = "c";
  ExpectRejected(spec, "labels");

  spec = ValidSpec();
  for (int i = 0; i <= kMaxLabels; ++i) (*spec.mutable_labels())[absl::StrCat("k", i)] = "v";
  ExpectRejected(spec, absl::StrCat("limit is ", kMaxLabels));
}

TEST(ValidateJobSpecTest, RejectsBadEnv) {
  farm::v1::JobSpec spec = ValidSpec();
  (*spec.mutable_env())["1BAD"] = "x";
  ExpectRejected(spec, "1BAD");

  spec = ValidSpec();
  (*spec.mutable_steps(0)->mutable_env())["WITH-DASH"] = "x";
  ExpectRejected(spec, "steps[0] (greet)");

  spec = ValidSpec();
  (*spec.mutable_env())["BIG"] = std::string(kMaxEnvValueBytes + 1, 'x');
  ExpectRejected(spec, absl::StrCat("limit is ", kMaxEnvValueBytes));

  spec = ValidSpec();
  (*spec.mutable_env())["NUL"] = std::string("a\0b", 3);
  ExpectRejected(spec, "NUL");
}

TEST(ValidateJobSpecTest, RejectsTimeoutsOverAWeek) {
  farm::v1::JobSpec spec = ValidSpec();
  spec.set_timeout_ms(kMaxTimeoutMs + 1);
  ExpectRejected(spec, "timeout");

  spec = ValidSpec();
  spec.set_kill_grace_ms(-1);
  ExpectRejected(spec, "kill_grace");

  spec = ValidSpec();
  spec.mutable_steps(0)->set_timeout_ms(kMaxTimeoutMs + 1);
  ExpectRejected(spec, "steps[0] (greet): timeout");
}

TEST(ValidateJobSpecTest, RejectsBadSteps) {
  farm::v1::JobSpec spec = ValidSpec();
  spec.mutable_steps(0)->clear_run();
  ExpectRejected(spec, "run is empty");

  spec = ValidSpec();
  spec.mutable_steps(0)->set_run(std::string(kMaxScriptBytes + 1, 'x'));
  ExpectRejected(spec, absl::StrCat("limit is ", kMaxScriptBytes));

  spec = ValidSpec();
  *spec.add_steps() = spec.steps(0);
  ExpectRejected(spec, "duplicate step name \"greet\"");
}

TEST(ValidateJobSpecTest, RejectsEmptyShellArguments) {
  farm::v1::JobSpec spec = ValidSpec();
  spec.add_shell("/bin/bash");
  spec.add_shell("");
  ExpectRejected(spec, "shell");
}

TEST(ValidateJobSpecTest, RejectsAnOversizedSpec) {
  farm::v1::JobSpec spec = ValidSpec();
  spec.clear_steps();
  // Each script is within its own limit; together they are over the encoded-size limit.
  for (int64_t total = 0; total <= kMaxSerializedSpecBytes; total += kMaxScriptBytes) {
    spec.add_steps()->set_run(std::string(kMaxScriptBytes, 'x'));
  }
  ExpectRejected(spec, absl::StrCat("limit is ", kMaxSerializedSpecBytes));
}

TEST(ValidateJobSpecTest, APipelineJobMayHaveNoSteps) {
  farm::v1::JobSpec spec = ValidSpec();
  spec.clear_steps();
  EXPECT_EQ(ValidateJobSpec(spec, JobOrigin::kPipeline), absl::OkStatus());
  EXPECT_THAT(
      ValidateJobSpec(spec, JobOrigin::kSingle),
      StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("at least one step")));
}

TEST(ValidateJobSpecTest, RejectsAnUnknownStepWhen) {
  farm::v1::JobSpec spec = ValidSpec();
  spec.mutable_steps(0)->set_when(farm::v1::WHEN_ALWAYS);
  EXPECT_EQ(ValidateJobSpec(spec), absl::OkStatus());
  spec.mutable_steps(0)->set_when(static_cast<farm::v1::StepWhen>(7));
  ExpectRejected(spec, "steps[0] (greet): when: unknown value 7");
}

TEST(ValidateJobSpecTest, RetryLimits) {
  farm::v1::JobSpec spec = ValidSpec();
  spec.mutable_retry()->set_max_attempts(kMaxRetryAttempts);
  for (int i = 0; i < kMaxRetryExitCodes; ++i) spec.mutable_retry()->add_on_exit_codes(i + 1);
  spec.mutable_retry()->set_on_exit_codes(0, kMinRetryExitCode);
  spec.mutable_retry()->set_on_exit_codes(1, kMaxRetryExitCode);
  EXPECT_EQ(ValidateJobSpec(spec), absl::OkStatus());

  farm::v1::JobSpec bad = spec;
  bad.mutable_retry()->set_max_attempts(kMaxRetryAttempts + 1);
  ExpectRejected(bad, "retry.max_attempts: 11 is out of range; expected 0 to 10");
  bad = spec;
  bad.mutable_retry()->set_max_attempts(-1);
  ExpectRejected(bad, "retry.max_attempts: -1 is out of range");
  bad = spec;
  bad.mutable_retry()->add_on_exit_codes(3);
  ExpectRejected(bad, absl::StrCat("retry.on_exit_codes: ", kMaxRetryExitCodes + 1,
                                   " codes; the limit is ", kMaxRetryExitCodes));
  bad = spec;
  bad.mutable_retry()->set_on_exit_codes(5, 0);
  ExpectRejected(bad, "retry.on_exit_codes[5]: 0 is out of range");
  bad.mutable_retry()->set_on_exit_codes(5, 256);
  ExpectRejected(bad, "retry.on_exit_codes[5]: 256 is out of range");
}

TEST(ValidateJobSpecTest, ConcurrencyLimits) {
  farm::v1::JobSpec spec = ValidSpec();
  spec.set_concurrency_group(std::string(kMaxNameBytes, 'g'));
  spec.set_concurrency(kMaxConcurrency);
  EXPECT_EQ(ValidateJobSpec(spec), absl::OkStatus());
  spec.set_concurrency_group("A-z.0_9");
  spec.set_concurrency(0);
  EXPECT_EQ(ValidateJobSpec(spec), absl::OkStatus());

  farm::v1::JobSpec bad = spec;
  bad.set_concurrency(kMaxConcurrency + 1);
  ExpectRejected(bad, "concurrency: 1001 is out of range; expected 0 to 1000");
  bad.set_concurrency(-1);
  ExpectRejected(bad, "concurrency: -1 is out of range");
  bad = spec;
  bad.clear_concurrency_group();
  bad.set_concurrency(1);
  ExpectRejected(bad, "concurrency: 1 without a concurrency_group");
  bad = spec;
  bad.set_concurrency_group(std::string(kMaxNameBytes + 1, 'g'));
  ExpectRejected(bad, absl::StrCat("concurrency_group: the group name is ", kMaxNameBytes + 1,
                                   " bytes; the limit is ", kMaxNameBytes));
  for (const char* name : {"a b", "a/b", "caf\xc3\xa9", "x:y"}) {
    bad.set_concurrency_group(name);
    ExpectRejected(bad, "is not a group name");
  }
}

TEST(ApplyJobDefaultsTest, NamesUnnamedStepsByPosition) {
  farm::v1::JobSpec spec;
  spec.add_steps()->set_run("a");
  spec.add_steps()->set_run("b");
  ApplyJobDefaults(spec);
  EXPECT_EQ(spec.steps(0).name(), "step-1");
  EXPECT_EQ(spec.steps(1).name(), "step-2");
  EXPECT_EQ(ValidateJobSpec(spec), absl::OkStatus());
}

TEST(ApplyJobDefaultsTest, NeverCollidesWithAGivenName) {
  farm::v1::JobSpec spec;
  spec.add_steps()->set_run("a");
  farm::v1::StepSpec* named = spec.add_steps();
  named->set_name("step-1");
  named->set_run("b");
  ApplyJobDefaults(spec);
  EXPECT_NE(spec.steps(0).name(), "step-1");
  EXPECT_EQ(spec.steps(1).name(), "step-1");
  EXPECT_EQ(ValidateJobSpec(spec), absl::OkStatus());
}

TEST(ValidateJobSpecTest, AcceptsArtifactGlobs) {
  farm::v1::JobSpec spec = ValidSpec();
  spec.add_artifacts("out/*");
  spec.add_artifacts("dist/**/*.tar.gz");
  spec.add_artifacts("./logs/?.txt");
  spec.set_artifacts_when(farm::v1::ARTIFACTS_ALWAYS);
  EXPECT_EQ(ValidateJobSpec(spec), absl::OkStatus());
  for (int i = 1; spec.artifacts_size() < kMaxArtifactGlobs; ++i) {
    spec.add_artifacts(absl::StrCat("g", i));
  }
  spec.add_artifacts(std::string(kMaxArtifactGlobBytes - 1, 'x') + "*");
  spec.mutable_artifacts()->RemoveLast();
  EXPECT_EQ(ValidateJobSpec(spec), absl::OkStatus());
}

TEST(ValidateJobSpecTest, RejectsBadArtifactGlobs) {
  auto with = [](const std::string& glob) {
    farm::v1::JobSpec spec = ValidSpec();
    spec.add_artifacts("out/*");
    spec.add_artifacts(glob);
    return spec;
  };
  ExpectRejected(with("/etc/passwd"), "artifacts[1]: \"/etc/passwd\" is an absolute path");
  ExpectRejected(with("../outside/*"), "\"..\" component");
  ExpectRejected(with("out/../../x"), "\"..\" component");
  ExpectRejected(with("out/.."), "\"..\" component");
  ExpectRejected(with(""), "artifacts[1]: the glob is empty");
  ExpectRejected(with(std::string(kMaxArtifactGlobBytes + 1, 'a')),
                 absl::StrCat("the limit is ", kMaxArtifactGlobBytes));
  ExpectRejected(with(std::string("a\0b", 3)), "NUL");
  ExpectRejected(with("bad\xff"), "UTF-8");

  farm::v1::JobSpec many = ValidSpec();
  for (int i = 0; i <= kMaxArtifactGlobs; ++i) many.add_artifacts(absl::StrCat("g", i));
  ExpectRejected(many, absl::StrCat("the limit is ", kMaxArtifactGlobs));

  farm::v1::JobSpec when = ValidSpec();
  when.set_artifacts_when(static_cast<farm::v1::ArtifactsWhen>(7));
  ExpectRejected(when, "artifacts_when");
}

TEST(ValidateArtifactGlobTest, ADotDotInsideANameIsFine) {
  EXPECT_EQ(ValidateArtifactGlob("out/a..b"), absl::OkStatus());
  EXPECT_EQ(ValidateArtifactGlob("..hidden"), absl::OkStatus());
  EXPECT_EQ(ValidateArtifactGlob("**"), absl::OkStatus());
}

farm::v1::Artifact MakeArtifact(const std::string& path, int64_t size = 5) {
  farm::v1::Artifact artifact;
  artifact.set_path(path);
  artifact.set_hash(std::string(64, 'a'));
  artifact.set_size(size);
  return artifact;
}

TEST(ValidateArtifactsTest, AcceptsPlainRelativePaths) {
  google::protobuf::RepeatedPtrField<farm::v1::Artifact> list;
  *list.Add() = MakeArtifact("out/result.txt");
  *list.Add() = MakeArtifact("a/b/c d.tar.gz");
  *list.Add() = MakeArtifact("caf\xc3\xa9");  // UTF-8
  EXPECT_EQ(ValidateArtifacts(list), absl::OkStatus());
}

TEST(ValidateArtifactsTest, RejectsPathsThatCouldLeaveADirectory) {
  for (const std::string path :
       {"", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a/.", "a/", "bad\xc3"}) {
    google::protobuf::RepeatedPtrField<farm::v1::Artifact> list;
    *list.Add() = MakeArtifact(path);
    EXPECT_THAT(ValidateArtifacts(list),
                StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("artifacts[0]")))
        << path;
  }
}

TEST(ValidateArtifactsTest, RejectsBadDigestsDuplicatesAndTooMany) {
  google::protobuf::RepeatedPtrField<farm::v1::Artifact> list;
  *list.Add() = MakeArtifact("a");
  list.Mutable(0)->set_hash(std::string(64, 'A'));
  EXPECT_THAT(ValidateArtifacts(list),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("hash")));
  list.Mutable(0)->set_hash(std::string(63, 'a'));
  EXPECT_THAT(ValidateArtifacts(list),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("hash")));
  *list.Mutable(0) = MakeArtifact("a", -1);
  EXPECT_THAT(ValidateArtifacts(list),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("negative")));
  *list.Mutable(0) = MakeArtifact("a");
  *list.Add() = MakeArtifact("a");
  EXPECT_THAT(ValidateArtifacts(list),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("listed twice")));

  google::protobuf::RepeatedPtrField<farm::v1::Artifact> many;
  for (int i = 0; i < kMaxArtifactsPerJob; ++i) *many.Add() = MakeArtifact(absl::StrCat("f", i));
  EXPECT_EQ(ValidateArtifacts(many), absl::OkStatus());
  *many.Add() = MakeArtifact("one-more");
  EXPECT_THAT(ValidateArtifacts(many),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                  HasSubstr(absl::StrCat("the limit is ", kMaxArtifactsPerJob))));
}

TEST(IsValidUtf8Test, AcceptsUtf8AndRejectsTheRest) {
  EXPECT_TRUE(IsValidUtf8("plain"));
  EXPECT_TRUE(IsValidUtf8("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));  // é € 😀
  EXPECT_FALSE(IsValidUtf8("\xff"));
  EXPECT_FALSE(IsValidUtf8("\xc3"));          // truncated
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));      // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));  // a surrogate
}

}  // namespace
}  // namespace farm::common

namespace farm::common {
namespace {

TEST(ValidateJobSpecTest, SecretsAreValidNamesListedOnceAndNotAlsoInEnv) {
  farm::v1::JobSpec spec = ValidSpec();
  spec.add_secrets("DEPLOY_KEY");
  spec.add_secrets("_NPM_TOKEN2");
  ASSERT_OK(ValidateJobSpec(spec));
  farm::v1::JobSpec twice = spec;
  twice.add_secrets("DEPLOY_KEY");
  EXPECT_THAT(ValidateJobSpec(twice), StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                                          HasSubstr("DEPLOY_KEY is listed twice")));
  for (const char* bad : {"lower", "9LIVES", "A-B", "", "FARM_STEP"}) {
    farm::v1::JobSpec s = ValidSpec();
    s.add_secrets(bad);
    EXPECT_THAT(ValidateJobSpec(s),
                StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("secrets[0]")))
        << bad;
  }
  farm::v1::JobSpec in_env = spec;
  (*in_env.mutable_steps(0)->mutable_env())["DEPLOY_KEY"] = "x";
  EXPECT_THAT(ValidateJobSpec(in_env), StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                                           HasSubstr("also set in env")));
  farm::v1::JobSpec many = ValidSpec();
  for (int i = 0; i <= kMaxSecretsPerJob; ++i) many.add_secrets(absl::StrCat("S", i));
  EXPECT_THAT(ValidateJobSpec(many),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("limit")));
}

TEST(ValidateSecretValueTest, ValuesAreSixBytesTo64KiBAndNeverEchoed) {
  EXPECT_THAT(ValidateSecretValue("PIN", "12345"),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                  ::testing::AllOf(HasSubstr("PIN"), HasSubstr("5 bytes"),
                                                   ::testing::Not(HasSubstr("12345")))));
  ASSERT_OK(ValidateSecretValue("PIN", "123456"));
  ASSERT_OK(ValidateSecretValue("BIG", std::string(kMaxSecretValueBytes, 'x')));
  EXPECT_THAT(ValidateSecretValue("BIG", std::string(kMaxSecretValueBytes + 1, 'x')),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("BIG")));
}

}  // namespace
}  // namespace farm::common
