// The farm's metrics as an operator's Prometheus sees them: a TLS farm (the real binaries), its
// coordinator and an agent each serving --http_listen, a few jobs run, then Debian's own
// Prometheus server started on loopback, scraping both (the coordinator over HTTPS with a
// viewer token, as the README's scrape job does), and asked in PromQL about the jobs the test
// ran. promtool checks what each serves.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <regex>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/testing/mini_farm.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/subprocess.h"

namespace farm::testing {
namespace {

using ::testing::HasSubstr;

bool HavePrometheus() { return std::system("command -v prometheus promtool >/dev/null") == 0; }

// A TCP port free on 127.0.0.1 now (Prometheus takes no port 0 and tells none it picked).
int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

// "HOST:PORT\n" from a port file → PORT.
int PortIn(const std::string& file_text) {
  int port = 0;
  const std::string text(file_text.substr(0, file_text.find('\n')));
  EXPECT_TRUE(absl::SimpleAtoi(text.substr(text.rfind(':') + 1), &port)) << text;
  return port;
}

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MiniFarmOptions options;
    options.tls = true;
    ASSERT_OK_AND_ASSIGN(farm_, MiniFarm::Create(options));
    ASSERT_OK(farm_->StartCoordinator(
        {"--http_listen=127.0.0.1:0", absl::StrCat("--http_port_file=", farm_->Path("c.http"))}));
    ASSERT_OK(farm_->StartAgent(AgentOptions{
        "a1",
        {},
        1,
        {"--http_listen=127.0.0.1:0", absl::StrCat("--http_port_file=", farm_->Path("a1.http"))}}));
    ASSERT_OK(farm_->WaitForAgents({"a1"}));
    ASSERT_OK(WaitFor([&] { return !ReadFileOrEmpty(farm_->Path("a1.http")).empty(); },
                      absl::Seconds(10), "the agent's HTTP port file"));
    coordinator_port_ = PortIn(ReadFileOrEmpty(farm_->Path("c.http")));
    agent_port_ = PortIn(ReadFileOrEmpty(farm_->Path("a1.http")));
    ASSERT_OK_AND_ASSIGN(CommandResult token, farm_->RunFarmctl({"token", "create", "--role=viewer",
                                                                 "--name=prometheus"}));
    ASSERT_EQ(token.exit_code, 0) << token.DebugString();
    token_ = token.out.substr(0, token.out.find('\n'));
    std::ofstream(farm_->Path("prometheus.token")) << token_;
  }

  // Runs three jobs that succeed (each prints "ok\n") and one that fails, on a1.
  void RunJobs() {
    for (const char* run : {"echo ok", "echo ok", "false", "echo ok"}) {
      ASSERT_OK_AND_ASSIGN(last_job_,
                           farm_->SubmitJobFile(absl::StrCat("steps: [{run: '", run, "'}]")));
      ASSERT_OK(farm_->WaitForJobDone(last_job_).status());
    }
  }

  std::string CoordinatorMetrics() {
    httplib::SSLClient client("127.0.0.1", coordinator_port_);
    client.set_ca_cert_path(farm_->Path("certs/ca.crt").c_str());
    client.enable_server_certificate_verification(true);
    client.set_bearer_token_auth(token_.c_str());
    httplib::Result r = client.Get("/metrics");
    EXPECT_TRUE(r && r->status == 200) << (r ? r->body : httplib::to_string(r.error()));
    return r ? r->body : "";
  }

  std::string AgentMetrics() {
    httplib::Client client("127.0.0.1", agent_port_);
    httplib::Result r = client.Get("/metrics");
    EXPECT_TRUE(r && r->status == 200) << (r ? r->body : httplib::to_string(r.error()));
    return r ? r->body : "";
  }

  // promtool's findings on `exposition` (empty: none).
  std::string Promtool(const std::string& exposition, const std::string& name) {
    const std::string in = farm_->Path(name + ".txt");
    const std::string out = farm_->Path(name + ".promtool");
    std::ofstream(in) << exposition;
    const int rc =
        std::system(absl::StrCat("promtool check metrics < ", in, " > ", out, " 2>&1").c_str());
    std::string said = ReadFileOrEmpty(out);
    return rc == 0 && said.empty() ? "" : absl::StrCat("exit ", rc, ": ", said);
  }

  std::unique_ptr<MiniFarm> farm_;
  int coordinator_port_ = 0;
  int agent_port_ = 0;
  std::string token_;
  std::string last_job_;
};

TEST_F(MetricsTest, PromtoolFindsNothingWrongWithEitherExposition) {
  if (!HavePrometheus()) {
    GTEST_SKIP() << "prometheus and promtool are not installed (Debian's prometheus package; "
                    "deploy/install-deps.sh installs it): nothing was checked";
  }
  RunJobs();
  ASSERT_OK_AND_ASSIGN(CommandResult logs, farm_->RunFarmctl({"logs", last_job_}));
  ASSERT_EQ(logs.exit_code, 0) << logs.DebugString();
  // A heartbeat comes back every third of the lease TTL at the latest.
  std::string agent;
  ASSERT_OK(WaitFor(
      [&] {
        agent = AgentMetrics();
        return !absl::StrContains(agent, "\nfarm_agent_heartbeat_rtt_seconds_count 0\n");
      },
      absl::Seconds(30), "a heartbeat's round trip in the agent's metrics"));
  const std::string coordinator = CoordinatorMetrics();
  EXPECT_THAT(coordinator, HasSubstr("\nfarm_jobs{state=\"succeeded\"} 3\n"));
  // The flow of the four jobs (no labels required: the label set "").
  for (const char* line : {
           "farm_job_queue_wait_seconds_count{labels=\"\"} 4",
           "farm_job_run_seconds_count{labels=\"\"} 4",
           "farm_job_lead_time_seconds_count{labels=\"\",state=\"succeeded\"} 3",
           "farm_job_lead_time_seconds_count{labels=\"\",state=\"failed\"} 1",
           "farm_attempts_total{outcome=\"succeeded\"} 3",
           "farm_attempts_total{outcome=\"failed\"} 1", "farm_attempts_total{outcome=\"lost\"} 0",
           "farm_lease_expirations_total 0",
           "farm_log_received_bytes_total 9",  // "ok\n" three times
           "farm_log_sent_bytes_total 3",      // `farmctl logs` of the last job
       }) {
    EXPECT_THAT(coordinator, HasSubstr(absl::StrCat("\n", line, "\n")));
  }
  EXPECT_THAT(agent, HasSubstr("\nfarm_agent_attempts_total{outcome=\"succeeded\"} 3\n"));
  EXPECT_THAT(agent, HasSubstr("\nfarm_agent_attempts_total{outcome=\"failed\"} 1\n"));
  EXPECT_THAT(agent, HasSubstr("\nfarm_agent_step_start_seconds_count 4\n"));
  EXPECT_THAT(agent, HasSubstr("\nfarm_agent_slots 1\n"));
  EXPECT_EQ(Promtool(coordinator, "coordinator"), "");
  EXPECT_EQ(Promtool(agent, "agent"), "");
}

TEST_F(MetricsTest, APrometheusServerScrapesBothAndAnswersAboutTheJobs) {
  if (!HavePrometheus()) {
    GTEST_SKIP() << "prometheus is not installed (Debian's prometheus package; "
                    "deploy/install-deps.sh installs it): no server scraped the farm";
  }
  RunJobs();
  const int port = FreePort();
  ASSERT_GT(port, 0);
  std::ofstream(farm_->Path("prometheus.yml"))
      << "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
      << "scrape_configs:\n"
      << "  - job_name: coordinator\n"
      << "    scheme: https\n"
      << "    tls_config: {ca_file: " << farm_->Path("certs/ca.crt") << "}\n"
      << "    authorization: {credentials_file: " << farm_->Path("prometheus.token") << "}\n"
      << "    static_configs: [{targets: ['127.0.0.1:" << coordinator_port_ << "']}]\n"
      << "  - job_name: agent\n"
      << "    static_configs: [{targets: ['127.0.0.1:" << agent_port_ << "']}]\n";
  SubprocessOptions options;
  options.binary = "/usr/bin/prometheus";
  options.args = {absl::StrCat("--config.file=", farm_->Path("prometheus.yml")),
                  absl::StrCat("--storage.tsdb.path=", farm_->Path("prometheus-data")),
                  absl::StrCat("--web.listen-address=127.0.0.1:", port)};
  options.stdout_path = farm_->Path("prometheus.stdout");
  options.stderr_path = farm_->Path("prometheus.stderr");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Subprocess> prometheus, Subprocess::Start(options));

  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(5);
  // The value of a PromQL query's single sample, or "" while it has none.
  auto query = [&](const std::string& promql) -> std::string {
    httplib::Result r = client.Get("/api/v1/query", httplib::Params{{"query", promql}}, {});
    if (!r || r->status != 200) return "";
    std::smatch m;
    static const std::regex kValue(R"re("value":\[[0-9.]+,"([^"]*)"\])re");
    return std::regex_search(r->body, m, kValue) ? m[1].str() : "";
  };
  struct Expected {
    std::string promql;
    std::string value;
  };
  const Expected expected[] = {
      {"farm_jobs{state=\"succeeded\"}", "3"},
      {"farm_jobs{state=\"failed\"}", "1"},
      {"sum(farm_job_lead_time_seconds_count)", "4"},
      {"farm_attempts_total{outcome=\"failed\"}", "1"},
      {"sum(farm_agent_attempts_total{outcome=~\"succeeded|failed\"})", "4"},
      {"farm_agent_attempts_total{job=\"agent\",outcome=\"failed\"}", "1"},
      {"sum(up)", "2"},
  };
  for (const Expected& e : expected) {
    std::string last;
    const absl::Status seen = WaitFor(
        [&] {
          last = query(e.promql);
          return last == e.value;
        },
        absl::Seconds(60), e.promql, absl::Milliseconds(250));
    EXPECT_TRUE(seen.ok()) << e.promql << " answered \"" << last << "\", want " << e.value
                           << "\nprometheus said: "
                           << ReadFileOrEmpty(farm_->Path("prometheus.stderr"));
  }
  EXPECT_OK(prometheus->Terminate(absl::Seconds(10)).status());
}

}  // namespace
}  // namespace farm::testing
