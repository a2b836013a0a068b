// The farm's certificates and secrets key, made with OpenSSL's C API (no openssl binary): a CA,
// the coordinator's server certificate, client certificates that carry a farm identity, and the
// key file that encrypts secrets at rest. `farmctl certs init` calls InitCerts; tests call the
// in-memory functions to make more identities.
//
// Keys are ECDSA P-256, signatures SHA-256, serials 128 random bits. Certificates are valid from
// five minutes before they are made (clock skew between machines) for kCaValidityDays (the CA)
// or kLeafValidityDays (everything it signs). A caller's identity is one SAN URI
// `farm://ROLE/NAME` in its client certificate (FarmIdentityUri); the coordinator's certificate
// names its hosts as DNS and IP SANs.
//
// Errors: INVALID_ARGUMENT for a bad host, role or name, or PEM that does not parse or is not a
// CA with its key; ALREADY_EXISTS when InitCerts would overwrite a file; the errno codes of
// common/posix_io.h for the file system; INTERNAL for an OpenSSL failure, with OpenSSL's own
// error text. Thread-safe (no shared state).
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace farm::common {

inline constexpr int kCaValidityDays = 3650;  // ten years
// The longest validity browsers and Apple's TLS stack accept for a leaf certificate.
inline constexpr int kLeafValidityDays = 825;

// The roles a caller can have, from least to most allowed.
inline constexpr absl::string_view kRoleViewer = "viewer";
inline constexpr absl::string_view kRoleSubmitter = "submitter";
inline constexpr absl::string_view kRoleAgent = "agent";
inline constexpr absl::string_view kRoleAdmin = "admin";

// The files InitCerts writes into its directory.
inline constexpr char kCaCertFile[] = "ca.crt";
inline constexpr char kCaKeyFile[] = "ca.key";
inline constexpr char kCoordinatorCertFile[] = "coordinator.crt";
inline constexpr char kCoordinatorKeyFile[] = "coordinator.key";
inline constexpr char kAdminCertFile[] = "admin.crt";
inline constexpr char kAdminKeyFile[] = "admin.key";
inline constexpr char kSecretsKeyFile[] = "secrets.key";

// A certificate and its private key, both PEM (the key PKCS#8, unencrypted).
struct CertAndKey {
  std::string cert_pem;
  std::string key_pem;
};

struct CertsOptions {
  std::string dir;  // created (mode 0700, with missing parents) when it does not exist
  // The coordinator certificate's host names and IP addresses; none is refused.
  std::vector<std::string> hosts = {"localhost", "127.0.0.1"};
};

// OK for a name a server certificate can carry: an IPv4 or IPv6 address, or a DNS name (labels
// of letters, digits, '-' and '_', at most 63 bytes each and 253 in all, optionally starting
// with the wildcard label "*"). INVALID_ARGUMENT naming the name and what is wrong (empty, a
// space or control character, a port, ...).
absl::Status CheckHostName(absl::string_view name);
// "a,b" → {"a", "b"}, each checked by CheckHostName (so "a,,b" and a trailing comma are
// refused); a name given twice counts once.
absl::StatusOr<std::vector<std::string>> ParseHosts(absl::string_view names);

// "farm://ROLE/NAME", the SAN URI that carries a client's identity. CheckIdentity checks the
// parts: the role one of the four above, the name 1..64 bytes of [A-Za-z0-9._-]
// (INVALID_ARGUMENT naming the part).
std::string FarmIdentityUri(absl::string_view role, absl::string_view name);
absl::Status CheckIdentity(absl::string_view role, absl::string_view name);

// A new self-signed CA (basicConstraints CA:TRUE critical, keyUsage keyCertSign and cRLSign)
// whose subject is O=farm, CN=`common_name`.
absl::StatusOr<CertAndKey> CreateCa(absl::string_view common_name);
// A server certificate signed by the CA for `hosts` (each checked by CheckHostName; IP
// addresses become IP SANs, the rest DNS SANs), extendedKeyUsage serverAuth.
absl::StatusOr<CertAndKey> IssueServerCert(absl::string_view ca_cert_pem,
                                           absl::string_view ca_key_pem,
                                           const std::vector<std::string>& hosts);
// A client certificate signed by the CA whose only SAN is FarmIdentityUri(role, name),
// extendedKeyUsage clientAuth, subject O=farm, OU=role, CN=name.
absl::StatusOr<CertAndKey> IssueClientCert(absl::string_view ca_cert_pem,
                                           absl::string_view ca_key_pem, absl::string_view role,
                                           absl::string_view name);
// The secrets key file's contents: 32 random bytes in base64 and a newline, as
// `openssl rand -base64 32` writes them.
absl::StatusOr<std::string> NewSecretsKey();

// Writes into options.dir a new CA (ca.crt, ca.key), a coordinator certificate for
// options.hosts (coordinator.crt, .key), an admin client certificate farm://admin/admin
// (admin.crt, .key) and a secrets key (secrets.key). Keys and secrets.key get mode 0600,
// certificates 0644. Never overwrites: when any of the seven files exists, ALREADY_EXISTS naming
// it, and nothing is written. All or nothing: each file appears complete (written under a
// temporary name, synced, renamed), and on any failure the files (and directories) this call
// made are removed again.
absl::Status InitCerts(const CertsOptions& options);

}  // namespace farm::common
