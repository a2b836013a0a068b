#include "coordinator/auth/token_registry.h"

#include <openssl/rand.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/digest.h"
#include "common/status_macros.h"

namespace farm::coordinator {
namespace {

constexpr absl::string_view kTokenPrefix = "farm_";
constexpr size_t kIdDigits = 12;
constexpr size_t kRandomBytes = 32;

absl::StatusOr<std::string> NewTokenText() {
  unsigned char random[kRandomBytes];
  if (RAND_bytes(random, sizeof(random)) != 1) {
    return absl::InternalError("the random number generator failed");
  }
  return absl::StrCat(kTokenPrefix, absl::WebSafeBase64Escape(absl::string_view(
                                        reinterpret_cast<char*>(random), kRandomBytes)));
}

std::string HashOf(absl::string_view token) { return common::DigestOf(token).hash; }

}  // namespace

farm::v1::TokenInfo TokenRegistry::InfoOf(absl::string_view hash,
                                          const farm::internal::TokenRecord& r) {
  farm::v1::TokenInfo info;
  info.set_id(std::string(hash.substr(0, kIdDigits)));
  info.set_name(r.name());
  info.set_role(r.role());
  info.set_created_ms(r.created_ms());
  info.set_expires_ms(r.expires_ms());
  info.set_created_by(r.created_by());
  return info;
}

absl::Status TokenRegistry::Load() {
  absl::flat_hash_map<std::string, Entry> loaded;
  absl::Status bad;
  FARM_RETURN_IF_ERROR(
      store_->Scan(Cf::kTokens, "", "", [&](absl::string_view key, absl::string_view value) {
        farm::internal::TokenRecord record;
        absl::StatusOr<Role> role;
        if (key.size() != 64 || !record.ParseFromString(std::string(value)) ||
            !(role = ParseRole(record.role())).ok()) {
          bad = absl::DataLossError(
              absl::StrCat("token record ", key.substr(0, kIdDigits), " is malformed"));
          return false;
        }
        loaded[key] = Entry{Principal{*role, record.name()}, InfoOf(key, record)};
        return true;
      }));
  FARM_RETURN_IF_ERROR(bad);
  absl::MutexLock lock(&mu_);
  by_hash_ = std::move(loaded);
  return absl::OkStatus();
}

absl::StatusOr<TokenRegistry::Created> TokenRegistry::Create(absl::string_view name,
                                                             absl::string_view role, int64_t ttl_ms,
                                                             absl::string_view created_by) {
  if (absl::Status s = CheckPrincipalName(name); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("token name: ", s.message()));
  }
  FARM_ASSIGN_OR_RETURN(Role parsed, ParseRole(role));
  if (ttl_ms < 0 || ttl_ms > kMaxTtlMs) {
    return absl::InvalidArgumentError(absl::StrCat("ttl must be between 0 (never expires) and ",
                                                   kMaxTtlMs / 86'400'000, " days; got ", ttl_ms,
                                                   " ms"));
  }
  FARM_ASSIGN_OR_RETURN(std::string token, NewTokenText());
  const std::string hash = HashOf(token);
  farm::internal::TokenRecord record;
  record.set_name(std::string(name));
  record.set_role(std::string(RoleName(parsed)));
  record.set_created_ms(clock_->NowMs());
  record.set_expires_ms(ttl_ms == 0 ? 0 : record.created_ms() + ttl_ms);
  record.set_created_by(std::string(created_by));
  {
    absl::MutexLock lock(&mu_);
    if (by_hash_.size() >= kMaxTokens) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the farm holds ", kMaxTokens, " tokens already; revoke some first"));
    }
  }
  WriteBatch batch;
  batch.Put(Cf::kTokens, hash, record.SerializeAsString());
  FARM_RETURN_IF_ERROR(store_->Write(batch, /*sync=*/true));
  Created created{std::move(token), InfoOf(hash, record)};
  absl::MutexLock lock(&mu_);
  by_hash_[hash] = Entry{Principal{parsed, record.name()}, created.info};
  return created;
}

std::vector<farm::v1::TokenInfo> TokenRegistry::List() const {
  std::vector<farm::v1::TokenInfo> out;
  {
    absl::ReaderMutexLock lock(&mu_);
    out.reserve(by_hash_.size());
    for (const auto& [hash, entry] : by_hash_) out.push_back(entry.info);
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.created_ms() != b.created_ms() ? a.created_ms() < b.created_ms() : a.id() < b.id();
  });
  return out;
}

absl::StatusOr<farm::v1::TokenInfo> TokenRegistry::Revoke(absl::string_view id) {
  if (id.size() != kIdDigits ||
      !std::all_of(id.begin(), id.end(), [](char c) { return absl::ascii_isxdigit(c); })) {
    return absl::InvalidArgumentError(
        absl::StrCat("a token id is ", kIdDigits, " hex digits, as `farmctl token list` shows it"));
  }
  std::string hash;
  farm::v1::TokenInfo info;
  {
    absl::ReaderMutexLock lock(&mu_);
    for (const auto& [h, entry] : by_hash_) {
      if (absl::StartsWith(h, id)) {
        hash = h;
        info = entry.info;
        break;
      }
    }
  }
  if (hash.empty()) return absl::NotFoundError(absl::StrCat("no token has the id ", id));
  WriteBatch batch;
  batch.Delete(Cf::kTokens, hash);
  FARM_RETURN_IF_ERROR(store_->Write(batch, /*sync=*/true));
  absl::MutexLock lock(&mu_);
  by_hash_.erase(hash);
  return info;
}

absl::StatusOr<Principal> TokenRegistry::Authenticate(absl::string_view token) const {
  const std::string hash = HashOf(token);
  absl::ReaderMutexLock lock(&mu_);
  auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) {
    return absl::UnauthenticatedError("the token is not known (never issued, or revoked)");
  }
  const int64_t expires = it->second.info.expires_ms();
  if (expires != 0 && clock_->NowMs() >= expires) {
    return absl::UnauthenticatedError(
        absl::StrCat("the token ", it->second.info.id(), " has expired"));
  }
  return it->second.principal;
}

}  // namespace farm::coordinator
