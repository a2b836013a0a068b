// The OpenSSL half of common/certs.h: keys, certificates and the secrets key, in memory. The
// files are certs_init.cc's business.
#include "common/certs.h"

#include <arpa/inet.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <climits>
#include <ctime>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/openssl_ptr.h"
#include "common/status_macros.h"

namespace farm::common {
namespace {

constexpr char kCurve[] = "P-256";
constexpr int kSerialBytes = 16;
constexpr long kBackdateSeconds = 5 * 60;     // validity starts this long before now
constexpr size_t kMaxIdentityNameBytes = 64;  // X.509's upper bound for a common name
constexpr size_t kMaxHostBytes = 253;
constexpr size_t kMaxLabelBytes = 63;
constexpr size_t kSecretsKeyBytes = 32;

// `what` failed in OpenSSL: the status with OpenSSL's queued errors (which it drains) appended.
absl::Status OpenSslError(absl::string_view what,
                          absl::StatusCode code = absl::StatusCode::kInternal) {
  std::string detail;
  while (const unsigned long err = ERR_get_error()) {
    char text[256];
    ERR_error_string_n(err, text, sizeof(text));
    absl::StrAppend(&detail, detail.empty() ? "" : "; ", text);
  }
  return absl::Status(code, absl::StrCat(what, ": ", detail.empty() ? "no OpenSSL error" : detail));
}

absl::StatusOr<std::string> RandomBytes(size_t n) {
  std::string bytes(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()), static_cast<int>(n)) != 1) {
    return OpenSslError("RAND_bytes");
  }
  return bytes;
}

// A name for messages: escaped, and cut to a few dozen bytes.
std::string Quoted(absl::string_view text) {
  constexpr size_t kMaxEcho = 80;
  const bool cut = text.size() > kMaxEcho;
  return absl::StrCat("\"", absl::CHexEscape(text.substr(0, kMaxEcho)), cut ? "...\"" : "\"");
}

bool IsIpAddress(absl::string_view name) {
  const std::string text(name);
  unsigned char address[16];
  return inet_pton(AF_INET, text.c_str(), address) == 1 ||
         inet_pton(AF_INET6, text.c_str(), address) == 1;
}

absl::Status CheckDnsName(absl::string_view name) {
  const auto bad = [name](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("host ", Quoted(name), " ", why));
  };
  if (name.size() > kMaxHostBytes) return bad("is longer than 253 bytes");
  const std::vector<absl::string_view> labels = absl::StrSplit(name, '.');
  for (size_t i = 0; i < labels.size(); ++i) {
    const absl::string_view label = labels[i];
    if (label == "*" && i == 0 && labels.size() > 1) continue;  // a wildcard certificate
    if (label.empty()) return bad("has an empty label (two dots, or a dot at an end)");
    if (label.size() > kMaxLabelBytes) return bad("has a label longer than 63 bytes");
    if (label.front() == '-' || label.back() == '-') {
      return bad("has a label starting or ending in '-'");
    }
    for (char c : label) {
      if (!absl::ascii_isalnum(c) && c != '-' && c != '_') {
        return bad("is neither an IP address nor a host name (letters, digits, '-', '_', '.')");
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<KeyPtr> NewKey() {
  KeyPtr key(EVP_EC_gen(kCurve));
  if (key == nullptr) return OpenSslError("generating an ECDSA P-256 key");
  return key;
}

absl::StatusOr<std::string> MemoryBioContents(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  if (size < 0) return OpenSslError("reading a memory BIO");
  return std::string(data, static_cast<size_t>(size));
}

absl::StatusOr<CertAndKey> ToPem(X509* cert, EVP_PKEY* key) {
  BioPtr cert_bio(BIO_new(BIO_s_mem()));
  BioPtr key_bio(BIO_new(BIO_s_mem()));
  if (cert_bio == nullptr || key_bio == nullptr) return OpenSslError("BIO_new");
  if (PEM_write_bio_X509(cert_bio.get(), cert) != 1) return OpenSslError("writing a certificate");
  if (PEM_write_bio_PrivateKey(key_bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return OpenSslError("writing a private key");
  }
  CertAndKey pem;
  FARM_ASSIGN_OR_RETURN(pem.cert_pem, MemoryBioContents(cert_bio.get()));
  FARM_ASSIGN_OR_RETURN(pem.key_pem, MemoryBioContents(key_bio.get()));
  return pem;
}

absl::StatusOr<BioPtr> ReadBio(absl::string_view pem, absl::string_view what) {
  if (pem.size() > INT_MAX) return absl::InvalidArgumentError(absl::StrCat(what, " is too large"));
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (bio == nullptr) return OpenSslError("BIO_new_mem_buf");
  return bio;
}

// The CA that signs: its certificate and key, checked to belong together.
struct Issuer {
  X509Ptr cert;
  KeyPtr key;
};

absl::StatusOr<Issuer> ParseIssuer(absl::string_view cert_pem, absl::string_view key_pem) {
  Issuer issuer;
  FARM_ASSIGN_OR_RETURN(BioPtr cert_bio, ReadBio(cert_pem, "the CA certificate"));
  issuer.cert.reset(PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr));
  if (issuer.cert == nullptr) {
    return OpenSslError("the CA certificate is not a PEM certificate",
                        absl::StatusCode::kInvalidArgument);
  }
  FARM_ASSIGN_OR_RETURN(BioPtr key_bio, ReadBio(key_pem, "the CA key"));
  issuer.key.reset(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (issuer.key == nullptr) {
    return OpenSslError("the CA key is not an unencrypted PEM private key",
                        absl::StatusCode::kInvalidArgument);
  }
  if (X509_check_ca(issuer.cert.get()) == 0) {
    return absl::InvalidArgumentError("the CA certificate is not a CA's (basicConstraints)");
  }
  if (X509_check_private_key(issuer.cert.get(), issuer.key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("the CA key does not belong to the CA certificate");
  }
  return issuer;
}

// What a new certificate says besides its key: subject (pairs of attribute and value), how
// long it is valid, its extensions (NID and OpenSSL's configuration text, e.g. "critical,
// CA:TRUE") and its SANs (null: none).
struct CertSpec {
  std::vector<std::pair<std::string, std::string>> subject;
  int days = kLeafValidityDays;
  std::vector<std::pair<int, std::string>> extensions;
  GeneralNamesPtr alt_names;
};

absl::Status SetSerial(X509* cert) {
  FARM_ASSIGN_OR_RETURN(const std::string bytes, RandomBytes(kSerialBytes));
  BignumPtr serial(BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes.data()),
                             static_cast<int>(bytes.size()), nullptr));
  if (serial == nullptr) return OpenSslError("BN_bin2bn");
  if (BN_is_zero(serial.get()) && BN_one(serial.get()) != 1) return OpenSslError("BN_one");
  if (BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert)) == nullptr) {
    return OpenSslError("setting the serial number");
  }
  return absl::OkStatus();
}

absl::Status SetSubject(X509* cert, const CertSpec& spec) {
  X509_NAME* name = X509_get_subject_name(cert);
  for (const auto& [field, value] : spec.subject) {
    if (X509_NAME_add_entry_by_txt(name, field.c_str(), MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1,
                                   0) != 1) {
      return OpenSslError(absl::StrCat("setting the subject's ", field));
    }
  }
  return absl::OkStatus();
}

// `issuer` may be `cert` itself (self-signed); it must carry its subjectKeyIdentifier already
// when `value` asks for its key id.
absl::Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  ExtensionPtr extension(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value.c_str()));
  if (extension == nullptr || X509_add_ext(cert, extension.get(), -1) != 1) {
    return OpenSslError(absl::StrCat("adding the extension ", OBJ_nid2sn(nid), " ", value));
  }
  return absl::OkStatus();
}

// A new certificate for `key`, signed by `issuer` with `issuer_key`; self-signed by `key` when
// `issuer` is null.
absl::StatusOr<X509Ptr> MakeCert(EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key,
                                 const CertSpec& spec) {
  X509Ptr cert(X509_new());
  if (cert == nullptr) return OpenSslError("X509_new");
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1) return OpenSslError("X509_set_version");
  FARM_RETURN_IF_ERROR(SetSerial(cert.get()));
  time_t now = time(nullptr);  // one "now" for both ends
  if (X509_time_adj_ex(X509_getm_notBefore(cert.get()), 0, -kBackdateSeconds, &now) == nullptr ||
      X509_time_adj_ex(X509_getm_notAfter(cert.get()), spec.days, 0, &now) == nullptr) {
    return OpenSslError("setting the validity");
  }
  FARM_RETURN_IF_ERROR(SetSubject(cert.get(), spec));
  X509* signer = issuer != nullptr ? issuer : cert.get();
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(signer)) != 1 ||
      X509_set_pubkey(cert.get(), key) != 1) {
    return OpenSslError("setting the issuer and key");
  }
  FARM_RETURN_IF_ERROR(AddExtension(cert.get(), signer, NID_subject_key_identifier, "hash"));
  FARM_RETURN_IF_ERROR(
      AddExtension(cert.get(), signer, NID_authority_key_identifier, "keyid:always"));
  for (const auto& [nid, value] : spec.extensions) {
    FARM_RETURN_IF_ERROR(AddExtension(cert.get(), signer, nid, value));
  }
  if (spec.alt_names != nullptr &&
      X509_add1_ext_i2d(cert.get(), NID_subject_alt_name, spec.alt_names.get(), 0,
                        X509V3_ADD_DEFAULT) != 1) {
    return OpenSslError("adding the subjectAltName");
  }
  if (X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256()) <= 0) {
    return OpenSslError("signing the certificate");
  }
  return cert;
}

// Appends a SAN of `type` (GEN_DNS, GEN_URI or GEN_IPADD) to `names`.
absl::Status AppendAltName(GENERAL_NAMES* names, int type, const std::string& value) {
  GeneralNamePtr name(GENERAL_NAME_new());
  if (name == nullptr) return OpenSslError("GENERAL_NAME_new");
  if (type == GEN_IPADD) {
    ASN1_OCTET_STRING* address = a2i_IPADDRESS(value.c_str());
    if (address == nullptr) {
      return OpenSslError(absl::StrCat("IP address ", Quoted(value)),
                          absl::StatusCode::kInvalidArgument);
    }
    GENERAL_NAME_set0_value(name.get(), type, address);
  } else {
    ASN1_IA5STRING* text = ASN1_IA5STRING_new();
    if (text == nullptr ||
        ASN1_STRING_set(text, value.data(), static_cast<int>(value.size())) != 1) {
      ASN1_IA5STRING_free(text);
      return OpenSslError("setting a subjectAltName");
    }
    GENERAL_NAME_set0_value(name.get(), type, text);
  }
  if (sk_GENERAL_NAME_push(names, name.get()) <= 0) return OpenSslError("sk_GENERAL_NAME_push");
  name.release();  // the stack owns it now
  return absl::OkStatus();
}

// Issues a certificate for a new key, signed by the CA given in PEM.
absl::StatusOr<CertAndKey> Issue(absl::string_view ca_cert_pem, absl::string_view ca_key_pem,
                                 const CertSpec& spec) {
  FARM_ASSIGN_OR_RETURN(const Issuer issuer, ParseIssuer(ca_cert_pem, ca_key_pem));
  FARM_ASSIGN_OR_RETURN(const KeyPtr key, NewKey());
  FARM_ASSIGN_OR_RETURN(const X509Ptr cert,
                        MakeCert(key.get(), issuer.cert.get(), issuer.key.get(), spec));
  return ToPem(cert.get(), key.get());
}

}  // namespace

absl::Status CheckHostName(absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("a host name is empty");
  for (char c : name) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == ' ') {
      return absl::InvalidArgumentError(absl::StrCat("host ", Quoted(name), " contains a space"));
    }
    if (byte < 0x20 || byte == 0x7f) {
      return absl::InvalidArgumentError(
          absl::StrCat("host ", Quoted(name), " contains a control character"));
    }
  }
  if (IsIpAddress(name)) return absl::OkStatus();
  if (absl::StrContains(name, ':')) {
    return absl::InvalidArgumentError(absl::StrCat(
        "host ", Quoted(name), " is not an IP address, and a host name takes no port"));
  }
  return CheckDnsName(name);
}

absl::StatusOr<std::vector<std::string>> ParseHosts(absl::string_view names) {
  std::vector<std::string> hosts;
  absl::flat_hash_set<std::string> seen;
  for (absl::string_view name : absl::StrSplit(names, ',')) {
    FARM_RETURN_IF_ERROR(CheckHostName(name));
    if (seen.insert(std::string(name)).second) hosts.emplace_back(name);
  }
  return hosts;
}

std::string FarmIdentityUri(absl::string_view role, absl::string_view name) {
  return absl::StrCat("farm://", role, "/", name);
}

absl::Status CheckIdentity(absl::string_view role, absl::string_view name) {
  if (role != kRoleViewer && role != kRoleSubmitter && role != kRoleAgent && role != kRoleAdmin) {
    return absl::InvalidArgumentError(
        absl::StrCat("role ", Quoted(role), " is not one of viewer, submitter, agent, admin"));
  }
  if (name.empty() || name.size() > kMaxIdentityNameBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("identity name ", Quoted(name), " must have 1 to 64 bytes"));
  }
  for (char c : name) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '_' && c != '-') {
      return absl::InvalidArgumentError(absl::StrCat(
          "identity name ", Quoted(name), " may hold only letters, digits, '.', '_' and '-'"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<CertAndKey> CreateCa(absl::string_view common_name) {
  ERR_clear_error();
  CertSpec spec;
  spec.subject = {{"O", "farm"}, {"CN", std::string(common_name)}};
  spec.days = kCaValidityDays;
  spec.extensions = {{NID_basic_constraints, "critical,CA:TRUE"},
                     {NID_key_usage, "critical,keyCertSign,cRLSign"}};
  FARM_ASSIGN_OR_RETURN(const KeyPtr key, NewKey());
  FARM_ASSIGN_OR_RETURN(const X509Ptr cert, MakeCert(key.get(), nullptr, nullptr, spec));
  return ToPem(cert.get(), key.get());
}

absl::StatusOr<CertAndKey> IssueServerCert(absl::string_view ca_cert_pem,
                                           absl::string_view ca_key_pem,
                                           const std::vector<std::string>& hosts) {
  ERR_clear_error();
  if (hosts.empty()) return absl::InvalidArgumentError("a server certificate needs a host name");
  CertSpec spec;
  spec.subject = {{"O", "farm"}, {"CN", "farm coordinator"}};
  spec.extensions = {{NID_basic_constraints, "critical,CA:FALSE"},
                     {NID_key_usage, "critical,digitalSignature"},
                     {NID_ext_key_usage, "serverAuth"}};
  spec.alt_names.reset(sk_GENERAL_NAME_new_null());
  if (spec.alt_names == nullptr) return OpenSslError("sk_GENERAL_NAME_new_null");
  for (const std::string& host : hosts) {
    FARM_RETURN_IF_ERROR(CheckHostName(host));
    FARM_RETURN_IF_ERROR(
        AppendAltName(spec.alt_names.get(), IsIpAddress(host) ? GEN_IPADD : GEN_DNS, host));
  }
  return Issue(ca_cert_pem, ca_key_pem, spec);
}

absl::StatusOr<CertAndKey> IssueClientCert(absl::string_view ca_cert_pem,
                                           absl::string_view ca_key_pem, absl::string_view role,
                                           absl::string_view name) {
  ERR_clear_error();
  FARM_RETURN_IF_ERROR(CheckIdentity(role, name));
  CertSpec spec;
  spec.subject = {{"O", "farm"}, {"OU", std::string(role)}, {"CN", std::string(name)}};
  spec.extensions = {{NID_basic_constraints, "critical,CA:FALSE"},
                     {NID_key_usage, "critical,digitalSignature"},
                     {NID_ext_key_usage, "clientAuth"}};
  spec.alt_names.reset(sk_GENERAL_NAME_new_null());
  if (spec.alt_names == nullptr) return OpenSslError("sk_GENERAL_NAME_new_null");
  FARM_RETURN_IF_ERROR(AppendAltName(spec.alt_names.get(), GEN_URI, FarmIdentityUri(role, name)));
  return Issue(ca_cert_pem, ca_key_pem, spec);
}

absl::StatusOr<std::string> NewSecretsKey() {
  ERR_clear_error();
  FARM_ASSIGN_OR_RETURN(std::string key, RandomBytes(kSecretsKeyBytes));
  unsigned char encoded[4 * ((kSecretsKeyBytes + 2) / 3) + 1];
  const int size = EVP_EncodeBlock(encoded, reinterpret_cast<const unsigned char*>(key.data()),
                                   static_cast<int>(key.size()));
  OPENSSL_cleanse(key.data(), key.size());
  std::string text(reinterpret_cast<const char*>(encoded), static_cast<size_t>(size));
  OPENSSL_cleanse(encoded, sizeof(encoded));
  text.push_back('\n');
  return text;
}

}  // namespace farm::common
