#include "coordinator/scheduler/concurrency_groups.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/scheduler/job_records.h"
#include "coordinator/store/keys.h"

namespace farm::coordinator {
namespace {

size_t Limit(const farm::v1::JobSpec& spec) {
  return static_cast<size_t>(spec.concurrency() > 0 ? spec.concurrency() : 1);
}

}  // namespace

absl::Status ConcurrencyGroups::Recover(Store* store) {
  groups_.clear();
  return store->Scan(Cf::kGroups, "", "", [&](absl::string_view key, absl::string_view) {
    const size_t zero = key.find('\0');
    if (key.size() < 2 || zero == absl::string_view::npos || key.size() != zero + 9) return true;
    Group& group = groups_[std::string(key.substr(1, zero - 1))];
    if (key[0] == keys::kGroupAdmitted) group.admitted.insert(keys::ReadU64(key, zero + 1));
    if (key[0] == keys::kGroupWaiting) ++group.waiting;
    return true;
  });
}

bool ConcurrencyGroups::Admit(Txn& txn, const farm::v1::Job& job, std::string* reason) {
  const std::string& name = job.spec().concurrency_group();
  if (name.empty()) return true;
  Group& group = groups_[name];
  // First come, first served: nobody overtakes a job already waiting for the group.
  if (group.waiting == 0 && group.admitted.size() < Limit(job.spec())) {
    group.admitted.insert(job.seq());
    txn.Put(Cf::kGroups, keys::GroupKey(keys::kGroupAdmitted, name, job.seq()), "");
    return true;
  }
  ++group.waiting;
  txn.Put(Cf::kGroups, keys::GroupKey(keys::kGroupWaiting, name, job.seq()), "");
  *reason = absl::StrCat("waiting for a place in concurrency group ", name, " (",
                         group.admitted.size(), " of ", Limit(job.spec()), " taken)");
  return false;
}

absl::StatusOr<std::vector<farm::v1::Job>> ConcurrencyGroups::Release(Txn& txn,
                                                                      const std::string& name,
                                                                      uint64_t seq) {
  if (name.empty()) return std::vector<farm::v1::Job>();
  auto it = groups_.find(name);
  if (it == groups_.end() || it->second.admitted.erase(seq) == 0) {
    return std::vector<farm::v1::Job>();
  }
  txn.Delete(Cf::kGroups, keys::GroupKey(keys::kGroupAdmitted, name, seq));
  return AdmitWaiters(txn, name);
}

absl::Status ConcurrencyGroups::Withdraw(Txn& txn, const farm::v1::Job& job) {
  const std::string& name = job.spec().concurrency_group();
  if (name.empty()) return absl::OkStatus();
  // Waiting for a group place, or for its needs (then there is no key to delete).
  const std::string key = keys::GroupKey(keys::kGroupWaiting, name, job.seq());
  FARM_ASSIGN_OR_RETURN(auto entry, txn.Get(Cf::kGroups, key));
  if (!entry.has_value()) return absl::OkStatus();
  txn.Delete(Cf::kGroups, key);
  auto it = groups_.find(name);
  if (it != groups_.end() && it->second.waiting > 0) --it->second.waiting;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<farm::v1::Job>> ConcurrencyGroups::AdmitWaiters(
    Txn& txn, const std::string& name) {
  Group& group = groups_[name];
  const std::string prefix = keys::GroupPrefix(keys::kGroupWaiting, name);
  std::vector<farm::v1::Job> admitted;
  while (group.waiting > 0) {
    uint64_t seq = 0;
    FARM_RETURN_IF_ERROR(txn.Scan(Cf::kGroups, prefix, keys::PrefixEnd(prefix),
                                  [&](absl::string_view key, absl::string_view) {
                                    seq = keys::ReadU64(key, prefix.size());
                                    return false;
                                  }));
    if (seq == 0) {  // the count was off; the store is the truth
      group.waiting = 0;
      break;
    }
    FARM_ASSIGN_OR_RETURN(std::optional<farm::v1::Job> job, jobs::Load(txn, seq));
    const bool waiting = job.has_value() && job->state() == farm::v1::WAITING;
    if (waiting && group.admitted.size() >= Limit(job->spec())) break;
    txn.Delete(Cf::kGroups, keys::GroupKey(keys::kGroupWaiting, name, seq));
    --group.waiting;
    if (!waiting) continue;  // a stale entry
    group.admitted.insert(seq);
    txn.Put(Cf::kGroups, keys::GroupKey(keys::kGroupAdmitted, name, seq), "");
    admitted.push_back(*std::move(job));
  }
  return admitted;
}

}  // namespace farm::coordinator
