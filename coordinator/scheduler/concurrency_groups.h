// Concurrency groups: at most `concurrency` jobs naming a group are queued or running at once,
// farm-wide; the others wait (WAITING) in submit order, first come first served. Durable in
// Cf::kGroups: "a" | group | 0 | seq for a job holding a place, "w" | group | 0 | seq for one
// waiting for a place (keys.h), so that a restart keeps both.
//
// Owns: each group's admitted jobs and the count of its waiters (the waiters themselves stay in
// the store, in order). It decides who gets a place; the job lifecycle (job_lifecycle.h) moves
// the jobs. Engine thread only. Errors: the store's read errors.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/scheduler/engine.h"
#include "farm/v1/farm.pb.h"

namespace farm::coordinator {

class ConcurrencyGroups {
 public:
  absl::Status Recover(Store* store);

  // Whether `job` (ready to run) takes a place of its group now: true when it has no group or a
  // place is free and nobody waits before it; else it is recorded as waiting (false), and
  // *reason says for what.
  bool Admit(Txn& txn, const farm::v1::Job& job, std::string* reason);
  // Job `seq` of group `name` ended: frees its place. Returns the jobs given the freed places
  // (WAITING jobs, loaded, already admitted), in submit order, for the lifecycle to release.
  absl::StatusOr<std::vector<farm::v1::Job>> Release(Txn& txn, const std::string& name,
                                                     uint64_t seq);
  // `job` left the wait without running (cancelled while WAITING for a place).
  absl::Status Withdraw(Txn& txn, const farm::v1::Job& job);

 private:
  struct Group {
    std::set<uint64_t> admitted;
    uint64_t waiting = 0;
  };
  // Gives free places of `name` to its waiters, in submit order.
  absl::StatusOr<std::vector<farm::v1::Job>> AdmitWaiters(Txn& txn, const std::string& name);

  std::map<std::string, Group> groups_;
};

}  // namespace farm::coordinator
