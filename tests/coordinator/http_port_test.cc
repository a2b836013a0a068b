// Service tests of the coordinator's HTTP port (--http_listen): the real Coordinator in-process
// with TLS on 127.0.0.1:0, read over HTTPS by cpp-httplib's client as Prometheus would. Who may
// read what (the authorization table's verdicts, the codes for no, bad and revoked credentials),
// what /metrics says after calls and a job, and that Prometheus' own checker (promtool check
// metrics) finds nothing wrong with the exposition.
#include "coordinator/http/http_port.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/certs.h"
#include "common/channel.h"
#include "coordinator/auth/authz_table.h"
#include "coordinator/coordinator.h"
#include "farm/v1/farm.grpc.pb.h"
#include "tests/coordinator/in_process_coordinator.h"
#include "tests/coordinator/test_tls.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace farm::coordinator {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class HttpPortTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CoordinatorOptions options;
    ASSERT_OK_AND_ASSIGN(ca_, ServeTestTls(dir_, options));
    options.listen = "127.0.0.1:0";
    options.http_listen = "127.0.0.1:0";
    options.http_port_file = dir_.Join("http.port");
    options.data_dir = dir_.Join("data");
    coordinator_ = std::make_unique<Coordinator>(options);
    ASSERT_OK(coordinator_->Init());
    ASSERT_OK(coordinator_->Start());
    ASSERT_OK_AND_ASSIGN(std::string port_file, testing::ReadFile(dir_.Join("http.port")));
    http_port_ = std::stoi(port_file.substr(port_file.rfind(':') + 1));
    ASSERT_OK_AND_ASSIGN(admin_cert_,
                         common::IssueClientCert(ca_.cert_pem, ca_.key_pem, "admin", "root"));
    common::ClientSecurity admin;
    admin.ca_pem = ca_.cert_pem;
    admin.cert_pem = admin_cert_.cert_pem;
    admin.key_pem = admin_cert_.key_pem;
    ASSERT_OK_AND_ASSIGN(admin_, common::MakeChannel(coordinator_->address(), admin));
  }

  std::string Token(const std::string& role, const std::string& name, std::string* id = nullptr) {
    farm::v1::CreateTokenRequest req;
    req.set_role(role);
    req.set_name(name);
    farm::v1::CreateTokenResponse resp;
    grpc::Status s = farm::v1::AdminService::NewStub(admin_)->CreateToken(Ctx().get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    if (id != nullptr) *id = resp.info().id();
    return resp.token();
  }

  // A GET over HTTPS that verifies the coordinator against the test CA; `token` empty: none.
  httplib::Result Get(const std::string& path, const std::string& token = "") {
    httplib::SSLClient client("127.0.0.1", http_port_);
    client.set_ca_cert_path(dir_.Join("ca.crt").c_str());
    client.enable_server_certificate_verification(true);
    client.set_connection_timeout(5);
    client.set_read_timeout(5);
    if (!token.empty()) client.set_bearer_token_auth(token);
    return client.Get(path.c_str());
  }

  // A request over HTTPS with `headers` (a cookie, X-Farm-CSRF, Origin); a POST when `body` is
  // given (a form's fields).
  httplib::Result Send(const std::string& path, const httplib::Headers& headers,
                       const std::optional<std::string>& body = std::nullopt) {
    httplib::SSLClient client("127.0.0.1", http_port_);
    client.set_ca_cert_path(dir_.Join("ca.crt").c_str());
    client.enable_server_certificate_verification(true);
    client.set_connection_timeout(5);
    client.set_read_timeout(10);
    if (!body.has_value()) return client.Get(path.c_str(), headers);
    return client.Post(path.c_str(), headers, *body, "application/x-www-form-urlencoded");
  }

  // Signs in with `token`; the session's cookie ("farm_session=...") and its CSRF token.
  std::pair<std::string, std::string> SignIn(const std::string& token) {
    httplib::Result r = Send("/login", {}, "token=" + token);
    EXPECT_TRUE(r) << httplib::to_string(r.error());
    if (!r || r->status != 200) return {};
    const std::string set = r->get_header_value("Set-Cookie");
    const std::string cookie = set.substr(0, set.find(';'));
    httplib::Result me = Send("/api/whoami", {{"Cookie", cookie}});
    EXPECT_TRUE(me && me->status == 200);
    const size_t at = me->body.find("\"csrf\":\"") + 8;
    return {cookie, me->body.substr(at, me->body.find('"', at) - at)};
  }

  std::string SubmitQueuedJob() {
    farm::v1::SubmitJobRequest submit;
    submit.mutable_spec()->add_steps()->set_run("true");
    (*submit.mutable_spec()->mutable_labels())["pool"] = "nobody";  // stays queued
    farm::v1::SubmitJobResponse submitted;
    EXPECT_TRUE(
        farm::v1::JobService::NewStub(admin_)->Submit(Ctx().get(), submit, &submitted).ok());
    return submitted.job_id();
  }

  testing::TempDir dir_ = *testing::TempDir::Create("farm-http-test");
  common::CertAndKey ca_;
  common::CertAndKey admin_cert_;
  std::unique_ptr<Coordinator> coordinator_;
  std::shared_ptr<grpc::Channel> admin_;
  int http_port_ = 0;
};

TEST_F(HttpPortTest, EveryPageHasAnEntryInTheAuthorizationTable) {
  const std::vector<std::string> served = HttpPort::Served();
  for (const std::string& page : served) {
    EXPECT_NE(FindAuthz(page), nullptr) << page << " has no entry in the table";
  }
  // And every page the table names is served.
  for (const AuthzEntry& e : AuthzTable()) {
    if (e.method[0] == '/') continue;  // an RPC
    EXPECT_NE(std::find(served.begin(), served.end(), e.method), served.end())
        << e.method << " is in the table but not served";
  }
}

TEST_F(HttpPortTest, HealthIsPublicAndMetricsNeedACredential) {
  httplib::Result health = Get("/healthz");
  ASSERT_TRUE(health) << httplib::to_string(health.error());
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(health->body, "ok\n");

  httplib::Result anonymous = Get("/metrics");
  ASSERT_TRUE(anonymous);
  EXPECT_EQ(anonymous->status, 401);
  EXPECT_THAT(anonymous->body, HasSubstr("no credential"));
  EXPECT_THAT(anonymous->body, Not(HasSubstr("farm_")));

  httplib::Result forged = Get("/metrics", "not-a-token");
  ASSERT_TRUE(forged);
  EXPECT_EQ(forged->status, 401);

  std::string id;
  const std::string viewer = Token("viewer", "prometheus", &id);
  httplib::Result scraped = Get("/metrics", viewer);
  ASSERT_TRUE(scraped);
  EXPECT_EQ(scraped->status, 200);
  EXPECT_EQ(scraped->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");

  farm::v1::RevokeTokenRequest revoke;
  revoke.set_id(id);
  farm::v1::RevokeTokenResponse revoked;
  ASSERT_TRUE(
      farm::v1::AdminService::NewStub(admin_)->RevokeToken(Ctx().get(), revoke, &revoked).ok());
  httplib::Result after = Get("/metrics", viewer);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 401);

  httplib::Result missing = Get("/no-such-page", Token("viewer", "v2"));
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
}

TEST_F(HttpPortTest, AClientCertificateIsACredentialToo) {
  ASSERT_OK_AND_ASSIGN(common::CertAndKey viewer,
                       common::IssueClientCert(ca_.cert_pem, ca_.key_pem, "viewer", "grafana"));
  ASSERT_OK(testing::WriteFile(dir_.Join("viewer.crt"), viewer.cert_pem));
  ASSERT_OK(testing::WriteFile(dir_.Join("viewer.key"), viewer.key_pem));
  httplib::SSLClient with_cert("127.0.0.1", http_port_, dir_.Join("viewer.crt"),
                               dir_.Join("viewer.key"));
  with_cert.set_ca_cert_path(dir_.Join("ca.crt").c_str());
  with_cert.enable_server_certificate_verification(true);
  httplib::Result r = with_cert.Get("/metrics");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200);
  EXPECT_THAT(r->body, HasSubstr("farm_build_info{version="));
}

TEST_F(HttpPortTest, MetricsCountTheCallsAndJobsTheFarmHad) {
  farm::v1::SubmitJobRequest submit;
  submit.mutable_spec()->set_name("counted");
  submit.mutable_spec()->add_steps()->set_run("true");
  (*submit.mutable_spec()->mutable_labels())["os"] = "linux";
  (*submit.mutable_spec()->mutable_labels())["arch"] = "arm64";
  farm::v1::SubmitJobResponse submitted;
  auto jobs = farm::v1::JobService::NewStub(admin_);
  ASSERT_TRUE(jobs->Submit(Ctx().get(), submit, &submitted).ok());
  farm::v1::GetJobRequest get;
  get.set_job_id("no-such-job");
  farm::v1::Job job;
  EXPECT_EQ(jobs->Get(Ctx().get(), get, &job).error_code(), grpc::StatusCode::NOT_FOUND);

  httplib::Result r = Get("/metrics", Token("viewer", "prometheus"));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_THAT(r->body, HasSubstr("\nfarm_jobs{state=\"queued\"} 1\n"));
  EXPECT_THAT(r->body, HasSubstr("\nfarm_jobs{state=\"running\"} 0\n"));
  EXPECT_THAT(r->body, HasSubstr("\nfarm_grpc_server_handled_total{service=\"farm.v1.JobService\","
                                 "method=\"Submit\",code=\"OK\"} 1\n"));
  EXPECT_THAT(r->body, HasSubstr("\nfarm_grpc_server_handled_total{service=\"farm.v1.JobService\","
                                 "method=\"Get\",code=\"NOT_FOUND\"} 1\n"));
  EXPECT_THAT(r->body, HasSubstr("\nfarm_grpc_server_handling_seconds_count{service=\"farm.v1."
                                 "JobService\",method=\"Submit\"} 1\n"));
  // The submit's group was written: at least one group, with its fsync timed.
  EXPECT_THAT(r->body, HasSubstr("\nfarm_engine_write_seconds_count "));
  EXPECT_THAT(r->body, Not(HasSubstr("\nfarm_engine_write_seconds_count 0\n")));
  EXPECT_THAT(r->body, HasSubstr("\nfarm_store_sst_bytes{family="));
  EXPECT_THAT(r->body, HasSubstr("\nfarm_cas_bytes 0\n"));
  EXPECT_THAT(r->body, HasSubstr("\nfarm_agents{state=\"idle\"} 0\n"));
  // The queue of its label set (what a Kubernetes autoscaler reads, deploy/kubernetes).
  EXPECT_THAT(r->body, HasSubstr("\nfarm_queue_depth{labels=\"arch=arm64,os=linux\"} 1\n"));
  EXPECT_THAT(r->body, HasSubstr("\nfarm_queue_paused{labels=\"arch=arm64,os=linux\"} 0\n"));
  EXPECT_THAT(r->body,
              HasSubstr("\nfarm_queue_oldest_age_seconds{labels=\"arch=arm64,os=linux\"} "));
}

TEST_F(HttpPortTest, PromtoolFindsNothingWrongWithTheExposition) {
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "promtool is not installed (Debian's prometheus package; "
                    "deploy/install-deps.sh installs it): the exposition was not checked";
  }
  farm::v1::SubmitJobRequest submit;
  submit.mutable_spec()->add_steps()->set_run("true");
  farm::v1::SubmitJobResponse submitted;
  ASSERT_TRUE(farm::v1::JobService::NewStub(admin_)->Submit(Ctx().get(), submit, &submitted).ok());
  httplib::Result r = Get("/metrics", Token("viewer", "prometheus"));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  ASSERT_OK(testing::WriteFile(dir_.Join("metrics.txt"), r->body));
  const std::string out = dir_.Join("promtool.out");
  const int rc = std::system(
      absl::StrCat("promtool check metrics < ", dir_.Join("metrics.txt"), " > ", out, " 2>&1")
          .c_str());
  ASSERT_OK_AND_ASSIGN(std::string said, testing::ReadFile(out));
  EXPECT_EQ(rc, 0) << said;
  EXPECT_EQ(said, "") << "promtool's findings on the exposition";
}

TEST_F(HttpPortTest, TheDashboardsShellIsPublicAndItsDataIsNot) {
  for (const std::string page : {"/", "/jobs", "/jobs/42", "/pipelines/p1", "/factory"}) {
    httplib::Result r = Get(page);
    ASSERT_TRUE(r) << page;
    EXPECT_EQ(r->status, 200) << page;
    EXPECT_EQ(r->get_header_value("Content-Type"), "text/html; charset=utf-8");
    EXPECT_THAT(r->body, HasSubstr("<script src=\"/static/app.js\"></script>"));
    EXPECT_THAT(r->get_header_value("Content-Security-Policy"), HasSubstr("default-src 'self'"));
  }
  httplib::Result script = Get("/static/app.js");
  ASSERT_TRUE(script);
  EXPECT_EQ(script->status, 200);
  EXPECT_EQ(script->get_header_value("Content-Type"), "text/javascript; charset=utf-8");
  EXPECT_THAT(script->body, HasSubstr("async function route()"));
  EXPECT_THAT(Get("/static/pages.js")->body, HasSubstr("class StepLog"));
  EXPECT_EQ(Get("/static/nothing.js")->status, 404);
  httplib::Result data = Get("/api/jobs");
  ASSERT_TRUE(data);
  EXPECT_EQ(data->status, 401);
  EXPECT_EQ(data->body, "{\"error\":\"sign in first\"}");
}

TEST_F(HttpPortTest, ASignInMakesASessionCookieThatEndsWithItsToken) {
  std::string id;
  const std::string token = Token("submitter", "alice", &id);
  httplib::Result r = Send("/login", {}, "token=" + token);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const std::string cookie = r->get_header_value("Set-Cookie");
  EXPECT_THAT(cookie, HasSubstr("farm_session="));
  EXPECT_THAT(cookie, HasSubstr("; HttpOnly"));
  EXPECT_THAT(cookie, HasSubstr("; Secure"));
  EXPECT_THAT(cookie, HasSubstr("; SameSite=Strict"));
  EXPECT_THAT(cookie, HasSubstr("; Max-Age=43200"));
  EXPECT_THAT(cookie, Not(HasSubstr(token)));
  const std::string session = cookie.substr(0, cookie.find(';'));
  httplib::Result me = Send("/api/whoami", {{"Cookie", session}});
  ASSERT_TRUE(me);
  EXPECT_EQ(me->status, 200);
  EXPECT_THAT(me->body, HasSubstr("\"name\":\"alice\",\"role\":\"submitter\""));
  EXPECT_THAT(me->body, HasSubstr("\"signedIn\":true"));

  EXPECT_EQ(Send("/login", {}, "token=farm_not-a-token")->status, 401);
  EXPECT_EQ(Send("/login", {{"Origin", "https://elsewhere.example"}}, "token=" + token)->status,
            403);
  EXPECT_EQ(Send("/api/whoami", {{"Cookie", "farm_session=made-up"}})->status, 401);

  farm::v1::RevokeTokenRequest revoke;
  revoke.set_id(id);
  farm::v1::RevokeTokenResponse revoked;
  ASSERT_TRUE(
      farm::v1::AdminService::NewStub(admin_)->RevokeToken(Ctx().get(), revoke, &revoked).ok());
  httplib::Result after = Send("/api/whoami", {{"Cookie", session}});
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 401);
  EXPECT_THAT(after->body, HasSubstr("sign in again"));
}

TEST_F(HttpPortTest, ActionsNeedTheirRoleAndThePagesCsrfToken) {
  const std::string job = SubmitQueuedJob();
  const std::string cancel = "/api/jobs/" + job + "/cancel";
  auto [viewer, viewer_csrf] = SignIn(Token("viewer", "val"));
  auto [submitter, csrf] = SignIn(Token("submitter", "sam"));
  ASSERT_FALSE(csrf.empty());
  // A viewer reads the job, and may not cancel it even with its page's token.
  httplib::Result read = Send("/api/jobs/" + job, {{"Cookie", viewer}});
  ASSERT_TRUE(read);
  EXPECT_EQ(read->status, 200);
  EXPECT_THAT(read->body, HasSubstr("\"state\":\"QUEUED\""));
  httplib::Result refused = Send(cancel, {{"Cookie", viewer}, {"X-Farm-CSRF", viewer_csrf}}, "");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 403);
  EXPECT_THAT(refused->body, HasSubstr("role viewer (val) may not POST /api/jobs/*"));
  // A submitter's POST without the token, with another session's, or from another site: refused.
  EXPECT_THAT(Send(cancel, {{"Cookie", submitter}}, "")->body, HasSubstr("X-Farm-CSRF"));
  EXPECT_EQ(Send(cancel, {{"Cookie", submitter}, {"X-Farm-CSRF", viewer_csrf}}, "")->status, 403);
  EXPECT_EQ(
      Send(cancel,
           {{"Cookie", submitter}, {"X-Farm-CSRF", csrf}, {"Origin", "https://elsewhere.example"}},
           "")
          ->status,
      403);
  EXPECT_THAT(Send("/api/jobs/" + job, {{"Cookie", viewer}})->body,
              HasSubstr("\"state\":\"QUEUED\""));
  // With it, the job is cancelled.
  httplib::Result done = Send(cancel, {{"Cookie", submitter}, {"X-Farm-CSRF", csrf}}, "");
  ASSERT_TRUE(done);
  EXPECT_EQ(done->status, 200) << done->body;
  EXPECT_THAT(Send("/api/jobs/" + job, {{"Cookie", viewer}})->body,
              HasSubstr("\"state\":\"CANCELLED\""));
  // A script with a bearer token needs no page token; draining an agent is for admins.
  const std::string script = Token("submitter", "ci");
  const std::string other = SubmitQueuedJob();
  EXPECT_EQ(
      Send("/api/jobs/" + other + "/cancel", {{"Authorization", "Bearer " + script}}, "")->status,
      200);
  EXPECT_EQ(
      Send("/api/agents/a1/drain", {{"Cookie", submitter}, {"X-Farm-CSRF", csrf}}, "")->status,
      403);
  httplib::Result list = Send("/api/jobs?state=cancelled", {{"Cookie", viewer}});
  ASSERT_TRUE(list);
  EXPECT_THAT(list->body, HasSubstr("\"id\":\"" + job + "\""));
  httplib::Result floor = Send("/api/floor", {{"Cookie", viewer}});
  ASSERT_TRUE(floor);
  EXPECT_EQ(floor->status, 200) << floor->body;
  EXPECT_THAT(floor->body, HasSubstr("\"series\":{\"since\":"));
}

}  // namespace
}  // namespace farm::coordinator
