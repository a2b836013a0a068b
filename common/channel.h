// Client channels to the coordinator, with the farm's explicit message limits and keepalive,
// and its transport security: TLS that verifies the coordinator against a CA, with a client
// certificate and/or a bearer token as the caller's identity; or plaintext for a development
// farm (`--insecure`, loopback only).
#pragma once

#include <grpcpp/channel.h>

#include <cstdlib>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace farm::common {

class TlsMaterial;

// Largest gRPC message either side accepts (requests and responses): 16 MiB.
inline constexpr int kMaxGrpcMessageBytes = 16 << 20;
// Keepalive. Clients ping the coordinator after kKeepaliveTimeMs without activity (idle
// connections too) and drop the connection when a ping goes unanswered for
// kKeepaliveTimeoutMs, so that a dead coordinator is noticed. The coordinator counts a ping
// that comes sooner than kMinPingIntervalMs after the last one (while it sends no data) as a
// strike, and after a few strikes closes the connection (GOAWAY "too_many_pings"): clients
// must never ping more often than it permits.
inline constexpr int kKeepaliveTimeMs = 20'000;
inline constexpr int kKeepaliveTimeoutMs = 10'000;
inline constexpr int kMinPingIntervalMs = 10'000;
static_assert(kKeepaliveTimeMs >= kMinPingIntervalMs,
              "clients would ping more often than the coordinator permits");
// Largest token file a client reads.
inline constexpr size_t kMaxTokenBytes = 4096;

// How a client reaches the coordinator (PEM text and the token, not paths).
struct ClientSecurity {
  bool insecure = false;  // plaintext, no credentials
  std::string ca_pem;     // the CA that signed the coordinator's certificate (required for TLS)
  std::string cert_pem;   // a client certificate and its key (mutual TLS), or both empty
  std::string key_pem;
  std::string token;  // sent as `authorization: Bearer TOKEN`; may be empty
  // When set (the agent, whose SIGHUP reloads its TLS files), channels take the CA and the
  // client certificate from here instead of ca_pem, cert_pem and key_pem, and every new
  // connection uses what it holds then (tls_material.h). Shared: copies see the same updates.
  std::shared_ptr<TlsMaterial> material;
};

// The flags every client takes, as given (paths): --insecure, --tls_ca, --tls_cert, --tls_key,
// --token_file.
struct ClientSecurityFlags {
  bool insecure = false;
  std::string tls_ca = {};
  std::string tls_cert = {};
  std::string tls_key = {};
  std::string token_file = {};
};

// A PEM file's text (certificates or a key, at most 1 MiB). INVALID_ARGUMENT naming `flag` and
// the path when it cannot be read or holds no PEM block.
absl::StatusOr<std::string> ReadPemFile(const std::string& path, absl::string_view flag);

// The token a token file holds (surrounding whitespace stripped). INVALID_ARGUMENT naming
// `flag` and the path when it cannot be read, is empty, larger than kMaxTokenBytes or holds
// whitespace or control characters inside the token.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path, absl::string_view flag);

using EnvLookup = std::function<const char*(const char*)>;

// Reads the files the flags name. FARM_TLS_CA (a path) stands in for --tls_ca and FARM_TOKEN
// (the token itself) for --token_file when those are not given. INVALID_ARGUMENT naming the
// flag: --insecure together with TLS flags, no CA without --insecure, a certificate without
// its key, a file that cannot be read or is not PEM, a token file that is empty, larger than
// kMaxTokenBytes or holds whitespace or control characters inside the token.
absl::StatusOr<ClientSecurity> LoadClientSecurity(const ClientSecurityFlags& flags,
                                                  const EnvLookup& getenv = std::getenv);

// "HOST:PORT" (or any gRPC target URI) → a channel secured as `security` says.
// INVALID_ARGUMENT on an empty target.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const std::string& target,
                                                           const ClientSecurity& security);

// A plaintext channel, for a coordinator started with --insecure (tests, development).
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const std::string& target);

}  // namespace farm::common
