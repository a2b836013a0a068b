#include "tests/bench/bench_security.h"

#include <grpcpp/grpcpp.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/certs.h"
#include "common/channel.h"
#include "common/status_macros.h"

namespace farm::bench {

std::shared_ptr<const BenchSecurity> BenchSecurity::Plaintext(bool insecure_flag) {
  auto security = std::shared_ptr<BenchSecurity>(new BenchSecurity());
  security->insecure_flag_ = insecure_flag;
  return security;
}

absl::StatusOr<std::shared_ptr<const BenchSecurity>> BenchSecurity::Tls() {
  auto security = std::shared_ptr<BenchSecurity>(new BenchSecurity());
  FARM_ASSIGN_OR_RETURN(testing::TempDir dir, testing::TempDir::Create("farm-bench-certs"));
  security->certs_ = std::make_shared<testing::TempDir>(std::move(dir));
  common::CertsOptions options;
  options.dir = security->certs_->Join("certs");
  options.hosts = {"127.0.0.1"};
  FARM_RETURN_IF_ERROR(common::InitCerts(options));
  FARM_ASSIGN_OR_RETURN(security->ca_pem_,
                        common::ReadPemFile(options.dir + "/" + common::kCaCertFile, "ca"));
  FARM_ASSIGN_OR_RETURN(security->admin_cert_pem_,
                        common::ReadPemFile(options.dir + "/" + common::kAdminCertFile, "admin"));
  FARM_ASSIGN_OR_RETURN(security->admin_key_pem_,
                        common::ReadPemFile(options.dir + "/" + common::kAdminKeyFile, "admin"));
  return security;
}

std::vector<std::string> BenchSecurity::CoordinatorFlags() const {
  if (!tls())
    return insecure_flag_ ? std::vector<std::string>{"--insecure"} : std::vector<std::string>{};
  const std::string dir = certs_->Join("certs/");
  return {absl::StrCat("--tls_cert=", dir, common::kCoordinatorCertFile),
          absl::StrCat("--tls_key=", dir, common::kCoordinatorKeyFile),
          absl::StrCat("--tls_client_ca=", dir, common::kCaCertFile)};
}

absl::StatusOr<std::vector<std::string>> BenchSecurity::AgentFlags(const std::string& name,
                                                                   const std::string& dir) const {
  if (!tls()) return CoordinatorFlags();
  FARM_ASSIGN_OR_RETURN(
      std::string ca_key,
      common::ReadPemFile(certs_->Join(absl::StrCat("certs/", common::kCaKeyFile)), "ca key"));
  FARM_ASSIGN_OR_RETURN(common::CertAndKey issued,
                        common::IssueClientCert(ca_pem_, ca_key, "agent", name));
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const std::string cert = dir + "/agent.crt";
  const std::string key = dir + "/agent.key";
  FARM_RETURN_IF_ERROR(testing::WriteFile(cert, issued.cert_pem));
  FARM_RETURN_IF_ERROR(testing::WriteFile(key, issued.key_pem));
  return std::vector<std::string>{
      absl::StrCat("--tls_ca=", certs_->Join("certs/"), common::kCaCertFile),
      absl::StrCat("--tls_cert=", cert), absl::StrCat("--tls_key=", key)};
}

std::shared_ptr<grpc::ChannelCredentials> BenchSecurity::ClientCredentials() const {
  if (!tls()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ca_pem_;
  ssl.pem_cert_chain = admin_cert_pem_;
  ssl.pem_private_key = admin_key_pem_;
  return grpc::SslCredentials(ssl);
}

}  // namespace farm::bench
