#include "coordinator/auth/token_registry.h"

#include <openssl/rand.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/digest.h"
#include "common/status_macros.h"

namespace farm::coordinator {
namespace {

constexpr absl::string_view kTokenPrefix = "farm_";
constexpr size_t kIdDigits = 12;
constexpr size_t kRandomBytes = 32;
constexpr size_t kMaxRequestIdBytes = 64;
// TokenInfo.kind of an enrollment token.
constexpr absl::string_view kKindEnrollment = "enrollment";

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

std::string TokenRegistry::IdOf(absl::string_view token) {
  return HashOf(token).substr(0, kIdDigits);
}

farm::v1::TokenInfo TokenRegistry::InfoOf(absl::string_view hash,
                                          const farm::internal::TokenRecord& r) {
  farm::v1::TokenInfo info;
  info.set_id(std::string(hash.substr(0, kIdDigits)));
  info.set_name(r.name());
  info.set_role(r.role());
  info.set_created_ms(r.created_ms());
  info.set_expires_ms(r.expires_ms());
  info.set_created_by(r.created_by());
  if (r.enrollment()) info.set_kind(std::string(kKindEnrollment));
  info.mutable_labels()->insert(r.labels().begin(), r.labels().end());
  info.set_used_ms(r.used_ms());
  info.set_used_by(r.used_by());
  return info;
}

TokenRegistry::Entry TokenRegistry::EntryOf(absl::string_view hash,
                                            const farm::internal::TokenRecord& r, Role role) {
  Principal principal{role, r.name(), {}};
  principal.pinned_labels.insert(r.labels().begin(), r.labels().end());
  return Entry{std::move(principal), InfoOf(hash, r), r};
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
        loaded[key] = EntryOf(key, record, *role);
        return true;
      }));
  FARM_RETURN_IF_ERROR(bad);
  absl::MutexLock lock(&mu_);
  by_hash_ = std::move(loaded);
  return absl::OkStatus();
}

absl::Status TokenRegistry::CheckRoom() const {
  absl::ReaderMutexLock lock(&mu_);
  if (by_hash_.size() >= kMaxTokens) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the farm holds ", kMaxTokens, " tokens already; revoke some first"));
  }
  return absl::OkStatus();
}

absl::Status TokenRegistry::Commit(
    const std::vector<std::pair<std::string, farm::internal::TokenRecord>>& puts,
    const std::vector<std::string>& deletes) {
  WriteBatch batch;
  for (const auto& [hash, record] : puts) batch.Put(Cf::kTokens, hash, record.SerializeAsString());
  for (const std::string& hash : deletes) batch.Delete(Cf::kTokens, hash);
  FARM_RETURN_IF_ERROR(store_->Write(batch, /*sync=*/true));
  absl::MutexLock lock(&mu_);
  for (const auto& [hash, record] : puts) {
    by_hash_[hash] = EntryOf(hash, record, *ParseRole(record.role()));
  }
  for (const std::string& hash : deletes) by_hash_.erase(hash);
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
  absl::MutexLock write(&write_mu_);
  FARM_RETURN_IF_ERROR(CheckRoom());
  FARM_RETURN_IF_ERROR(Commit({{hash, record}}, {}));
  return Created{std::move(token), InfoOf(hash, record)};
}

absl::StatusOr<TokenRegistry::Created> TokenRegistry::CreateEnrollment(
    const std::map<std::string, std::string>& labels, int64_t ttl_ms,
    absl::string_view created_by) {
  if (ttl_ms == 0) ttl_ms = kDefaultEnrollTtlMs;
  if (ttl_ms < 0 || ttl_ms > kMaxEnrollTtlMs) {
    return absl::InvalidArgumentError(
        absl::StrCat("an enrollment token lives at most ", kMaxEnrollTtlMs / 86'400'000,
                     " days (default 15 minutes); got a ttl of ", ttl_ms, " ms"));
  }
  for (const auto& [key, value] : labels) {
    if (key.empty()) return absl::InvalidArgumentError("labels: a label key is empty");
  }
  FARM_ASSIGN_OR_RETURN(std::string token, NewTokenText());
  const std::string hash = HashOf(token);
  farm::internal::TokenRecord record;
  record.set_enrollment(true);
  record.set_role(std::string(RoleName(Role::kAgent)));  // what it is exchanged for
  record.set_created_ms(clock_->NowMs());
  record.set_expires_ms(record.created_ms() + ttl_ms);
  record.set_created_by(std::string(created_by));
  record.mutable_labels()->insert(labels.begin(), labels.end());
  absl::MutexLock write(&write_mu_);
  FARM_RETURN_IF_ERROR(CheckRoom());
  FARM_RETURN_IF_ERROR(Commit({{hash, record}}, {}));
  return Created{std::move(token), InfoOf(hash, record)};
}

absl::StatusOr<farm::internal::TokenRecord> TokenRegistry::UsableEnrollment(
    const std::string& hash, absl::string_view agent, absl::string_view request_id) const {
  const std::string id = hash.substr(0, kIdDigits);
  absl::ReaderMutexLock lock(&mu_);
  auto it = by_hash_.find(hash);
  if (it == by_hash_.end() || !it->second.record.enrollment()) {
    return absl::UnauthenticatedError(
        "the enrollment token is not known (never issued, revoked, or not an enrollment token)");
  }
  const farm::internal::TokenRecord& record = it->second.record;
  if (record.used_ms() != 0) {
    if (record.used_by() == agent && !request_id.empty() &&
        record.used_request_id() == request_id) {
      return record;  // the same enrollment again: its answer was lost
    }
    return absl::PermissionDeniedError(absl::StrCat(
        "the enrollment token ", id, " was already used by agent ", record.used_by(), " at ",
        absl::FormatTime(absl::RFC3339_sec, absl::FromUnixMillis(record.used_ms()),
                         absl::UTCTimeZone()),
        "; an enrollment token works once: ask for a new one"));
  }
  if (clock_->NowMs() >= record.expires_ms()) {
    return absl::UnauthenticatedError(
        absl::StrCat("the enrollment token ", id, " has expired; ask for a new one"));
  }
  for (const auto& [hash2, entry] : by_hash_) {
    if (entry.record.enrollment() || entry.principal.role != Role::kAgent ||
        entry.principal.name != agent) {
      continue;
    }
    return absl::AlreadyExistsError(absl::StrCat(
        "agent ", agent, " has a credential already (token ", entry.info.id(),
        "): choose another --name, or revoke that token first (farmctl token revoke)"));
  }
  return record;
}

absl::StatusOr<TokenRegistry::Created> TokenRegistry::Enroll(absl::string_view enroll_token,
                                                             absl::string_view agent,
                                                             absl::string_view request_id) {
  if (absl::Status s = CheckPrincipalName(agent); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("agent name: ", s.message()));
  }
  if (request_id.size() > kMaxRequestIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the request id is longer than ", kMaxRequestIdBytes, " bytes"));
  }
  const std::string hash = HashOf(enroll_token);
  absl::MutexLock write(&write_mu_);
  FARM_ASSIGN_OR_RETURN(farm::internal::TokenRecord enrollment,
                        UsableEnrollment(hash, agent, request_id));
  FARM_RETURN_IF_ERROR(CheckRoom());
  FARM_ASSIGN_OR_RETURN(std::string credential, NewTokenText());
  const std::string credential_hash = HashOf(credential);
  farm::internal::TokenRecord record;
  record.set_name(std::string(agent));
  record.set_role(std::string(RoleName(Role::kAgent)));
  record.set_created_ms(clock_->NowMs());
  record.set_created_by(absl::StrCat("enrollment ", hash.substr(0, kIdDigits)));
  *record.mutable_labels() = enrollment.labels();
  std::vector<std::string> deletes;
  if (!enrollment.credential_hash().empty()) deletes.push_back(enrollment.credential_hash());
  enrollment.set_used_ms(record.created_ms());
  enrollment.set_used_by(std::string(agent));
  enrollment.set_used_request_id(std::string(request_id));
  enrollment.set_credential_hash(credential_hash);
  FARM_RETURN_IF_ERROR(Commit({{hash, enrollment}, {credential_hash, record}}, deletes));
  return Created{std::move(credential), InfoOf(credential_hash, record)};
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
  absl::MutexLock write(&write_mu_);
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
  FARM_RETURN_IF_ERROR(Commit({}, {hash}));
  return info;
}

absl::StatusOr<Principal> TokenRegistry::Authenticate(absl::string_view token) const {
  const std::string hash = HashOf(token);
  absl::ReaderMutexLock lock(&mu_);
  auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) {
    return absl::UnauthenticatedError("the token is not known (never issued, or revoked)");
  }
  if (it->second.record.enrollment()) {
    return absl::UnauthenticatedError(absl::StrCat(
        "the token ", it->second.info.id(),
        " is an enrollment token, not a credential: farm-agent --enroll_token exchanges it for "
        "the agent's own credential"));
  }
  const int64_t expires = it->second.info.expires_ms();
  if (expires != 0 && clock_->NowMs() >= expires) {
    return absl::UnauthenticatedError(
        absl::StrCat("the token ", it->second.info.id(), " has expired"));
  }
  return it->second.principal;
}

}  // namespace farm::coordinator
