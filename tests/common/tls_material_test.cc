#include "common/tls_material.h"

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/certs.h"
#include "tests/testing/mini_farm.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/tls_probe.h"

namespace farm::common {
namespace {

using ::farm::testing::CertificateSerial;
using ::farm::testing::ServedCertificateSerial;
using ::farm::testing::StatusIs;

class TlsMaterialTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(ca_, CreateCa("test CA"));
    ASSERT_OK_AND_ASSIGN(first_, IssueServerCert(ca_.cert_pem, ca_.key_pem, {"127.0.0.1"}));
    ASSERT_OK_AND_ASSIGN(second_, IssueServerCert(ca_.cert_pem, ca_.key_pem, {"127.0.0.1"}));
  }

  // A gRPC server on 127.0.0.1:0 whose TLS identity comes from `material`.
  void Serve(TlsMaterial& material) {
    grpc::experimental::TlsServerCredentialsOptions options(material.provider());
    options.watch_identity_key_cert_pairs();
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    options.set_certificate_verifier(
        std::make_shared<grpc::experimental::NoOpCertificateVerifier>());
    grpc::ServerBuilder builder;
    builder.RegisterCallbackGenericService(&unimplemented_);
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::experimental::TlsServerCredentials(options),
                             &port);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    address_ = absl::StrCat("127.0.0.1:", port);
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  CertAndKey ca_, first_, second_;
  grpc::CallbackGenericService unimplemented_;  // a server needs a service
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

TEST_F(TlsMaterialTest, NewConnectionsGetWhatUpdateServes) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<TlsMaterial> material,
                       TlsMaterial::Create(IdentityPem(first_.key_pem, first_.cert_pem), ""));
  EXPECT_TRUE(material->has_identity());
  EXPECT_FALSE(material->has_roots());
  Serve(*material);
  ASSERT_OK_AND_ASSIGN(std::string first_serial, CertificateSerial(first_.cert_pem));
  ASSERT_OK_AND_ASSIGN(std::string second_serial, CertificateSerial(second_.cert_pem));
  EXPECT_EQ(ServedCertificateSerial(address_).value_or(""), first_serial);

  ASSERT_OK(material->Update(IdentityPem(second_.key_pem, second_.cert_pem), ""));
  ASSERT_OK(farm::testing::WaitFor(
      [&] { return ServedCertificateSerial(address_).value_or("") == second_serial; },
      absl::Seconds(10), "the new certificate"));
  // And again: every generation is picked up, not only the first change.
  ASSERT_OK(material->Update(IdentityPem(first_.key_pem, first_.cert_pem), ""));
  ASSERT_OK(farm::testing::WaitFor(
      [&] { return ServedCertificateSerial(address_).value_or("") == first_serial; },
      absl::Seconds(10), "the first certificate again"));
}

TEST_F(TlsMaterialTest, UpdateCannotAddOrRemoveAPart) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<TlsMaterial> material,
                       TlsMaterial::Create(IdentityPem(first_.key_pem, first_.cert_pem), ""));
  EXPECT_THAT(material->Update(IdentityPem(first_.key_pem, first_.cert_pem), ca_.cert_pem),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(material->Update("", ""), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(TlsChecksTest, AKeyMustBelongToItsCertificate) {
  ASSERT_OK_AND_ASSIGN(CertAndKey ca, CreateCa("test CA"));
  ASSERT_OK_AND_ASSIGN(CertAndKey a, IssueServerCert(ca.cert_pem, ca.key_pem, {"localhost"}));
  ASSERT_OK_AND_ASSIGN(CertAndKey b, IssueServerCert(ca.cert_pem, ca.key_pem, {"localhost"}));
  EXPECT_OK(CheckKeyPair(a.cert_pem, a.key_pem, "--tls_cert", "a.crt", "--tls_key", "a.key"));
  absl::Status mismatch =
      CheckKeyPair(a.cert_pem, b.key_pem, "--tls_cert", "a.crt", "--tls_key", "b.key");
  EXPECT_EQ(mismatch.message(), "--tls_key: b.key is not the key of the certificate in a.crt");
  EXPECT_EQ(CheckKeyPair("junk", a.key_pem, "--tls_cert", "a.crt", "--tls_key", "a.key").message(),
            "--tls_cert: a.crt holds no certificate");
  EXPECT_EQ(
      CheckKeyPair(a.cert_pem, a.cert_pem, "--tls_cert", "a.crt", "--tls_key", "a.key").message(),
      "--tls_key: a.key holds no private key");
  EXPECT_OK(CheckCertificates(ca.cert_pem, "--tls_ca", "ca.crt"));
  EXPECT_EQ(CheckCertificates(a.key_pem, "--tls_ca", "ca.crt").message(),
            "--tls_ca: ca.crt holds no certificate");
}

}  // namespace
}  // namespace farm::common
