#include "common/dsse.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/digest.h"
#include "common/openssl_ptr.h"
#include "common/status_macros.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace farm::common {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;
using MdCtxPtr = OpenSslPtr<EVP_MD_CTX, EVP_MD_CTX_free>;
using StoreCtxPtr = OpenSslPtr<X509_STORE_CTX, X509_STORE_CTX_free>;
using X509StackPtr = std::unique_ptr<STACK_OF(X509), void (*)(STACK_OF(X509)*)>;

void FreeX509Stack(STACK_OF(X509) * s) { sk_X509_pop_free(s, X509_free); }

// The digest a key signs over: none for the EdDSA keys, which sign the message itself.
const EVP_MD* DigestFor(EVP_PKEY* key) {
  const int id = EVP_PKEY_id(key);
  return id == EVP_PKEY_ED25519 || id == EVP_PKEY_ED448 ? nullptr : EVP_sha256();
}

std::vector<X509Ptr> ReadCerts(const std::string& pem) {
  std::vector<X509Ptr> out;
  BioPtr bio = PemBio(pem);
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    out.emplace_back(cert);
  }
  return out;
}

std::string KeyId(X509* cert) {
  unsigned char* der = nullptr;
  const int n = i2d_PUBKEY(X509_get0_pubkey(cert), &der);
  if (n <= 0) return "";
  std::string id = DigestOf(absl::string_view(reinterpret_cast<char*>(der), n)).hash;
  OPENSSL_free(der);
  return id;
}

std::string Json(const Struct& s) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  (void)google::protobuf::util::MessageToJsonString(s, &out, options);
  return out;
}

Struct EnvelopeStruct(absl::string_view type, absl::string_view payload) {
  Struct env;
  (*env.mutable_fields())["payloadType"].set_string_value(std::string(type));
  (*env.mutable_fields())["payload"].set_string_value(absl::Base64Escape(payload));
  (*env.mutable_fields())["signatures"].mutable_list_value();
  return env;
}

// Whether `sig` over `message` verifies under the chain `chain_pem` to `roots`; the reason not.
absl::StatusOr<std::string> VerifyOne(const std::string& message, const std::string& sig,
                                      const std::string& chain_pem, X509_STORE* roots) {
  std::vector<X509Ptr> chain = ReadCerts(chain_pem);
  if (chain.empty()) return absl::PermissionDeniedError("its cert is not a PEM certificate");
  X509StackPtr untrusted(sk_X509_new_null(), FreeX509Stack);
  for (size_t i = 1; i < chain.size(); ++i) {
    sk_X509_push(untrusted.get(), chain[i].release());
  }
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!ctx || X509_STORE_CTX_init(ctx.get(), roots, chain[0].get(), untrusted.get()) != 1) {
    return absl::InternalError("cannot set up certificate verification");
  }
  if (X509_verify_cert(ctx.get()) != 1) {
    return absl::PermissionDeniedError(
        absl::StrCat("its certificate does not lead to a trusted CA: ",
                     X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()))));
  }
  EVP_PKEY* key = X509_get0_pubkey(chain[0].get());
  MdCtxPtr md(EVP_MD_CTX_new());
  if (!md || EVP_DigestVerifyInit(md.get(), nullptr, DigestFor(key), nullptr, key) != 1 ||
      EVP_DigestVerify(md.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                       reinterpret_cast<const unsigned char*>(message.data()),
                       message.size()) != 1) {
    return absl::PermissionDeniedError("the signature does not match the payload");
  }
  char name[256] = {0};
  X509_NAME_oneline(X509_get_subject_name(chain[0].get()), name, sizeof(name));
  return std::string(name);
}

}  // namespace

std::string Pae(absl::string_view type, absl::string_view payload) {
  return absl::StrCat("DSSEv1 ", type.size(), " ", type, " ", payload.size(), " ", payload);
}

std::string UnsignedEnvelope(absl::string_view type, absl::string_view payload) {
  return Json(EnvelopeStruct(type, payload));
}

absl::StatusOr<std::string> SignEnvelope(absl::string_view type, absl::string_view payload,
                                         const std::string& key_pem, const std::string& chain_pem) {
  KeyPtr key(PEM_read_bio_PrivateKey(PemBio(key_pem).get(), nullptr, nullptr, nullptr));
  if (!key) return absl::InvalidArgumentError("the signing key is not a PEM private key");
  std::vector<X509Ptr> chain = ReadCerts(chain_pem);
  if (chain.empty()) return absl::InvalidArgumentError("the signer has no PEM certificate");
  if (X509_check_private_key(chain[0].get(), key.get()) != 1) {
    return absl::InvalidArgumentError("the signing key does not belong to its certificate");
  }
  const std::string message = Pae(type, payload);
  MdCtxPtr md(EVP_MD_CTX_new());
  size_t len = 0;
  if (!md || EVP_DigestSignInit(md.get(), nullptr, DigestFor(key.get()), nullptr, key.get()) != 1 ||
      EVP_DigestSign(md.get(), nullptr, &len,
                     reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1) {
    return absl::InternalError("OpenSSL cannot sign with this key");
  }
  std::string sig(len, '\0');
  if (EVP_DigestSign(md.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                     reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1) {
    return absl::InternalError("OpenSSL failed to sign");
  }
  sig.resize(len);
  std::string certs;
  for (const X509Ptr& c : chain) {
    BioPtr out(BIO_new(BIO_s_mem()));
    PEM_write_bio_X509(out.get(), c.get());
    char* data = nullptr;
    const long n = BIO_get_mem_data(out.get(), &data);
    certs.append(data, static_cast<size_t>(n));
  }
  Struct env = EnvelopeStruct(type, payload);
  Struct* s = (*env.mutable_fields())["signatures"]
                  .mutable_list_value()
                  ->add_values()
                  ->mutable_struct_value();
  (*s->mutable_fields())["keyid"].set_string_value(KeyId(chain[0].get()));
  (*s->mutable_fields())["sig"].set_string_value(absl::Base64Escape(sig));
  (*s->mutable_fields())["cert"].set_string_value(certs);
  return Json(env);
}

absl::StatusOr<OpenedEnvelope> OpenEnvelope(absl::string_view json, const std::string& roots_pem) {
  Struct env;
  if (!google::protobuf::util::JsonStringToMessage(std::string(json), &env).ok()) {
    return absl::InvalidArgumentError("the envelope is not a JSON object");
  }
  auto text = [&](const Struct& s, const char* field) -> absl::StatusOr<std::string> {
    auto it = s.fields().find(field);
    if (it == s.fields().end() || it->second.kind_case() != Value::kStringValue) {
      return absl::InvalidArgumentError(absl::StrCat("the envelope has no string \"", field, "\""));
    }
    return it->second.string_value();
  };
  OpenedEnvelope out;
  FARM_ASSIGN_OR_RETURN(out.type, text(env, "payloadType"));
  FARM_ASSIGN_OR_RETURN(std::string payload, text(env, "payload"));
  if (!absl::Base64Unescape(payload, &out.payload)) {
    return absl::InvalidArgumentError("the envelope's payload is not base64");
  }
  std::vector<const Struct*> sigs;
  if (auto it = env.fields().find("signatures"); it != env.fields().end()) {
    for (const Value& v : it->second.list_value().values()) {
      if (v.kind_case() == Value::kStructValue) sigs.push_back(&v.struct_value());
    }
  }
  out.signatures = static_cast<int>(sigs.size());
  if (roots_pem.empty()) return out;
  if (sigs.empty()) return absl::PermissionDeniedError("the envelope is not signed");
  X509StorePtr roots(X509_STORE_new());
  std::vector<X509Ptr> cas = ReadCerts(roots_pem);
  if (cas.empty())
    return absl::InvalidArgumentError("the trusted CA file holds no PEM certificate");
  for (const X509Ptr& ca : cas) X509_STORE_add_cert(roots.get(), ca.get());
  const std::string message = Pae(out.type, out.payload);
  std::string why;
  for (const Struct* s : sigs) {
    absl::StatusOr<std::string> sig64 = text(*s, "sig");
    absl::StatusOr<std::string> cert = text(*s, "cert");
    std::string sig;
    if (!sig64.ok() || !cert.ok() || !absl::Base64Unescape(*sig64, &sig)) {
      why = "a signature lacks its base64 \"sig\" or its \"cert\"";
      continue;
    }
    absl::StatusOr<std::string> signer = VerifyOne(message, sig, *cert, roots.get());
    if (signer.ok()) {
      out.signer = *signer;
      return out;
    }
    why = std::string(signer.status().message());
  }
  return absl::PermissionDeniedError(absl::StrCat("no signature verifies: ", why));
}

}  // namespace farm::common
