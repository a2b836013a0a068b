// TLS for the service tests that boot the coordinator in-process with identities: a test CA and
// a server certificate for 127.0.0.1, written into a test directory, and the options that serve
// them.
#pragma once

#include "absl/status/statusor.h"
#include "common/certs.h"
#include "common/status_macros.h"
#include "coordinator/coordinator.h"
#include "tests/testing/temp_dir.h"

namespace farm::coordinator {

// Writes DIR/ca.crt, DIR/server.crt and DIR/server.key and points `options` at them (client
// certificates from the CA identify callers). Returns the CA, to issue client certificates.
inline absl::StatusOr<common::CertAndKey> ServeTestTls(const testing::TempDir& dir,
                                                       CoordinatorOptions& options) {
  FARM_ASSIGN_OR_RETURN(common::CertAndKey ca, common::CreateCa("farm test CA"));
  FARM_ASSIGN_OR_RETURN(common::CertAndKey server,
                        common::IssueServerCert(ca.cert_pem, ca.key_pem, {"127.0.0.1"}));
  FARM_RETURN_IF_ERROR(testing::WriteFile(dir.Join("ca.crt"), ca.cert_pem));
  FARM_RETURN_IF_ERROR(testing::WriteFile(dir.Join("server.crt"), server.cert_pem));
  FARM_RETURN_IF_ERROR(testing::WriteFile(dir.Join("server.key"), server.key_pem));
  options.tls_cert_file = dir.Join("server.crt");
  options.tls_key_file = dir.Join("server.key");
  options.tls_client_ca_file = dir.Join("ca.crt");
  return ca;
}

}  // namespace farm::coordinator
