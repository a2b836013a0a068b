#include "coordinator/scheduler/step_fingerprint.h"

#include <gtest/gtest.h>

#include "tests/coordinator/scheduler/part_test_util.h"

namespace farm::coordinator {
namespace {

class StepFingerprintTest : public PartTest {};

TEST_F(StepFingerprintTest, TheSameStepWithTheSameInputsHasTheSameFingerprint) {
  farm::v1::Job a = NewJob(1, 0, {}, 2);
  (*a.mutable_spec()->mutable_env())["A"] = "1";
  (*a.mutable_spec()->mutable_env())["B"] = "2";
  farm::v1::Job b = NewJob(2, 5, {{"os", "linux"}}, 2);  // id, priority, labels do not count
  (*b.mutable_spec()->mutable_env())["B"] = "2";
  (*b.mutable_spec()->mutable_env())["A"] = "1";
  const std::string fp = StepFingerprint(a, 0);
  EXPECT_EQ(fp.size(), 16u);
  EXPECT_EQ(StepFingerprint(b, 0), fp);
  EXPECT_EQ(StepFingerprint(a, 0), fp);  // stable
  EXPECT_EQ(StepFingerprint(a, 2), "");  // no such step
}

TEST_F(StepFingerprintTest, ScriptEnvironmentShellAndInputsEachChangeIt) {
  const farm::v1::Job base = NewJob(1);
  const std::string fp = StepFingerprint(base, 0);
  farm::v1::Job run = base;
  run.mutable_spec()->mutable_steps(0)->set_run("false");
  farm::v1::Job env = base;
  (*env.mutable_spec()->mutable_steps(0)->mutable_env())["CC"] = "clang";
  farm::v1::Job shell = base;
  shell.mutable_spec()->add_shell("/bin/bash");
  farm::v1::Job input = base;
  farm::v1::Artifact* art = input.add_inputs()->add_artifacts();
  art->set_path("out/app");
  art->set_hash(std::string(64, 'a'));
  farm::v1::Job other_input = input;
  other_input.mutable_inputs(0)->mutable_artifacts(0)->set_hash(std::string(64, 'b'));
  for (const farm::v1::Job* changed : {&run, &env, &shell, &input, &other_input}) {
    EXPECT_NE(StepFingerprint(*changed, 0), fp);
  }
  EXPECT_NE(StepFingerprint(input, 0), StepFingerprint(other_input, 0));
  // Fields do not run into each other: "ab" + "c" is not "a" + "bc".
  farm::v1::Job x = base, y = base;
  (*x.mutable_spec()->mutable_env())["ab"] = "c";
  (*y.mutable_spec()->mutable_env())["a"] = "bc";
  EXPECT_NE(StepFingerprint(x, 0), StepFingerprint(y, 0));
}

}  // namespace
}  // namespace farm::coordinator
