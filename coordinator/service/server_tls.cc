#include "coordinator/service/server_tls.h"

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>

#include "common/channel.h"
#include "common/status_macros.h"

namespace farm::coordinator {
namespace {

struct Pems {
  std::string identity;
  std::string client_ca;
};

absl::StatusOr<Pems> ReadFiles(const ServerTls::Files& files) {
  FARM_ASSIGN_OR_RETURN(std::string cert, common::ReadPemFile(files.cert, "--tls_cert"));
  FARM_ASSIGN_OR_RETURN(std::string key, common::ReadPemFile(files.key, "--tls_key"));
  FARM_RETURN_IF_ERROR(
      common::CheckKeyPair(cert, key, "--tls_cert", files.cert, "--tls_key", files.key));
  Pems pems;
  pems.identity = common::IdentityPem(key, cert);
  if (!files.client_ca.empty()) {
    FARM_ASSIGN_OR_RETURN(pems.client_ca, common::ReadPemFile(files.client_ca, "--tls_client_ca"));
    FARM_RETURN_IF_ERROR(
        common::CheckCertificates(pems.client_ca, "--tls_client_ca", files.client_ca));
  }
  return pems;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ServerTls>> ServerTls::Create(const Files& files) {
  FARM_ASSIGN_OR_RETURN(Pems pems, ReadFiles(files));
  std::unique_ptr<ServerTls> tls(new ServerTls());
  FARM_ASSIGN_OR_RETURN(tls->material_, common::TlsMaterial::Create(pems.identity, pems.client_ca));
  grpc::experimental::TlsServerCredentialsOptions options(tls->material_->provider());
  options.watch_identity_key_cert_pairs();
  if (tls->material_->has_roots()) {
    options.watch_root_certs();
    // A caller may present a certificate (verified against the CA) or a token instead.
    options.set_cert_request_type(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  } else {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  // The handshake verifies a client's chain against the CA; the identity it carries is the
  // authenticator's business (authenticator.h), so no further check here.
  options.set_certificate_verifier(std::make_shared<grpc::experimental::NoOpCertificateVerifier>());
  tls->credentials_ = grpc::experimental::TlsServerCredentials(options);
  if (tls->credentials_ == nullptr) return absl::InternalError("cannot make TLS credentials");
  return tls;
}

absl::Status ServerTls::Reload(const Files& files) {
  FARM_ASSIGN_OR_RETURN(Pems pems, ReadFiles(files));
  return material_->Update(pems.identity, pems.client_ca);
}

}  // namespace farm::coordinator
