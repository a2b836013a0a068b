#include "coordinator/auth/secret_registry.h"

#include <openssl/crypto.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/job_limits.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/text.h"

namespace farm::coordinator {

farm::v1::SecretInfo SecretRegistry::InfoOf(absl::string_view name,
                                            const farm::internal::SecretRecord& r) {
  farm::v1::SecretInfo info;
  info.set_name(std::string(name));
  info.set_key_id(r.key_id());
  info.set_created_ms(r.created_ms());
  info.set_updated_ms(r.updated_ms());
  info.set_updated_by(r.updated_by());
  return info;
}

absl::Status SecretRegistry::RequireKeyring() const {
  if (keyring_.has_value()) return absl::OkStatus();
  return absl::FailedPreconditionError(
      "the coordinator has no --secrets_key_file, so it keeps no secrets: start it with one "
      "(`farmctl certs init` writes secrets.key; `openssl rand -base64 32` makes one)");
}

absl::Status SecretRegistry::Load(std::vector<std::string>* warnings) {
  absl::flat_hash_map<std::string, farm::internal::SecretRecord> loaded;
  absl::Status bad;
  FARM_RETURN_IF_ERROR(
      store_->Scan(Cf::kSecrets, "", "", [&](absl::string_view key, absl::string_view value) {
        farm::internal::SecretRecord record;
        if (!common::ValidateSecretName(key).ok() || !record.ParseFromString(std::string(value))) {
          bad = absl::DataLossError(
              absl::StrCat("secret record ", common::Quote(key), " is malformed"));
          return false;
        }
        if (warnings != nullptr && (!keyring_.has_value() || !keyring_->Has(record.key_id()))) {
          warnings->push_back(absl::StrCat(
              "secret ", key, " is encrypted with key id ", record.key_id(),
              ", which no key file given to the coordinator has: jobs that use it will fail"));
        }
        loaded[key] = std::move(record);
        return true;
      }));
  FARM_RETURN_IF_ERROR(bad);
  absl::MutexLock lock(&mu_);
  by_name_ = std::move(loaded);
  return absl::OkStatus();
}

absl::StatusOr<farm::v1::SecretInfo> SecretRegistry::Set(absl::string_view name,
                                                         absl::string_view value,
                                                         absl::string_view by) {
  FARM_RETURN_IF_ERROR(RequireKeyring());
  FARM_RETURN_IF_ERROR(common::ValidateSecretName(name));
  FARM_RETURN_IF_ERROR(common::ValidateSecretValue(name, value));
  absl::MutexLock write(&write_mu_);
  farm::internal::SecretRecord record;
  const int64_t now = clock_->NowMs();
  record.set_created_ms(now);
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = by_name_.find(name);
    if (it != by_name_.end()) {
      record.set_created_ms(it->second.created_ms());
    } else if (by_name_.size() >= kMaxSecrets) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the farm holds ", kMaxSecrets, " secrets already; remove some first"));
    }
  }
  record.set_updated_ms(now);
  record.set_updated_by(std::string(by));
  FARM_RETURN_IF_ERROR(keyring_->Seal(name, value, &record));
  WriteBatch batch;
  batch.Put(Cf::kSecrets, std::string(name), record.SerializeAsString());
  FARM_RETURN_IF_ERROR(store_->Write(batch, /*sync=*/true));
  farm::v1::SecretInfo info = InfoOf(name, record);
  absl::MutexLock lock(&mu_);
  by_name_[name] = std::move(record);
  return info;
}

absl::StatusOr<std::vector<farm::v1::SecretInfo>> SecretRegistry::List() const {
  FARM_RETURN_IF_ERROR(RequireKeyring());
  std::vector<farm::v1::SecretInfo> out;
  {
    absl::ReaderMutexLock lock(&mu_);
    out.reserve(by_name_.size());
    for (const auto& [name, record] : by_name_) out.push_back(InfoOf(name, record));
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.name() < b.name(); });
  return out;
}

absl::StatusOr<farm::v1::SecretInfo> SecretRegistry::Delete(absl::string_view name) {
  FARM_RETURN_IF_ERROR(RequireKeyring());
  FARM_RETURN_IF_ERROR(common::ValidateSecretName(name));
  absl::MutexLock write(&write_mu_);
  farm::v1::SecretInfo info;
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = by_name_.find(name);
    if (it == by_name_.end()) return absl::NotFoundError(absl::StrCat("no secret is named ", name));
    info = InfoOf(name, it->second);
  }
  WriteBatch batch;
  batch.Delete(Cf::kSecrets, std::string(name));
  FARM_RETURN_IF_ERROR(store_->Write(batch, /*sync=*/true));
  absl::MutexLock lock(&mu_);
  by_name_.erase(name);
  return info;
}

absl::Status SecretRegistry::CheckExist(
    const google::protobuf::RepeatedPtrField<std::string>& names) const {
  if (names.empty()) return absl::OkStatus();
  FARM_RETURN_IF_ERROR(RequireKeyring());
  absl::ReaderMutexLock lock(&mu_);
  for (const std::string& name : names) {
    if (!by_name_.contains(name)) {
      return absl::NotFoundError(absl::StrCat("the job uses secret ", common::Quote(name),
                                              ", which does not exist (`farmctl secret set "
                                              "NAME` makes it)"));
    }
  }
  return absl::OkStatus();
}

std::vector<common::NamedSecret> SecretRegistry::Values(
    const google::protobuf::RepeatedPtrField<std::string>& names) const {
  std::vector<common::NamedSecret> out;
  if (names.empty() || !keyring_.has_value()) return out;
  std::vector<std::pair<std::string, farm::internal::SecretRecord>> records;
  {
    absl::ReaderMutexLock lock(&mu_);
    for (const std::string& name : names) {
      auto it = by_name_.find(name);
      if (it == by_name_.end()) {
        FARM_LOG(WARNING) << "secret " << common::Quote(name)
                          << " of a leased job no longer exists";
        continue;
      }
      records.emplace_back(name, it->second);
    }
  }
  for (auto& [name, record] : records) {
    absl::StatusOr<std::string> value = keyring_->Open(name, record);
    if (!value.ok()) {
      FARM_LOG(ERROR) << value.status().message();
      continue;
    }
    out.push_back(common::NamedSecret{std::move(name), *std::move(value)});
  }
  return out;
}

std::shared_ptr<const common::RedactionPatterns> SecretRegistry::PatternsFor(
    const google::protobuf::RepeatedPtrField<std::string>& names) const {
  std::vector<common::NamedSecret> values = Values(names);
  if (values.empty()) return nullptr;
  absl::StatusOr<std::shared_ptr<const common::RedactionPatterns>> patterns =
      common::RedactionPatterns::Create(values);
  for (common::NamedSecret& s : values) OPENSSL_cleanse(s.value.data(), s.value.size());
  if (!patterns.ok()) {
    // Only a value shorter than the minimum, which Set refuses: redact the others anyway.
    FARM_LOG(ERROR) << "cannot redact the secrets of a job: " << patterns.status().message();
    return nullptr;
  }
  return *std::move(patterns);
}

}  // namespace farm::coordinator
