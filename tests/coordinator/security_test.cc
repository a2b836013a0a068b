// Service tests of the farm's security edge: the real Coordinator in-process with TLS on
// 127.0.0.1:0, callers identified by client certificates (made by common/certs.h) and tokens.
// What a caller without the right identity sees: no credential, a certificate from another CA,
// plaintext against the TLS port, expired and revoked tokens; every RPC × role against the
// authorization table; an agent acting on another agent's lease; enrollment and pinned labels
// (and an operator's labels over them).
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "build/bazel/remote/execution/v2/remote_execution.pb.h"
#include "common/certs.h"
#include "common/channel.h"
#include "coordinator/auth/authz_table.h"
#include "coordinator/coordinator.h"
#include "farm/v1/farm.grpc.pb.h"
#include "google/bytestream/bytestream.pb.h"
#include "tests/coordinator/test_tls.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace farm::coordinator {
namespace {

std::unique_ptr<grpc::ClientContext> Ctx(int seconds = 10) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  return ctx;
}

// One call of `method` with an empty request message, through the generic API (so that every
// RPC of every service can be called alike): its status. A streaming answer is read to the end.
grpc::Status CallGeneric(grpc::Channel* channel, const std::string& method) {
  grpc::GenericStub stub(channel->shared_from_this());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(1500));
  grpc::CompletionQueue cq;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call = stub.PrepareCall(&ctx, method, &cq);
  void* tag = nullptr;
  bool ok = false;
  auto step = [&](void* want) {
    EXPECT_TRUE(cq.Next(&tag, &ok));
    EXPECT_EQ(tag, want);
    return ok;
  };
  call->StartCall(reinterpret_cast<void*>(1));
  if (step(reinterpret_cast<void*>(1))) {
    grpc::ByteBuffer empty;
    grpc::Slice nothing("", 0);
    empty = grpc::ByteBuffer(&nothing, 1);
    call->Write(empty, reinterpret_cast<void*>(2));
    if (step(reinterpret_cast<void*>(2))) {
      call->WritesDone(reinterpret_cast<void*>(3));
      step(reinterpret_cast<void*>(3));
    }
    grpc::ByteBuffer answer;
    do {
      call->Read(&answer, reinterpret_cast<void*>(4));
    } while (step(reinterpret_cast<void*>(4)));
  }
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  step(reinterpret_cast<void*>(5));
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return status;
}

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CoordinatorOptions options;
    ASSERT_OK_AND_ASSIGN(ca_, ServeTestTls(dir_, options));
    options.listen = "127.0.0.1:0";
    options.data_dir = dir_.Join("data");
    options.lease_ttl_ms = 5000;
    coordinator_ = std::make_unique<Coordinator>(options);
    ASSERT_OK(coordinator_->Init());
    ASSERT_OK(coordinator_->Start());
    ASSERT_OK_AND_ASSIGN(common::CertAndKey admin,
                         common::IssueClientCert(ca_.cert_pem, ca_.key_pem, "admin", "root"));
    admin_ = Channel(WithCert(admin));
  }

  common::ClientSecurity WithCert(const common::CertAndKey& cert) const {
    common::ClientSecurity s;
    s.ca_pem = ca_.cert_pem;
    s.cert_pem = cert.cert_pem;
    s.key_pem = cert.key_pem;
    return s;
  }
  common::ClientSecurity WithToken(const std::string& token) const {
    common::ClientSecurity s;
    s.ca_pem = ca_.cert_pem;
    s.token = token;
    return s;
  }
  std::shared_ptr<grpc::Channel> Channel(const common::ClientSecurity& security) const {
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
        common::MakeChannel(coordinator_->address(), security);
    EXPECT_OK(channel);
    return channel.ok() ? *channel : nullptr;
  }

  // A token made by the admin; its text.
  std::string Token(const std::string& role, const std::string& name, int64_t ttl_ms = 0,
                    std::string* id = nullptr) {
    farm::v1::CreateTokenRequest req;
    req.set_role(role);
    req.set_name(name);
    req.set_ttl_ms(ttl_ms);
    farm::v1::CreateTokenResponse resp;
    grpc::Status s = farm::v1::AdminService::NewStub(admin_)->CreateToken(Ctx().get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(resp.info().created_by(), "root");
    if (id != nullptr) *id = resp.info().id();
    return resp.token();
  }

  static grpc::StatusCode ListCode(const std::shared_ptr<grpc::Channel>& channel) {
    farm::v1::ListJobsResponse resp;
    return farm::v1::JobService::NewStub(channel)
        ->List(Ctx().get(), farm::v1::ListJobsRequest(), &resp)
        .error_code();
  }

  testing::TempDir dir_ = *testing::TempDir::Create("farm-security-test");
  common::CertAndKey ca_;
  std::unique_ptr<Coordinator> coordinator_;
  std::shared_ptr<grpc::Channel> admin_;
};

TEST_F(SecurityTest, AClientWithoutACredentialIsRefusedButHealthAnswers) {
  common::ClientSecurity nothing;
  nothing.ca_pem = ca_.cert_pem;
  std::shared_ptr<grpc::Channel> channel = Channel(nothing);
  farm::v1::ListJobsResponse resp;
  grpc::Status s =
      farm::v1::JobService::NewStub(channel)->List(Ctx().get(), farm::v1::ListJobsRequest(), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  EXPECT_NE(s.error_message().find("no credential"), std::string::npos) << s.error_message();
  // Probes carry no credential.
  EXPECT_TRUE(CallGeneric(channel.get(), "/grpc.health.v1.Health/Check").ok());
}

TEST_F(SecurityTest, ACertificateFromAnotherCaIsRefused) {
  ASSERT_OK_AND_ASSIGN(common::CertAndKey other_ca, common::CreateCa("someone else's CA"));
  ASSERT_OK_AND_ASSIGN(
      common::CertAndKey forged,
      common::IssueClientCert(other_ca.cert_pem, other_ca.key_pem, "admin", "root"));
  EXPECT_EQ(ListCode(Channel(WithCert(forged))), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(ListCode(admin_), grpc::StatusCode::OK);
}

TEST_F(SecurityTest, PlaintextAgainstTheTlsPortIsRefused) {
  ASSERT_OK_AND_ASSIGN(std::shared_ptr<grpc::Channel> plain,
                       common::MakeChannel(coordinator_->address()));
  EXPECT_EQ(ListCode(plain), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(SecurityTest, ARevokedTokenIsRefusedOnItsNextCall) {
  std::string id;
  std::shared_ptr<grpc::Channel> ci = Channel(WithToken(Token("viewer", "ci", 0, &id)));
  EXPECT_EQ(ListCode(ci), grpc::StatusCode::OK);
  farm::v1::RevokeTokenRequest req;
  req.set_id(id);
  farm::v1::RevokeTokenResponse resp;
  ASSERT_TRUE(farm::v1::AdminService::NewStub(admin_)->RevokeToken(Ctx().get(), req, &resp).ok());
  EXPECT_EQ(resp.revoked().name(), "ci");
  EXPECT_EQ(ListCode(ci), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(SecurityTest, AnExpiredTokenIsRefused) {
  std::shared_ptr<grpc::Channel> brief = Channel(WithToken(Token("viewer", "brief", 1000)));
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  grpc::StatusCode code = ListCode(brief);
  while (code == grpc::StatusCode::OK && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
    code = ListCode(brief);
  }
  EXPECT_EQ(code, grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(ListCode(Channel(WithToken("farm_madeup"))), grpc::StatusCode::UNAUTHENTICATED);
}

// Every method of every service the coordinator serves, called by each role (and by nobody):
// refused exactly where the table says, and never refused where it allows.
TEST_F(SecurityTest, EveryRpcAndRoleGetsTheTablesVerdict) {
  std::map<Role, std::shared_ptr<grpc::Channel>> by_role;
  for (Role role : {Role::kViewer, Role::kSubmitter, Role::kAgent, Role::kAdmin}) {
    const std::string name(RoleName(role));
    by_role[role] = Channel(WithToken(Token(name, absl::StrCat("walker-", name))));
  }
  common::ClientSecurity nobody;
  nobody.ca_pem = ca_.cert_pem;
  std::shared_ptr<grpc::Channel> anonymous = Channel(nobody);
  std::set<std::string> methods;
  for (const std::string& service : coordinator_->ServedServices()) {
    const google::protobuf::ServiceDescriptor* d =
        google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(service);
    if (service == "grpc.health.v1.Health") {
      methods.insert({"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"});
      continue;
    }
    ASSERT_NE(d, nullptr) << service;
    for (int m = 0; m < d->method_count(); ++m) {
      methods.insert(absl::StrCat("/", service, "/", d->method(m)->name()));
    }
  }
  ASSERT_GE(methods.size(), 30u);
  for (const std::string& method : methods) {
    const AuthzEntry* entry = FindAuthz(method);
    ASSERT_NE(entry, nullptr) << method << " is served but has no entry in the table";
    for (const auto& [role, channel] : by_role) {
      const grpc::Status s = CallGeneric(channel.get(), method);
      if (entry->allowed[static_cast<int>(role)]) {
        EXPECT_NE(s.error_code(), grpc::StatusCode::PERMISSION_DENIED)
            << method << " as " << RoleName(role) << ": " << s.error_message();
        EXPECT_NE(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << method;
      } else {
        EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED)
            << method << " as " << RoleName(role) << ": " << s.error_message();
      }
    }
    const grpc::Status s = CallGeneric(anonymous.get(), method);
    if (entry->is_public) {
      EXPECT_NE(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << method;
    } else {
      EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << method;
    }
  }
}

// An agent (a valid token, another name) cannot register as another agent, nor act on a lease
// granted to another agent's identity, even with the right epoch; nothing changes.
TEST_F(SecurityTest, AnAgentCannotActAsAnotherAgentOrOnItsLease) {
  auto a1 = farm::v1::AgentService::NewStub(Channel(WithToken(Token("agent", "a1"))));
  auto intruder = farm::v1::AgentService::NewStub(Channel(WithToken(Token("agent", "intruder"))));
  farm::v1::RegisterRequest reg;
  reg.set_name("a1");
  reg.set_slots(1);
  reg.set_session_id("s1");
  farm::v1::RegisterResponse reg_resp;
  grpc::Status s = intruder->Register(Ctx().get(), reg, &reg_resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
  ASSERT_TRUE(a1->Register(Ctx().get(), reg, &reg_resp).ok());

  farm::v1::SubmitJobRequest submit;
  submit.mutable_spec()->set_name("secret-build");
  submit.mutable_spec()->add_steps()->set_run("true");
  farm::v1::SubmitJobResponse submitted;
  auto jobs = farm::v1::JobService::NewStub(admin_);
  ASSERT_TRUE(jobs->Submit(Ctx().get(), submit, &submitted).ok());

  farm::v1::LeaseRequest lease_req;
  lease_req.set_agent("a1");
  lease_req.set_session_id("s1");
  lease_req.set_wait_ms(5000);
  farm::v1::LeaseResponse leased;
  s = intruder->Lease(Ctx().get(), lease_req, &leased);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
  ASSERT_TRUE(a1->Lease(Ctx().get(), lease_req, &leased).ok());
  ASSERT_EQ(leased.job().id(), submitted.job_id());
  const farm::v1::LeaseRef ref = leased.lease();

  farm::v1::HeartbeatRequest hb;
  hb.set_agent("a1");
  hb.set_session_id("s1");
  *hb.add_leases() = ref;
  farm::v1::HeartbeatResponse hb_resp;
  EXPECT_EQ(intruder->Heartbeat(Ctx().get(), hb, &hb_resp).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  farm::v1::StepStartedRequest started;
  *started.mutable_lease() = ref;
  farm::v1::Ack ack;
  EXPECT_EQ(intruder->StepStarted(Ctx().get(), started, &ack).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  farm::v1::StepFinishedRequest finished;
  *finished.mutable_lease() = ref;
  finished.mutable_result()->set_state(farm::v1::STEP_FAILED);
  EXPECT_EQ(intruder->StepFinished(Ctx().get(), finished, &ack).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  {
    farm::v1::LogUploadResponse up;
    auto ctx = Ctx();
    auto writer = intruder->UploadLogs(ctx.get(), &up);
    farm::v1::LogUploadChunk chunk;
    *chunk.mutable_lease() = ref;
    chunk.set_data("forged output\n");
    writer->Write(chunk);
    writer->WritesDone();
    EXPECT_EQ(writer->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);
  }
  farm::v1::CompleteJobRequest complete;
  *complete.mutable_lease() = ref;
  complete.set_outcome(farm::v1::ATTEMPT_FAILED);
  farm::v1::CompleteJobResponse done;
  EXPECT_EQ(intruder->CompleteJob(Ctx().get(), complete, &done).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  // Nothing changed: the job runs, its step pending, no output; its holder finishes it.
  farm::v1::GetJobRequest get;
  get.set_job_id(submitted.job_id());
  farm::v1::Job job;
  ASSERT_TRUE(jobs->Get(Ctx().get(), get, &job).ok());
  EXPECT_EQ(job.state(), farm::v1::RUNNING);
  EXPECT_EQ(job.attempts(0).steps(0).state(), farm::v1::STEP_PENDING);
  EXPECT_EQ(job.attempts(0).steps(0).log_bytes(), 0);
  complete.set_outcome(farm::v1::ATTEMPT_SUCCEEDED);
  ASSERT_TRUE(a1->CompleteJob(Ctx().get(), complete, &done).ok());
  ASSERT_TRUE(jobs->Get(Ctx().get(), get, &job).ok());
  EXPECT_EQ(job.state(), farm::v1::SUCCEEDED);
}

// Enrollment at the edge: Enroll needs no credential (the enrollment token is one), works once,
// and the enrolled agent registers only with the labels the enrollment token pinned; the
// enrollment token itself is no credential.
TEST_F(SecurityTest, AnEnrolledAgentRegistersOnlyWithItsPinnedLabels) {
  farm::v1::CreateEnrollTokenRequest create;
  (*create.mutable_labels())["pool"] = "x";
  farm::v1::CreateEnrollTokenResponse enrollment;
  ASSERT_TRUE(farm::v1::AdminService::NewStub(admin_)
                  ->CreateEnrollToken(Ctx().get(), create, &enrollment)
                  .ok());
  EXPECT_EQ(ListCode(Channel(WithToken(enrollment.token()))), grpc::StatusCode::UNAUTHENTICATED);

  common::ClientSecurity nobody;
  nobody.ca_pem = ca_.cert_pem;
  auto anonymous = farm::v1::AgentService::NewStub(Channel(nobody));
  farm::v1::EnrollRequest enroll;
  enroll.set_enroll_token(enrollment.token());
  enroll.set_name("pooled");
  enroll.set_request_id("r1");
  farm::v1::EnrollResponse enrolled;
  grpc::Status s = anonymous->Enroll(Ctx().get(), enroll, &enrolled);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(enrolled.info().name(), "pooled");
  enroll.set_name("second");
  enroll.set_request_id("r2");
  s = anonymous->Enroll(Ctx().get(), enroll, &enrolled);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
  EXPECT_NE(s.error_message().find(enrollment.info().id()), std::string::npos);

  auto agent = farm::v1::AgentService::NewStub(Channel(WithToken(enrolled.token())));
  farm::v1::RegisterRequest reg;
  reg.set_name("pooled");
  reg.set_slots(1);
  reg.set_session_id("s1");
  (*reg.mutable_labels())["pool"] = "secure";
  farm::v1::RegisterResponse reg_resp;
  s = agent->Register(Ctx().get(), reg, &reg_resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
  EXPECT_NE(s.error_message().find("pool=secure"), std::string::npos) << s.error_message();
  (*reg.mutable_labels())["pool"] = "x";
  (*reg.mutable_labels())["os"] = "linux";
  s = agent->Register(Ctx().get(), reg, &reg_resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
}

// Pinned labels bound what the agent claims, not what an operator decides: an admin may change
// a pinned label (and it holds across the agent's registrations), the agent may not, neither by
// registering nor through the admin command.
TEST_F(SecurityTest, AnOperatorMayChangeAnEnrolledAgentsPinnedLabelsTheAgentMayNot) {
  farm::v1::CreateEnrollTokenRequest create;
  (*create.mutable_labels())["pool"] = "x";
  farm::v1::CreateEnrollTokenResponse enrollment;
  auto admin = farm::v1::AdminService::NewStub(admin_);
  ASSERT_TRUE(admin->CreateEnrollToken(Ctx().get(), create, &enrollment).ok());
  common::ClientSecurity nobody;
  nobody.ca_pem = ca_.cert_pem;
  farm::v1::EnrollRequest enroll;
  enroll.set_enroll_token(enrollment.token());
  enroll.set_name("pooled");
  enroll.set_request_id("r1");
  farm::v1::EnrollResponse enrolled;
  ASSERT_TRUE(farm::v1::AgentService::NewStub(Channel(nobody))
                  ->Enroll(Ctx().get(), enroll, &enrolled)
                  .ok());
  std::shared_ptr<grpc::Channel> as_agent = Channel(WithToken(enrolled.token()));
  auto agent = farm::v1::AgentService::NewStub(as_agent);
  farm::v1::RegisterRequest reg;
  reg.set_name("pooled");
  reg.set_slots(1);
  reg.set_session_id("s1");
  (*reg.mutable_labels())["pool"] = "x";
  farm::v1::RegisterResponse reg_resp;
  ASSERT_TRUE(agent->Register(Ctx().get(), reg, &reg_resp).ok());

  farm::v1::LabelAgentRequest label;
  label.set_name("pooled");
  (*label.mutable_set())["pool"] = "y";
  farm::v1::LabelAgentResponse labelled;
  grpc::Status s =
      farm::v1::AdminService::NewStub(as_agent)->LabelAgent(Ctx().get(), label, &labelled);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
  s = admin->LabelAgent(Ctx().get(), label, &labelled);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(labelled.agent().labels().at("pool"), "y");

  // The agent claims pool=y itself: refused, as before. Its pinned pool=x is accepted, and the
  // operator's pool=y still holds.
  reg.set_session_id("s2");
  (*reg.mutable_labels())["pool"] = "y";
  s = agent->Register(Ctx().get(), reg, &reg_resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
  (*reg.mutable_labels())["pool"] = "x";
  ASSERT_TRUE(agent->Register(Ctx().get(), reg, &reg_resp).ok());
  farm::v1::ListAgentsResponse agents;
  ASSERT_TRUE(admin->ListAgents(Ctx().get(), farm::v1::ListAgentsRequest(), &agents).ok());
  ASSERT_EQ(agents.agents_size(), 1);
  EXPECT_EQ(agents.agents(0).labels().at("pool"), "y");
  EXPECT_EQ(agents.agents(0).operator_labels().at("pool"), "y");
}

TEST(SecurityOptionsTest, TheCoordinatorNeedsTlsOrInsecureAndInsecureOnlyOnLoopback) {
  CoordinatorOptions o;
  o.listen = "127.0.0.1:0";
  o.data_dir = "/nonexistent";
  EXPECT_THAT(o.Validate(), testing::StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                                         ::testing::HasSubstr("--tls_cert")));
  o.insecure = true;
  EXPECT_OK(o.Validate());
  for (const char* listen : {"[::1]:0", "localhost:0", "127.0.0.2:7070"}) {
    o.listen = listen;
    EXPECT_TRUE(o.Validate().ok()) << listen << ": " << o.Validate();
  }
  for (const char* listen : {"0.0.0.0:7070", "10.1.2.3:7070", "[::]:7070", "build.example:7070"}) {
    o.listen = listen;
    EXPECT_THAT(o.Validate(), testing::StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                                           ::testing::HasSubstr("loopback")))
        << listen;
  }
  o.listen = "127.0.0.1:0";
  o.tls_cert_file = "server.crt";
  EXPECT_THAT(o.Validate(),
              testing::StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                           ::testing::HasSubstr("cannot be combined")));
}

}  // namespace
}  // namespace farm::coordinator
