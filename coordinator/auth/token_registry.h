// Bearer tokens: created with a role, a name and an optional expiry, shown once, stored only as
// their SHA-256 (Cf::kTokens), listed and revoked by id (the hash's first 12 hex digits). Every
// call that carries a token is checked here; a revoked or expired token is refused on its next
// call. Tokens are few (people, CI systems, agents): all are held in memory, loaded by Load().
//
// Thread-safe. Authenticate() is on every call's path: an in-memory lookup under a reader lock
// and one SHA-256, no store access. Create() and Revoke() write the store (synced) on the
// caller's thread: call them from a pool, not from gRPC's callback threads.
#pragma once

#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "coordinator/auth/principal.h"
#include "coordinator/store/store.h"
#include "farm/internal/records.pb.h"
#include "farm/v1/farm.pb.h"

namespace farm::coordinator {

class TokenRegistry {
 public:
  // Longest a token may live (ttl); 0 means it never expires.
  static constexpr int64_t kMaxTtlMs = int64_t{10} * 366 * 24 * 3600'000;
  // Most tokens the farm keeps (each is a person, a CI system or an agent).
  static constexpr size_t kMaxTokens = 100'000;

  // `store` and `clock` are not owned and outlive the registry.
  TokenRegistry(Store* store, const common::Clock* clock) : store_(store), clock_(clock) {}

  // Reads every token from the store. DATA_LOSS for a malformed record.
  absl::Status Load();

  struct Created {
    std::string token;  // the secret: "farm_" and 43 base64url characters (256 random bits)
    farm::v1::TokenInfo info;
  };
  // INVALID_ARGUMENT for a bad name, role or ttl; RESOURCE_EXHAUSTED past kMaxTokens; the
  // store's error when the write fails (then the token does not exist).
  absl::StatusOr<Created> Create(absl::string_view name, absl::string_view role, int64_t ttl_ms,
                                 absl::string_view created_by);

  // Every token, oldest first; expired ones too (marked by expires_ms).
  std::vector<farm::v1::TokenInfo> List() const;

  // NOT_FOUND when no token has this id; INVALID_ARGUMENT for a malformed id.
  absl::StatusOr<farm::v1::TokenInfo> Revoke(absl::string_view id);

  // The principal a token stands for. UNAUTHENTICATED when it is unknown (or revoked) or
  // expired; the message never contains the token.
  absl::StatusOr<Principal> Authenticate(absl::string_view token) const;

 private:
  struct Entry {
    Principal principal;
    farm::v1::TokenInfo info;
  };
  static farm::v1::TokenInfo InfoOf(absl::string_view hash, const farm::internal::TokenRecord& r);

  Store* const store_;
  const common::Clock* const clock_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> by_hash_ ABSL_GUARDED_BY(mu_);  // hex SHA-256 →
};

}  // namespace farm::coordinator
