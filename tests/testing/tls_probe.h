// What a TLS client sees of a server's certificate, for tests of certificate reloads: the serial
// number (hex) of the certificate a server presents to a new connection, and of a PEM one.
// UNAVAILABLE when no TLS handshake completes (the server's own checks after the handshake do
// not matter: nothing is verified here); INVALID_ARGUMENT for an address or PEM that is not one.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace farm::testing {

// `address` is "127.0.0.1:PORT".
absl::StatusOr<std::string> ServedCertificateSerial(const std::string& address);
absl::StatusOr<std::string> CertificateSerial(const std::string& cert_pem);

}  // namespace farm::testing
