// The example in deploy/examples/ (what the README shows for "submitting from your own code")
// works against a live farm.
#include <string>

#include "tests/integration/farm_test_base.h"

namespace farm::testing {
namespace {

using ::testing::HasSubstr;

using ExampleClientTest = FarmTest;

TEST_F(ExampleClientTest, SubmitsFollowsAndExitsZero) {
  ASSERT_OK(StartAgent("a1"));
  SubprocessOptions options;
  options.binary = farm_->BinaryPath("farm-example-client");
  options.args = {farm_->coordinator_address(), "--insecure"};
  options.stdout_path = farm_->Path("example.out");
  options.stderr_path = farm_->Path("example.err");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Subprocess> client, Subprocess::Start(options));
  ASSERT_OK_AND_ASSIGN(int code, client->Wait(absl::Seconds(30)));
  const std::string out = ReadFile(options.stdout_path).value_or("");
  EXPECT_EQ(code, 0) << "stdout:\n"
                     << out << "\nstderr:\n"
                     << ReadFile(options.stderr_path).value_or("");
  EXPECT_THAT(out, HasSubstr("hello from "));
  EXPECT_THAT(out, HasSubstr("tick 1\ntick 2\ntick 3\n"));
  EXPECT_THAT(out, HasSubstr("SUCCEEDED"));

  // The job it submitted is a normal job.
  ASSERT_OK_AND_ASSIGN(farm::v1::ListJobsResponse listed, farm_->ListJobs());
  ASSERT_EQ(listed.jobs_size(), 1);
  EXPECT_EQ(listed.jobs(0).spec().name(), "example-from-code");
  EXPECT_EQ(listed.jobs(0).state(), farm::v1::SUCCEEDED);
}

TEST_F(ExampleClientTest, ExampleJobFileRuns) {
  ASSERT_OK(StartAgent("a1"));
  ASSERT_OK_AND_ASSIGN(
      CommandResult result,
      farm_->RunFarmctl(
          {"submit", std::string(FARM_SOURCE_DIR) + "/deploy/examples/hello.yaml", "--follow"}));
  EXPECT_EQ(result.exit_code, 0) << result.DebugString();
  EXPECT_THAT(result.out, HasSubstr("hello from "));
}

}  // namespace
}  // namespace farm::testing
