// The keys that encrypt secrets at rest, and the encryption itself: AES-256-GCM (OpenSSL EVP)
// with a random 96-bit nonce per write and the secret's name as associated data, so that a
// record copied to another name, or changed in any byte, does not open.
//
// Key files hold 32 random bytes in base64 (44 characters and a newline, as `openssl rand
// -base64 32` and `farmctl certs init` write them). A key is named by its id, the first 8 hex
// digits of the SHA-256 of its 32 bytes, stored with every record. New writes use the current
// key (--secrets_key_file); older keys (--secrets_old_key_files) still open the records written
// under them, so keys rotate: start with the new key and the old one listed as old, `secret set`
// each secret again (or leave them), and drop the old file once `secret list` shows no record
// under its id.
//
// Thread-safe: immutable after Load. Key bytes are wiped when the keyring is destroyed.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "farm/internal/records.pb.h"

namespace farm::coordinator {

inline constexpr size_t kSecretKeyBytes = 32;
inline constexpr size_t kSecretNonceBytes = 12;
inline constexpr size_t kSecretTagBytes = 16;

class SecretKeyring {
 public:
  // Reads the current key file and the old ones. INVALID_ARGUMENT naming the file (and the flag
  // `flag` or `old_flag`) when one cannot be read, is not base64, or does not hold exactly 32
  // bytes, or when two files hold the same key. A key file that group or others may read is
  // accepted, with a line in `*warnings` saying so.
  static absl::StatusOr<SecretKeyring> Load(const std::string& key_file,
                                            const std::vector<std::string>& old_key_files,
                                            std::vector<std::string>* warnings);
  // A keyring from key file texts (tests): the first is current.
  static absl::StatusOr<SecretKeyring> FromTexts(const std::vector<std::string>& texts);

  SecretKeyring(SecretKeyring&&) = default;
  SecretKeyring& operator=(SecretKeyring&&) = default;
  ~SecretKeyring();

  // The id of the key new writes use.
  const std::string& current_id() const { return keys_.front().id; }
  // True when a key with this id is here.
  bool Has(absl::string_view key_id) const { return Find(key_id) != nullptr; }

  // Encrypts `value` under the current key with `name` as associated data: fills key_id, nonce
  // and ciphertext of `*record`. INTERNAL when OpenSSL fails.
  absl::Status Seal(absl::string_view name, absl::string_view value,
                    farm::internal::SecretRecord* record) const;
  // The value of a record sealed under `name`. FAILED_PRECONDITION when no key here has the
  // record's key id (the message says which id and which flag); DATA_LOSS when the record was
  // altered, belongs to another name, or the key with that id is not the one that sealed it.
  absl::StatusOr<std::string> Open(absl::string_view name,
                                   const farm::internal::SecretRecord& record) const;

  // The id of 32 key bytes.
  static std::string KeyId(absl::string_view key);

 private:
  struct Key {
    std::string id;
    std::string bytes;  // kSecretKeyBytes
  };
  SecretKeyring() = default;
  // The key bytes of a key file's text; INVALID_ARGUMENT saying what is wrong.
  static absl::StatusOr<std::string> ParseKeyText(absl::string_view text);
  absl::Status Add(std::string bytes, absl::string_view source);
  const Key* Find(absl::string_view key_id) const;

  std::vector<Key> keys_;  // keys_[0] is the current key
};

}  // namespace farm::coordinator
