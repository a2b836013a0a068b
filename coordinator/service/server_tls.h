// The coordinator's TLS material (certificate chain, private key, client CA), reloadable while
// it serves (SIGHUP, README "Configuration files, logs and reload"): Reload reads and checks the
// files, then every TLS handshake after it uses them, while established connections and their
// calls go on untouched. Built on common::TlsMaterial (common/tls_material.h), which says how.
//
// Errors: INVALID_ARGUMENT naming the flag (--tls_cert, --tls_key, --tls_client_ca) of a file
// that cannot be read, is not PEM, or whose key does not belong to the certificate;
// FAILED_PRECONDITION when a reload adds or removes the client CA; INTERNAL when the in-memory
// files cannot be made. Thread-safe.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/tls_material.h"

namespace grpc {
class ServerCredentials;
}  // namespace grpc

namespace farm::coordinator {

class ServerTls {
 public:
  struct Files {
    std::string cert;
    std::string key;
    std::string client_ca;  // empty: client certificates are not asked for
  };

  static absl::StatusOr<std::unique_ptr<ServerTls>> Create(const Files& files);

  // Server credentials that serve the current material (one object; the caller adds its
  // AuthMetadataProcessor before the server starts).
  std::shared_ptr<grpc::ServerCredentials> credentials() const { return credentials_; }

  // The material itself, for the HTTP port (common/http_server.h), which serves it too.
  const std::shared_ptr<common::TlsMaterial>& material() const { return material_; }

  // Reads and checks `files`, then serves them; on error the material in use stays.
  absl::Status Reload(const Files& files);

 private:
  ServerTls() = default;

  std::shared_ptr<common::TlsMaterial> material_;
  std::shared_ptr<grpc::ServerCredentials> credentials_;
};

}  // namespace farm::coordinator
