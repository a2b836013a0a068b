// DSSE envelopes (the signature wrapper in-toto attestations use): a payload, its type, and
// signatures over the pre-authentication encoding PAE(type, payload) =
//   "DSSEv1" SP LEN(type) SP type SP LEN(payload) SP payload   (LEN: ASCII decimal bytes).
// As JSON: {"payloadType": TYPE, "payload": BASE64, "signatures": [{"keyid": ID, "sig":
// BASE64, "cert": PEM}]}. "cert" is the signer's certificate chain (leaf first): a verifier
// trusts a signature when that chain leads to a CA it trusts and the leaf's key verifies it.
// The key id is the SHA-256 (hex) of the leaf's public key (DER SubjectPublicKeyInfo).
//
// Keys: RSA and EC sign over SHA-256; Ed25519 and Ed448 sign the PAE itself. Errors:
// INVALID_ARGUMENT naming what is malformed (the envelope, a field, a PEM);
// PERMISSION_DENIED when no signature verifies (saying why); INTERNAL when OpenSSL fails to
// sign. Thread-safe (no state).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace farm::common {

inline constexpr absl::string_view kInTotoPayloadType = "application/vnd.in-toto+json";

std::string Pae(absl::string_view type, absl::string_view payload);

// An envelope signed with `key_pem` (a PEM private key; other PEM blocks in it are skipped)
// carrying `chain_pem` (PEM certificates, the key's own first).
absl::StatusOr<std::string> SignEnvelope(absl::string_view type, absl::string_view payload,
                                         const std::string& key_pem, const std::string& chain_pem);
// An envelope without signatures.
std::string UnsignedEnvelope(absl::string_view type, absl::string_view payload);

struct OpenedEnvelope {
  std::string type;
  std::string payload;
  int signatures = 0;
  std::string signer;  // the verified signature's certificate subject (empty: not verified)
};

// Parses an envelope. With `roots_pem` (PEM CA certificates) it must carry a signature that
// verifies under a chain to them (PERMISSION_DENIED otherwise, an unsigned envelope included);
// with empty roots the signatures are not checked.
absl::StatusOr<OpenedEnvelope> OpenEnvelope(absl::string_view json, const std::string& roots_pem);

}  // namespace farm::common
