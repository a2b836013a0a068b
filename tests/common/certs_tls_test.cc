// The files `certs init` writes work for gRPC mutual TLS as Debian's gRPC (1.51) does it: a server
// with the coordinator's certificate that requires and verifies client certificates answers the
// standard health check of a client with the admin certificate, sees its SAN URI in the call's
// auth context, and refuses clients without a certificate or with one from another CA.
#include <grpcpp/create_channel.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/auth_metadata_processor.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <gtest/gtest.h>

#include <chrono>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/certs.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace farm::common {
namespace {

using ::farm::testing::ReadFile;
using ::farm::testing::TempDir;
using Properties = std::map<std::string, std::vector<std::string>>;

// Not an auth property: where RecordingProcessor notes the name of the property that holds the
// peer's identity (AuthContext::GetPeerIdentityPropertyName).
constexpr char kPeerIdentity[] = "(peer identity property)";

// Records the auth context's properties of every call the server lets through the handshake.
class RecordingProcessor : public grpc::AuthMetadataProcessor {
 public:
  bool IsBlocking() const override { return false; }

  grpc::Status Process(const InputMetadata& /*metadata*/, grpc::AuthContext* context,
                       OutputMetadata* /*consumed*/, OutputMetadata* /*response*/) override {
    Properties properties;
    properties[kPeerIdentity].push_back(context->GetPeerIdentityPropertyName());
    for (auto it = context->begin(); it != context->end(); ++it) {
      const grpc::AuthProperty property = *it;
      properties[std::string(property.first.data(), property.first.size())].emplace_back(
          property.second.data(), property.second.size());
    }
    absl::MutexLock lock(&mu_);
    calls_.push_back(std::move(properties));
    return grpc::Status::OK;
  }

  std::vector<Properties> calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }

 private:
  absl::Mutex mu_;
  std::vector<Properties> calls_ ABSL_GUARDED_BY(mu_);
};

std::string Join(const std::vector<std::string>& values) { return absl::StrJoin(values, " | "); }

class CertsTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<TempDir> temp = TempDir::Create("certs-tls-test");
    ASSERT_TRUE(temp.ok()) << temp.status();
    temp_ = std::make_unique<TempDir>(*std::move(temp));
    ASSERT_OK(InitCerts({temp_->path()}));
    ca_ = Read(kCaCertFile);

    grpc::SslServerCredentialsOptions options(
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    options.pem_root_certs = ca_;
    options.pem_key_cert_pairs.push_back({Read(kCoordinatorKeyFile), Read(kCoordinatorCertFile)});
    std::shared_ptr<grpc::ServerCredentials> credentials = grpc::SslServerCredentials(options);
    processor_ = std::make_shared<RecordingProcessor>();
    credentials->SetAuthMetadataProcessor(processor_);
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    // A callback service of some kind, so that the server polls for the health service's calls;
    // the generic one answers every other method UNIMPLEMENTED.
    builder.RegisterCallbackGenericService(&unimplemented_);
    builder.AddListeningPort("127.0.0.1:0", credentials, &port_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now());
  }

  std::string Read(const char* name) { return ReadFile(temp_->Join(name)).value_or(""); }

  // grpc.health.v1.Health/Check on `host`:PORT through `credentials` (expecting the server's
  // certificate to name `name_override` when given, else `host`); the response's bytes.
  absl::StatusOr<std::string> HealthCheck(
      const std::string& host, const std::shared_ptr<grpc::ChannelCredentials>& credentials,
      const std::string& name_override = "") {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // no connection shared across tests
    if (!name_override.empty()) args.SetSslTargetNameOverride(name_override);
    grpc::GenericStub stub(
        grpc::CreateCustomChannel(absl::StrCat(host, ":", port_), credentials, args));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::Slice empty(std::string{});
    grpc::ByteBuffer request(&empty, 1);  // an empty HealthCheckRequest: the whole server
    grpc::ByteBuffer response;
    grpc::Status status;
    absl::Notification done;
    stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request,
                   &response, [&](grpc::Status s) {
                     status = std::move(s);
                     done.Notify();
                   });
    if (!done.WaitForNotificationWithTimeout(absl::Seconds(30))) {
      return absl::DeadlineExceededError("the call never finished");
    }
    if (!status.ok()) {
      return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                          status.error_message());
    }
    std::vector<grpc::Slice> slices;
    if (!response.Dump(&slices).ok()) return absl::InternalError("unreadable response");
    std::string bytes;
    for (const grpc::Slice& s : slices)
      bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    return bytes;
  }

  std::shared_ptr<grpc::ChannelCredentials> ClientCredentials(const std::string& cert,
                                                              const std::string& key) {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = ca_;
    options.pem_cert_chain = cert;
    options.pem_private_key = key;
    return grpc::SslCredentials(options);
  }

  std::unique_ptr<TempDir> temp_;
  std::string ca_;
  std::shared_ptr<RecordingProcessor> processor_;
  grpc::CallbackGenericService unimplemented_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

// HealthCheckResponse{status: SERVING (1)}: field 1, varint 1.
const std::string kServing("\x08\x01", 2);

TEST_F(CertsTlsTest, TheAdminCertificateGetsThroughAndIsKnownByItsSanUri) {
  const auto admin = ClientCredentials(Read(kAdminCertFile), Read(kAdminKeyFile));
  for (const char* host : {"localhost", "127.0.0.1"}) {
    EXPECT_THAT(HealthCheck(host, admin), ::farm::testing::IsOkAndHolds(kServing)) << host;
  }
  const std::vector<Properties> calls = processor_->calls();
  ASSERT_EQ(calls.size(), 2u);
  for (const Properties& call : calls) {
    std::string all;
    for (const auto& [name, values] : call) {
      if (name != "x509_pem_cert") absl::StrAppend(&all, "\n  ", name, ": ", Join(values));
    }
    SCOPED_TRACE(all);
    ASSERT_TRUE(call.count("x509_subject_alternative_name"));
    EXPECT_EQ(Join(call.at("x509_subject_alternative_name")), "farm://admin/admin");
    ASSERT_TRUE(call.count("peer_uri"));
    EXPECT_EQ(Join(call.at("peer_uri")), "farm://admin/admin");
    EXPECT_EQ(Join(call.at("transport_security_type")), "ssl");
    EXPECT_EQ(Join(call.at(kPeerIdentity)), "x509_subject_alternative_name");
  }
  // For the team: every property 1.51 gives the server, once.
  for (const auto& [name, values] : calls[0]) {
    if (name != "x509_pem_cert")
      std::cout << "auth property " << name << ": " << Join(values) << "\n";
  }
}

TEST_F(CertsTlsTest, AClientWithoutACertificateIsRefused) {
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = ca_;
  const absl::StatusOr<std::string> result =
      HealthCheck("127.0.0.1", grpc::SslCredentials(options));
  EXPECT_FALSE(result.ok());
  std::cout << "without a client certificate: " << result.status() << "\n";
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable) << result.status();
  EXPECT_TRUE(processor_->calls().empty());
}

TEST_F(CertsTlsTest, ACertificateFromAnotherCaIsRefused) {
  ASSERT_OK_AND_ASSIGN(const CertAndKey other_ca, CreateCa("another CA"));
  ASSERT_OK_AND_ASSIGN(const CertAndKey intruder,
                       IssueClientCert(other_ca.cert_pem, other_ca.key_pem, kRoleAdmin, "admin"));
  const absl::StatusOr<std::string> result =
      HealthCheck("127.0.0.1", ClientCredentials(intruder.cert_pem, intruder.key_pem));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable) << result.status();
  EXPECT_TRUE(processor_->calls().empty());
  // The same server still serves a certificate of its own CA.
  ASSERT_OK_AND_ASSIGN(const CertAndKey agent,
                       IssueClientCert(ca_, Read(kCaKeyFile), kRoleAgent, "builder-7"));
  EXPECT_THAT(HealthCheck("localhost", ClientCredentials(agent.cert_pem, agent.key_pem)),
              ::farm::testing::IsOkAndHolds(kServing));
  ASSERT_EQ(processor_->calls().size(), 1u);
  EXPECT_EQ(Join(processor_->calls()[0].at("x509_subject_alternative_name")),
            "farm://agent/builder-7");
}

TEST_F(CertsTlsTest, TheClientRefusesAServerForAHostItsCertificateDoesNotName) {
  const auto admin = ClientCredentials(Read(kAdminCertFile), Read(kAdminKeyFile));
  const absl::StatusOr<std::string> result = HealthCheck("127.0.0.1", admin, "farm.example.com");
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable) << result.status();
  EXPECT_TRUE(processor_->calls().empty());
}

}  // namespace
}  // namespace farm::common
