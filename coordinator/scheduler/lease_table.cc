#include "coordinator/scheduler/lease_table.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/text.h"
#include "coordinator/scheduler/job_records.h"
#include "coordinator/store/keys.h"

namespace farm::coordinator {
namespace {

std::string LeaseName(const farm::v1::LeaseRef& ref) {
  return absl::StrCat("job ", ref.job_id(), " attempt ", ref.attempt(), " (epoch ", ref.epoch(),
                      ")");
}

absl::StatusOr<uint64_t> ReadCounter(Store* store, absl::string_view key) {
  FARM_ASSIGN_OR_RETURN(auto v, store->Get(Cf::kMeta, key));
  if (!v.has_value()) return 0;
  if (v->size() != 8) return absl::DataLossError(absl::StrCat("meta ", key, " is malformed"));
  return keys::ReadU64(*v, 0);
}

}  // namespace

absl::Status LeaseTable::Recover(Store* store) {
  FARM_ASSIGN_OR_RETURN(last_epoch_, ReadCounter(store, keys::kNextEpoch));
  std::vector<uint64_t> seqs;
  FARM_RETURN_IF_ERROR(
      store->Scan(Cf::kActive, "", "", [&](absl::string_view key, absl::string_view) {
        if (key.size() == 8) seqs.push_back(keys::ReadU64(key, 0));
        return true;
      }));
  std::map<uint64_t, Lease> old = std::move(leases_);
  leases_.clear();
  const int64_t now = clock_->MonotonicMs();
  for (uint64_t seq : seqs) {
    FARM_ASSIGN_OR_RETURN(std::optional<farm::v1::Job> job, jobs::Read(store, seq));
    if (!job.has_value() || job->attempts().empty()) {
      return absl::DataLossError(absl::StrCat("active job ", seq, " has no valid record"));
    }
    const farm::v1::Attempt& at = job->attempts(job->attempts_size() - 1);
    Lease lease;
    lease.attempt = at.number();
    lease.epoch = at.epoch();
    lease.holder = at.agent();
    auto prev = old.find(seq);
    const bool same = prev != old.end() && prev->second.epoch == lease.epoch;
    lease.expires_ms = same ? std::max(prev->second.expires_ms, now) : now + ttl_ms_;
    lease.cancel_delivered = same && prev->second.cancel_delivered;
    lease.job = *std::move(job);
    leases_.emplace(seq, std::move(lease));
  }
  return absl::OkStatus();
}

uint64_t LeaseTable::NextEpoch(Txn& txn) {
  ++last_epoch_;
  txn.PutBlind(Cf::kMeta, std::string(keys::kNextEpoch), keys::U64(last_epoch_));
  return last_epoch_;
}

Lease& LeaseTable::Add(Txn& txn, farm::v1::Job job, const std::string& holder) {
  const farm::v1::Attempt& at = job.attempts(job.attempts_size() - 1);
  Lease lease;
  lease.attempt = at.number();
  lease.epoch = at.epoch();
  lease.holder = holder;
  lease.expires_ms = clock_->MonotonicMs() + ttl_ms_;
  const uint64_t seq = job.seq();
  lease.job = std::move(job);
  txn.PutBlind(Cf::kActive, keys::JobKey(seq), "");
  Lease& added = leases_[seq];
  added = std::move(lease);
  return added;
}

std::optional<Lease> LeaseTable::Take(Txn& txn, uint64_t seq) {
  auto it = leases_.find(seq);
  if (it == leases_.end()) return std::nullopt;
  Lease lease = std::move(it->second);
  leases_.erase(it);
  txn.Delete(Cf::kActive, keys::JobKey(seq));
  return lease;
}

absl::StatusOr<Lease*> LeaseTable::Check(const farm::v1::LeaseRef& ref, const std::string* holder) {
  const std::optional<uint64_t> seq = keys::ParseJobId(ref.job_id());
  if (!seq.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat(common::Quote(ref.job_id()), " is not a job id"));
  }
  auto it = leases_.find(*seq);
  if (it == leases_.end() || it->second.epoch != ref.epoch() ||
      it->second.attempt != ref.attempt()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the lease of ", LeaseName(ref), " is no longer valid"));
  }
  if (holder != nullptr && it->second.holder != *holder) {
    return absl::PermissionDeniedError(
        absl::StrCat("the lease of ", LeaseName(ref), " is not held by ", *holder));
  }
  return &it->second;
}

Lease* LeaseTable::Find(uint64_t seq) {
  auto it = leases_.find(seq);
  return it == leases_.end() ? nullptr : &it->second;
}

std::vector<uint64_t> LeaseTable::Expired() const {
  const int64_t now = clock_->MonotonicMs();
  std::vector<uint64_t> out;
  for (const auto& [seq, lease] : leases_) {
    if (lease.expires_ms <= now) out.push_back(seq);
  }
  return out;
}

std::vector<uint64_t> LeaseTable::HeldBy(const std::string& holder) const {
  std::vector<uint64_t> out;
  for (const auto& [seq, lease] : leases_) {
    if (lease.holder == holder) out.push_back(seq);
  }
  return out;
}

std::map<std::string, std::vector<uint64_t>> LeaseTable::ByHolder() const {
  std::map<std::string, std::vector<uint64_t>> out;
  for (const auto& [seq, lease] : leases_) out[lease.holder].push_back(seq);
  return out;
}

}  // namespace farm::coordinator
