// Bearer tokens: created with a role, a name and an optional expiry, shown once, stored only as
// their SHA-256 (Cf::kTokens), listed and revoked by id (the hash's first 12 hex digits). Every
// call that carries a token is checked here; a revoked or expired token is refused on its next
// call. Tokens are few (people, CI systems, agents): all are held in memory, loaded by Load().
//
// Enrollment tokens live here too, as records of another kind: short-lived, single-use, never
// accepted as a credential (Authenticate refuses them). Enroll() exchanges one for an agent's
// own credential (role agent, named as the agent, carrying the labels the enrollment token
// pins) in one synced write that also marks the enrollment token used, so it is used once:
// concurrent Enroll() calls with the same token are serialized and only the first wins, and a
// coordinator that crashes after the reply finds the token used when it starts again.
//
// Thread-safe. Authenticate() is on every call's path: an in-memory lookup under a reader lock
// and one SHA-256, no store access. Create(), CreateEnrollment(), Enroll() and Revoke() write
// the store (synced) on the caller's thread, one at a time: call them from a pool, not from
// gRPC's callback threads.
#pragma once

#include <map>
#include <string>
#include <utility>
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
  // An enrollment token lives 15 minutes unless asked otherwise, and at most 7 days.
  static constexpr int64_t kDefaultEnrollTtlMs = 15 * 60'000;
  static constexpr int64_t kMaxEnrollTtlMs = int64_t{7} * 24 * 3600'000;

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

  // A new enrollment token that lives `ttl_ms` (0: kDefaultEnrollTtlMs) and lets the agent that
  // uses it claim only `labels` (empty: any). INVALID_ARGUMENT for a bad ttl or label;
  // RESOURCE_EXHAUSTED past kMaxTokens; the store's error when the write fails.
  absl::StatusOr<Created> CreateEnrollment(const std::map<std::string, std::string>& labels,
                                           int64_t ttl_ms, absl::string_view created_by);

  // Exchanges the enrollment token `enroll_token` for a new credential of role agent named
  // `agent` (never expiring, with the enrollment token's labels), and marks the enrollment
  // token used by `agent`, in one synced write. Errors (the messages name the enrollment
  // token's id, never the token):
  //   UNAUTHENTICATED: unknown (never issued, or revoked), expired, or not an enrollment token;
  //   PERMISSION_DENIED: already used, unless by `agent` with the same `request_id` (a retry
  //     whose answer was lost): then a fresh credential replaces the one given before;
  //   ALREADY_EXISTS: another token of role agent has this name already (revoke it first);
  //   INVALID_ARGUMENT: a bad agent name or request id; the store's error when the write fails
  //   (then nothing changed).
  absl::StatusOr<Created> Enroll(absl::string_view enroll_token, absl::string_view agent,
                                 absl::string_view request_id);

  // The id of a token's text (what `token list` shows for it), for logs.
  static std::string IdOf(absl::string_view token);

  // Every token, oldest first; expired ones too (marked by expires_ms).
  std::vector<farm::v1::TokenInfo> List() const;

  // NOT_FOUND when no token has this id; INVALID_ARGUMENT for a malformed id.
  absl::StatusOr<farm::v1::TokenInfo> Revoke(absl::string_view id);

  // The principal a token stands for. UNAUTHENTICATED when it is unknown (or revoked), expired
  // or an enrollment token; the message never contains the token.
  absl::StatusOr<Principal> Authenticate(absl::string_view token) const;

 private:
  struct Entry {
    Principal principal;
    farm::v1::TokenInfo info;
    farm::internal::TokenRecord record;
  };
  static farm::v1::TokenInfo InfoOf(absl::string_view hash, const farm::internal::TokenRecord& r);
  static Entry EntryOf(absl::string_view hash, const farm::internal::TokenRecord& r, Role role);
  // Writes `puts` and `deletes` (hashes) in one synced batch, then applies them in memory.
  absl::Status Commit(const std::vector<std::pair<std::string, farm::internal::TokenRecord>>& puts,
                      const std::vector<std::string>& deletes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // RESOURCE_EXHAUSTED when the registry is full.
  absl::Status CheckRoom() const;
  // The record of the enrollment token with this hash, checked usable by `agent`/`request_id`.
  absl::StatusOr<farm::internal::TokenRecord> UsableEnrollment(const std::string& hash,
                                                               absl::string_view agent,
                                                               absl::string_view request_id) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);

  Store* const store_;
  const common::Clock* const clock_;
  // Held by every writer across its check and its write, so that checks see every write before
  // them (the enrollment token's single use).
  absl::Mutex write_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> by_hash_ ABSL_GUARDED_BY(mu_);  // hex SHA-256 →
};

}  // namespace farm::coordinator
