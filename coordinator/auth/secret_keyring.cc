#include "coordinator/auth/secret_keyring.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/digest.h"
#include "common/posix_io.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"

namespace farm::coordinator {
namespace {

constexpr size_t kMaxKeyFileBytes = 4096;

struct CipherCtxFree {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;

const unsigned char* Bytes(absl::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}
unsigned char* MutableBytes(std::string& s) { return reinterpret_cast<unsigned char*>(s.data()); }

// A small file's contents, and a warning when others than its owner may read it.
absl::StatusOr<std::string> ReadKeyFile(const std::string& path,
                                        std::vector<std::string>* warnings) {
  common::UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return common::ErrnoStatus(errno, absl::StrCat("cannot open ", path));
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return common::ErrnoStatus(errno, absl::StrCat("stat ", path));
  if (!S_ISREG(st.st_mode)) return absl::InvalidArgumentError(absl::StrCat(path, " is not a file"));
  if (st.st_size > static_cast<off_t>(kMaxKeyFileBytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is ", st.st_size, " bytes: not a key file (44 base64 characters)"));
  }
  if ((st.st_mode & 077) != 0 && warnings != nullptr) {
    warnings->push_back(absl::StrFormat(
        "the secrets key file %s has mode %04o: others than its owner may read it; chmod 600 it",
        path, st.st_mode & 07777));
  }
  std::string text(static_cast<size_t>(st.st_size), '\0');
  FARM_ASSIGN_OR_RETURN(bool complete,
                        common::ReadExactlyAt(fd.get(), text.data(), text.size(), 0, path));
  if (!complete) return absl::DataLossError(absl::StrCat(path, " shrank while it was read"));
  return text;
}

}  // namespace

SecretKeyring::~SecretKeyring() {
  for (Key& key : keys_) OPENSSL_cleanse(key.bytes.data(), key.bytes.size());
}

std::string SecretKeyring::KeyId(absl::string_view key) {
  return common::DigestOf(key).hash.substr(0, 8);
}

absl::StatusOr<std::string> SecretKeyring::ParseKeyText(absl::string_view text) {
  absl::string_view stripped = absl::StripAsciiWhitespace(text);
  std::string bytes;
  if (stripped.empty() || !absl::Base64Unescape(stripped, &bytes)) {
    return absl::InvalidArgumentError(
        "is not base64 (it should hold 32 random bytes in base64, as `openssl rand -base64 32` "
        "writes them)");
  }
  if (bytes.size() != kSecretKeyBytes) {
    const size_t got = bytes.size();
    OPENSSL_cleanse(bytes.data(), bytes.size());
    return absl::InvalidArgumentError(absl::StrCat("holds ", got, " bytes, not ", kSecretKeyBytes,
                                                   " (`openssl rand -base64 32` makes a key)"));
  }
  return bytes;
}

absl::Status SecretKeyring::Add(std::string bytes, absl::string_view source) {
  std::string id = KeyId(bytes);
  if (Find(id) != nullptr) {
    OPENSSL_cleanse(bytes.data(), bytes.size());
    return absl::InvalidArgumentError(
        absl::StrCat(source, " holds the same key (id ", id, ") as another key file"));
  }
  keys_.push_back(Key{std::move(id), std::move(bytes)});
  return absl::OkStatus();
}

absl::StatusOr<SecretKeyring> SecretKeyring::Load(const std::string& key_file,
                                                  const std::vector<std::string>& old_key_files,
                                                  std::vector<std::string>* warnings) {
  SecretKeyring ring;
  std::vector<std::pair<std::string, std::string>> files = {{"--secrets_key_file", key_file}};
  for (const std::string& f : old_key_files) files.emplace_back("--secrets_old_key_files", f);
  for (const auto& [flag, path] : files) {
    absl::StatusOr<std::string> text = ReadKeyFile(path, warnings);
    if (!text.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(flag, ": ", text.status().message()));
    }
    absl::StatusOr<std::string> bytes = ParseKeyText(*text);
    OPENSSL_cleanse(text->data(), text->size());
    if (!bytes.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, ": the key file ", path, " ", bytes.status().message()));
    }
    FARM_RETURN_IF_ERROR(ring.Add(*std::move(bytes), absl::StrCat(flag, ": ", path)));
  }
  return ring;
}

absl::StatusOr<SecretKeyring> SecretKeyring::FromTexts(const std::vector<std::string>& texts) {
  SecretKeyring ring;
  for (size_t i = 0; i < texts.size(); ++i) {
    absl::StatusOr<std::string> bytes = ParseKeyText(texts[i]);
    if (!bytes.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("key ", i, " ", bytes.status().message()));
    }
    FARM_RETURN_IF_ERROR(ring.Add(*std::move(bytes), absl::StrCat("key ", i)));
  }
  if (ring.keys_.empty()) return absl::InvalidArgumentError("a keyring needs a key");
  return ring;
}

const SecretKeyring::Key* SecretKeyring::Find(absl::string_view key_id) const {
  for (const Key& key : keys_) {
    if (key.id == key_id) return &key;
  }
  return nullptr;
}

absl::Status SecretKeyring::Seal(absl::string_view name, absl::string_view value,
                                 farm::internal::SecretRecord* record) const {
  const Key& key = keys_.front();
  std::string nonce(kSecretNonceBytes, '\0');
  if (RAND_bytes(MutableBytes(nonce), static_cast<int>(nonce.size())) != 1) {
    return absl::InternalError("the random number generator failed");
  }
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  std::string out(value.size() + kSecretTagBytes, '\0');
  int len = 0;
  int final_len = 0;
  const bool ok =
      ctx != nullptr &&
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kSecretNonceBytes, nullptr) == 1 &&
      EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, Bytes(key.bytes), Bytes(nonce)) == 1 &&
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, Bytes(name), static_cast<int>(name.size())) ==
          1 &&
      EVP_EncryptUpdate(ctx.get(), MutableBytes(out), &len, Bytes(value),
                        static_cast<int>(value.size())) == 1 &&
      EVP_EncryptFinal_ex(ctx.get(), MutableBytes(out) + len, &final_len) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kSecretTagBytes,
                          MutableBytes(out) + value.size()) == 1;
  if (!ok || static_cast<size_t>(len + final_len) != value.size()) {
    return absl::InternalError("AES-256-GCM encryption failed in OpenSSL");
  }
  record->set_key_id(key.id);
  record->set_nonce(std::move(nonce));
  record->set_ciphertext(std::move(out));
  return absl::OkStatus();
}

absl::StatusOr<std::string> SecretKeyring::Open(absl::string_view name,
                                                const farm::internal::SecretRecord& record) const {
  const Key* key = Find(record.key_id());
  if (key == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("secret ", name, " is encrypted with key id ", record.key_id(),
                     ", which is not the coordinator's --secrets_key_file nor one of its "
                     "--secrets_old_key_files"));
  }
  const std::string& sealed = record.ciphertext();
  if (record.nonce().size() != kSecretNonceBytes || sealed.size() < kSecretTagBytes) {
    return absl::DataLossError(absl::StrCat("the record of secret ", name, " is malformed"));
  }
  const size_t size = sealed.size() - kSecretTagBytes;
  std::string tag = sealed.substr(size);
  std::string value(size, '\0');
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  int final_len = 0;
  const bool ok =
      ctx != nullptr &&
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kSecretNonceBytes, nullptr) == 1 &&
      EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, Bytes(key->bytes), Bytes(record.nonce())) ==
          1 &&
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, Bytes(name), static_cast<int>(name.size())) ==
          1 &&
      EVP_DecryptUpdate(ctx.get(), MutableBytes(value), &len, Bytes(sealed),
                        static_cast<int>(size)) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kSecretTagBytes, tag.data()) == 1 &&
      EVP_DecryptFinal_ex(ctx.get(), MutableBytes(value) + len, &final_len) == 1;
  if (!ok) {
    OPENSSL_cleanse(value.data(), value.size());
    return absl::DataLossError(absl::StrCat("secret ", name, " does not decrypt with key ", key->id,
                                            ": the record was altered or belongs to another name"));
  }
  return value;
}

}  // namespace farm::coordinator
