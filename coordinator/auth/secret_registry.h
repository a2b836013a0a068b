// Secrets: set by admins (`farmctl secret set NAME`), listed by name, removed; referenced by
// jobs by name (JobSpec.secrets) and handed, decrypted, only to the agent that holds a job's
// lease. Stored in Cf::kSecrets sealed with AES-256-GCM (auth/secret_keyring.h); the registry
// holds the sealed records in memory (secrets are few) and decrypts a value only when a lease
// or the log redaction needs it. Without a keyring (the coordinator has no --secrets_key_file)
// every operation that needs a secret fails with FAILED_PRECONDITION saying so.
//
// Thread-safe. Set() and Delete() write the store (synced) on the caller's thread: call them
// from a pool, not from gRPC's callback threads. The reads (List, CheckExist, Values,
// PatternsFor) touch memory only.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/redactor.h"
#include "coordinator/auth/secret_keyring.h"
#include "coordinator/store/store.h"
#include "farm/internal/records.pb.h"
#include "farm/v1/farm.pb.h"

namespace farm::coordinator {

class SecretRegistry {
 public:
  // Most secrets the farm keeps.
  static constexpr size_t kMaxSecrets = 10'000;

  // `store` and `clock` are not owned and outlive the registry; `keyring` is nullopt when the
  // coordinator has no secrets key.
  SecretRegistry(Store* store, const common::Clock* clock, std::optional<SecretKeyring> keyring)
      : store_(store), clock_(clock), keyring_(std::move(keyring)) {}

  // Reads every record from the store. DATA_LOSS for a malformed record. Records under a key id
  // the keyring lacks load (they are listed) but do not open; `*warnings` says which.
  absl::Status Load(std::vector<std::string>* warnings);

  // Creates or replaces a secret. INVALID_ARGUMENT for a bad name or value (common/job_limits.h);
  // FAILED_PRECONDITION without a keyring; RESOURCE_EXHAUSTED past kMaxSecrets; the store's
  // error when the write fails (then nothing changed).
  absl::StatusOr<farm::v1::SecretInfo> Set(absl::string_view name, absl::string_view value,
                                           absl::string_view by);
  // Every secret, by name. FAILED_PRECONDITION without a keyring.
  absl::StatusOr<std::vector<farm::v1::SecretInfo>> List() const;
  // NOT_FOUND when there is no such secret; FAILED_PRECONDITION without a keyring.
  absl::StatusOr<farm::v1::SecretInfo> Delete(absl::string_view name);

  // OK when every name is a secret: what a submit that references them checks. NOT_FOUND naming
  // the first missing one; FAILED_PRECONDITION without a keyring (only when `names` is not
  // empty: jobs without secrets never need a key).
  absl::Status CheckExist(const google::protobuf::RepeatedPtrField<std::string>& names) const;

  // The decrypted values of `names`, for the agent that holds a lease. A name that is missing
  // (removed since the submit) or does not open is left out, with a log line naming it (the
  // agent refuses to run a job whose secrets did not all arrive).
  std::vector<common::NamedSecret> Values(
      const google::protobuf::RepeatedPtrField<std::string>& names) const;

  // What redacts the values of `names` from a job's output; nullptr when `names` is empty or
  // none of them has a value (nothing to redact).
  std::shared_ptr<const common::RedactionPatterns> PatternsFor(
      const google::protobuf::RepeatedPtrField<std::string>& names) const;

 private:
  absl::Status RequireKeyring() const;
  static farm::v1::SecretInfo InfoOf(absl::string_view name, const farm::internal::SecretRecord& r);

  Store* const store_;
  const common::Clock* const clock_;
  const std::optional<SecretKeyring> keyring_;
  // Serializes Set and Delete (store write, then memory), so that memory follows the store.
  absl::Mutex write_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, farm::internal::SecretRecord> by_name_ ABSL_GUARDED_BY(mu_);
};

}  // namespace farm::coordinator
