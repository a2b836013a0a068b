#include "common/channel.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <grpcpp/support/channel_arguments.h>

#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/tls_material.h"

namespace farm::common {
namespace {

absl::StatusOr<std::string> ReadSmallFile(const std::string& path, absl::string_view flag,
                                          size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot read ", path));
  }
  std::string text(max_bytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": ", path, " is larger than ", max_bytes, " bytes"));
  }
  return text;
}

absl::StatusOr<std::string> CheckToken(std::string token, absl::string_view source) {
  token = std::string(absl::StripAsciiWhitespace(token));
  if (token.empty())
    return absl::InvalidArgumentError(absl::StrCat(source, ": the token is empty"));
  if (token.size() > kMaxTokenBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": the token is longer than ", kMaxTokenBytes, " bytes"));
  }
  for (char c : token) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": the token holds whitespace or a control character"));
    }
  }
  return token;
}

grpc::ChannelArguments Arguments() {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxGrpcMessageBytes);
  args.SetMaxSendMessageSize(kMaxGrpcMessageBytes);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, kKeepaliveTimeMs);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, kKeepaliveTimeoutMs);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // Reconnect quickly after a coordinator restart.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2'000);
  return args;
}

}  // namespace

absl::StatusOr<std::string> ReadPemFile(const std::string& path, absl::string_view flag) {
  FARM_ASSIGN_OR_RETURN(std::string pem, ReadSmallFile(path, flag, 1 << 20));
  if (pem.find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", path, " is not a PEM file"));
  }
  return pem;
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& path, absl::string_view flag) {
  FARM_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(path, flag, kMaxTokenBytes + 64));
  return CheckToken(std::move(text), flag);
}

absl::StatusOr<ClientSecurity> LoadClientSecurity(const ClientSecurityFlags& flags,
                                                  const EnvLookup& getenv) {
  ClientSecurity out;
  if (flags.insecure) {
    if (!flags.tls_ca.empty() || !flags.tls_cert.empty() || !flags.tls_key.empty() ||
        !flags.token_file.empty()) {
      return absl::InvalidArgumentError(
          "--insecure speaks plaintext and sends no credentials: it cannot be combined with "
          "--tls_ca, --tls_cert, --tls_key or --token_file");
    }
    out.insecure = true;
    return out;
  }
  std::string ca = flags.tls_ca;
  if (ca.empty() && getenv("FARM_TLS_CA") != nullptr) ca = getenv("FARM_TLS_CA");
  if (ca.empty()) {
    return absl::InvalidArgumentError(
        "the coordinator is reached over TLS: give --tls_ca (or FARM_TLS_CA) to verify it, or "
        "--insecure for a development farm on loopback");
  }
  FARM_ASSIGN_OR_RETURN(out.ca_pem, ReadPemFile(ca, "--tls_ca"));
  if (flags.tls_cert.empty() != flags.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key go together");
  }
  if (!flags.tls_cert.empty()) {
    FARM_ASSIGN_OR_RETURN(out.cert_pem, ReadPemFile(flags.tls_cert, "--tls_cert"));
    FARM_ASSIGN_OR_RETURN(out.key_pem, ReadPemFile(flags.tls_key, "--tls_key"));
  }
  if (!flags.token_file.empty()) {
    FARM_ASSIGN_OR_RETURN(out.token, ReadTokenFile(flags.token_file, "--token_file"));
  } else if (const char* env = getenv("FARM_TOKEN"); env != nullptr && *env != '\0') {
    FARM_ASSIGN_OR_RETURN(out.token, CheckToken(env, "FARM_TOKEN"));
  }
  return out;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const std::string& target,
                                                           const ClientSecurity& security) {
  if (target.empty()) return absl::InvalidArgumentError("coordinator address is empty");
  if (security.insecure) {
    return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), Arguments());
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (security.material != nullptr) {
    grpc::experimental::TlsChannelCredentialsOptions tls;
    tls.set_certificate_provider(security.material->provider());
    tls.watch_root_certs();
    if (security.material->has_identity()) tls.watch_identity_key_cert_pairs();
    // The checks SslCredentials makes: the chain against the CA, the target's name against
    // the certificate's.
    tls.set_verify_server_certs(true);
    tls.set_certificate_verifier(
        std::make_shared<grpc::experimental::HostNameCertificateVerifier>());
    credentials = grpc::experimental::TlsCredentials(tls);
  } else {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = security.ca_pem;
    ssl.pem_cert_chain = security.cert_pem;
    ssl.pem_private_key = security.key_pem;
    credentials = grpc::SslCredentials(ssl);
  }
  if (!security.token.empty()) {
    credentials = grpc::CompositeChannelCredentials(credentials,
                                                    grpc::AccessTokenCredentials(security.token));
  }
  return grpc::CreateCustomChannel(target, credentials, Arguments());
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const std::string& target) {
  ClientSecurity insecure;
  insecure.insecure = true;
  return MakeChannel(target, insecure);
}

}  // namespace farm::common
