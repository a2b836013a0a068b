// farm-health-probe, the health check of the container images and the Kubernetes probes
// (deploy/health_probe), against the real coordinator: SERVING (exit 0) on a TLS farm with the
// CA alone (no credential) and on a development farm; exit 1 with one line saying why when the
// coordinator is gone or the probe cannot verify it; 64 for bad flags.
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/testing/mini_farm.h"
#include "tests/testing/status_matchers.h"

namespace farm::testing {
namespace {

using ::testing::HasSubstr;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Runs farm-health-probe with `args` to its end (the probe bounds itself with --timeout).
CommandResult RunProbe(MiniFarm& farm, std::vector<std::string> args) {
  static int runs = 0;
  SubprocessOptions options;
  options.binary = farm.BinaryPath("farm-health-probe");
  options.args = std::move(args);
  options.stdout_path = farm.Path(absl::StrCat("probe-", ++runs, ".stdout"));
  options.stderr_path = farm.Path(absl::StrCat("probe-", runs, ".stderr"));
  CommandResult result;
  absl::StatusOr<std::unique_ptr<Subprocess>> probe = Subprocess::Start(options);
  EXPECT_OK(probe);
  if (!probe.ok()) return result;
  absl::StatusOr<int> code = (*probe)->Wait(absl::Seconds(30));
  EXPECT_OK(code);
  result.exit_code = code.value_or(-1);
  result.out = ReadAll(options.stdout_path);
  result.err = ReadAll(options.stderr_path);
  return result;
}

TEST(HealthProbeTest, ATlsCoordinatorServesToTheProbeWithTheCaAlone) {
  MiniFarmOptions options;
  options.tls = true;
  ASSERT_OK_AND_ASSIGN(auto farm, MiniFarm::Create(options));
  ASSERT_OK(farm->StartCoordinator());
  const std::string address = absl::StrCat("--address=", farm->coordinator_address());
  const std::string ca = absl::StrCat("--tls_ca=", farm->Path("certs/ca.crt"));

  CommandResult serving = RunProbe(*farm, {address, ca, "--timeout=10s"});
  EXPECT_EQ(serving.exit_code, 0) << serving.DebugString();
  EXPECT_THAT(serving.out, HasSubstr("SERVING"));

  // The coordinator reports health for the whole server (the empty name) only.
  CommandResult unknown = RunProbe(*farm, {address, ca, "--service=farm.v1.JobService"});
  EXPECT_EQ(unknown.exit_code, 1) << unknown.DebugString();
  EXPECT_THAT(unknown.err, HasSubstr("NOT_FOUND"));

  // Plaintext against a TLS port never gets an answer.
  CommandResult plaintext = RunProbe(*farm, {address, "--insecure", "--timeout=2s"});
  EXPECT_EQ(plaintext.exit_code, 1) << plaintext.DebugString();
  EXPECT_THAT(plaintext.err, HasSubstr("the health check of"));

  ASSERT_OK_AND_ASSIGN(int stopped, farm->StopCoordinator());
  EXPECT_EQ(stopped, 0);
  CommandResult gone = RunProbe(*farm, {address, ca, "--timeout=2s"});
  EXPECT_EQ(gone.exit_code, 1) << gone.DebugString();
  EXPECT_THAT(gone.err, HasSubstr(absl::StrCat("the health check of ", farm->coordinator_address(),
                                               " failed")));
}

TEST(HealthProbeTest, ADevelopmentCoordinatorServesInPlaintext) {
  ASSERT_OK_AND_ASSIGN(auto farm, MiniFarm::Create());
  ASSERT_OK(farm->StartCoordinator());
  CommandResult serving =
      RunProbe(*farm, {absl::StrCat("--address=", farm->coordinator_address()), "--insecure"});
  EXPECT_EQ(serving.exit_code, 0) << serving.DebugString();
  EXPECT_EQ(serving.out, absl::StrCat(farm->coordinator_address(), " SERVING\n"));
}

TEST(HealthProbeTest, BadFlagsAreAUsageError) {
  ASSERT_OK_AND_ASSIGN(auto farm, MiniFarm::Create());
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"--insecure", "--timeout=soon"},
                                             {"--insecure", "extra"},
                                             {"--tls_ca=" + farm->Path("missing.crt")}}) {
    CommandResult result = RunProbe(*farm, args);
    EXPECT_EQ(result.exit_code, 64) << result.DebugString();
    EXPECT_THAT(result.err, HasSubstr("farm-health-probe: "));
  }
}

}  // namespace
}  // namespace farm::testing
