// The web dashboard end to end (issue 15): a coordinator with TLS and its HTTP port, an agent, a
// pipeline with a job still running and a finished job with 100 MB of output; then
// tests/web/dashboard_test.mjs opens the pages in headless Chromium (Debian's, driven by
// playwright-core) signed in as a viewer and as a submitter, and checks what a person sees. The
// screenshots it takes are kept in the build tree's test-artifacts/web/.
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "tests/integration/farm_test_base.h"
#include "tests/testing/subprocess.h"

namespace farm::testing {
namespace {

const std::string kWebDir = std::string(FARM_SOURCE_DIR) + "/tests/web";

// Why the browser test cannot run here, or "" when it can.
std::string MissingForBrowser() {
  if (::access("/usr/bin/chromium", X_OK) != 0) {
    return "Debian's chromium is not installed (deploy/install-deps.sh installs it)";
  }
  if (::access("/usr/bin/node", X_OK) != 0) return "node is not installed";
  if (::access((kWebDir + "/node_modules/playwright-core/package.json").c_str(), R_OK) != 0) {
    return "tests/web/node_modules lacks playwright-core (tests/run.sh runs npm ci there)";
  }
  return "";
}

class WebTest : public TlsFarmTest {
 protected:
  std::vector<std::string> CoordinatorFlags() const override {
    return {"--http_listen=127.0.0.1:0", "--http_port_file=" + farm_->Path("http.port")};
  }
  std::string Token(const std::string& role, const std::string& name) {
    absl::StatusOr<CommandResult> r =
        farm_->RunFarmctl({"token", "create", "--role=" + role, "--name=" + name});
    EXPECT_TRUE(r.ok() && r->exit_code == 0) << (r.ok() ? r->DebugString() : "");
    return r.ok() ? r->out.substr(0, r->out.find('\n')) : "";
  }
};

TEST_F(WebTest, APersonWatchesTheFloorAJobsLogAndAPipelineAndCancelsWithTheRightRole) {
  if (const std::string missing = MissingForBrowser(); !missing.empty()) {
    GTEST_SKIP() << "the browser test did not run: " << missing;
  }
  ASSERT_OK(StartAgent("a1", {}, 3));
  // 100 MB of output, finished before the pages open.
  ASSERT_OK_AND_ASSIGN(std::string big, farm_->SubmitJobFile(R"(
name: big-log
steps:
  - name: flood
    run: "yes 'a line of a hundred-megabyte log, for the page to open at its tail' | head -c 100000000; echo; echo 'the end of the output'"
)"));
  ASSERT_OK_AND_ASSIGN(farm::v1::Job big_done, farm_->WaitForJobDone(big, absl::Seconds(60)));
  ASSERT_EQ(big_done.state(), farm::v1::SUCCEEDED) << big_done.ShortDebugString();
  ASSERT_OK_AND_ASSIGN(std::string pipeline, farm_->SubmitJobFile(R"(
name: web
jobs:
  quick:
    steps: [{run: "sleep 4; echo quick done"}]
  after:
    needs: [quick]
    steps: [{run: "echo after"}]
  long:
    steps: [{run: "for i in $(seq 1 600); do echo \"line $i\"; sleep 0.2; done"}]
)"));
  ASSERT_OK_AND_ASSIGN(farm::v1::Pipeline p, farm_->GetPipeline(pipeline));
  std::string long_job;
  for (const farm::v1::PipelineJob& j : p.jobs()) {
    if (j.name() == "long") long_job = j.job_id();
  }
  ASSERT_OK(farm_->WaitForJobState(long_job, farm::v1::RUNNING).status());
  ASSERT_OK_AND_ASSIGN(std::string port_file, ReadFile(farm_->Path("http.port")));
  const std::string address = port_file.substr(0, port_file.find('\n'));
  const std::string shots = std::string(FARM_BINARY_DIR) + "/test-artifacts/web";
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Subprocess> node,
                       Subprocess::Start({"/usr/bin/node",
                                          {kWebDir + "/dashboard_test.mjs"},
                                          {{"FARM_WEB_URL", "https://" + address},
                                           {"FARM_WEB_CERT", farm_->Path("certs/coordinator.crt")},
                                           {"FARM_WEB_VIEWER", Token("viewer", "val")},
                                           {"FARM_WEB_SUBMITTER", Token("submitter", "sam")},
                                           {"FARM_WEB_PIPELINE", pipeline},
                                           {"FARM_WEB_LONG_JOB", long_job},
                                           {"FARM_WEB_BIG_JOB", big},
                                           {"FARM_WEB_SHOTS", shots}},
                                          farm_->Path("node.out"),
                                          farm_->Path("node.err"),
                                          "",
                                          kWebDir}));
  absl::StatusOr<int> exit = node->Wait(absl::Seconds(90));
  const std::string said = ReadFileOrEmpty(farm_->Path("node.out")) + "\n--- stderr ---\n" +
                           ReadFileOrEmpty(farm_->Path("node.err"));
  ASSERT_TRUE(exit.ok()) << exit.status() << said;
  EXPECT_EQ(*exit, 0) << said;
  EXPECT_THAT(said, ::testing::HasSubstr("all passed"));
  // What the submitter's click did, as farmctl sees it.
  ASSERT_OK_AND_ASSIGN(farm::v1::Job cancelled, farm_->GetJob(long_job));
  EXPECT_EQ(cancelled.state(), farm::v1::CANCELLED) << said;
}

}  // namespace
}  // namespace farm::testing
