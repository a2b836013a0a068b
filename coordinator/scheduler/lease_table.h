// The lease table: which running attempt holds which job. A lease is granted with a fresh epoch
// (a fencing token, strictly increasing and durable before the agent hears of it); every agent
// call names (job, attempt, epoch), and only the current lease's calls change anything. A lease
// lives for the TTL after its last renewal (an agent's heartbeat); an expired one ends its
// attempt LOST (see attempts.h).
//
// Owns: the active leases (with the running job's in-memory record, the authoritative copy
// while it runs), the epoch counter and the active index (Cf::kActive: job seq → "", one key
// per lease, so that recovery finds them without scanning the jobs). Each lease knows the
// principal it was granted to (today the agent's name) so that a caller can be held to its own
// attempts.
//
// Engine thread only. Errors: INVALID_ARGUMENT (a malformed job id), FAILED_PRECONDITION (a
// stale epoch or an ended lease), PERMISSION_DENIED (another principal's lease), and the store's
// read errors and DATA_LOSS from Recover.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "coordinator/scheduler/engine.h"
#include "coordinator/store/store.h"
#include "farm/v1/farm.pb.h"

namespace farm::coordinator {

struct Lease {
  farm::v1::Job job;  // with the running attempt, as the agent reported it so far
  uint32_t attempt = 0;
  uint64_t epoch = 0;
  std::string holder;             // the principal (agent) the lease was granted to
  int64_t expires_ms = 0;         // monotonic
  bool cancel_delivered = false;  // the holder was told of a cancel
};

class LeaseTable {
 public:
  LeaseTable(common::Clock* clock, int64_t ttl_ms) : clock_(clock), ttl_ms_(ttl_ms) {}

  // Loads the epoch counter and every active lease. A lease that this process already held
  // keeps its expiry; one new to it gets a full TTL (a restart must not cost a healthy agent
  // its lease).
  absl::Status Recover(Store* store);

  // A fresh epoch, durable with this group.
  uint64_t NextEpoch(Txn& txn);
  // Records the lease of `job`'s last attempt (just added, with `epoch`) for `holder`.
  Lease& Add(Txn& txn, farm::v1::Job job, const std::string& holder);
  // Ends the lease of job `seq` (its attempt is over): nullopt when it has none.
  std::optional<Lease> Take(Txn& txn, uint64_t seq);

  // Fencing: the current lease named by `ref`. With `holder`, also that it is the holder's.
  absl::StatusOr<Lease*> Check(const farm::v1::LeaseRef& ref, const std::string* holder = nullptr);
  Lease* Find(uint64_t seq);
  void Renew(Lease& lease) { lease.expires_ms = clock_->MonotonicMs() + ttl_ms_; }

  // The jobs whose leases expired by now.
  std::vector<uint64_t> Expired() const;
  // The jobs `holder` holds leases of, in job order.
  std::vector<uint64_t> HeldBy(const std::string& holder) const;
  // Every holder with the jobs it holds (one pass over the table).
  std::map<std::string, std::vector<uint64_t>> ByHolder() const;
  size_t size() const { return leases_.size(); }
  int64_t ttl_ms() const { return ttl_ms_; }

 private:
  common::Clock* const clock_;
  const int64_t ttl_ms_;
  uint64_t last_epoch_ = 0;
  std::map<uint64_t, Lease> leases_;
};

}  // namespace farm::coordinator
