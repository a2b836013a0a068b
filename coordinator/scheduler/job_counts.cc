#include "coordinator/scheduler/job_counts.h"

#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "coordinator/store/keys.h"

namespace farm::coordinator {
namespace {

std::string Encode(const std::array<int64_t, JobCounts::kStates>& counts) {
  std::string out;
  for (int64_t c : counts) keys::AppendU64(out, static_cast<uint64_t>(c));
  return out;
}

// One scan of every job record: for a store written before the counts existed.
absl::StatusOr<std::array<int64_t, JobCounts::kStates>> CountJobs(Store* store) {
  std::array<int64_t, JobCounts::kStates> counts{};
  absl::Status bad;
  FARM_RETURN_IF_ERROR(
      store->Scan(Cf::kJobs, "", "", [&](absl::string_view key, absl::string_view value) {
        farm::v1::Job job;
        if (!job.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
          bad = absl::DataLossError(
              absl::StrCat("job record ", keys::ReadU64(key, 0), " does not parse"));
          return false;
        }
        if (job.state() > 0 && job.state() < JobCounts::kStates) ++counts[job.state()];
        return true;
      }));
  FARM_RETURN_IF_ERROR(bad);
  return counts;
}

}  // namespace

absl::Status JobCounts::Load(Store* store) {
  FARM_ASSIGN_OR_RETURN(std::optional<std::string> value, store->Get(Cf::kMeta, kKey));
  std::array<int64_t, kStates> counts{};
  if (value.has_value()) {
    if (value->size() != 8 * kStates) {
      return absl::DataLossError(
          absl::StrCat("the stored job counts have ", value->size(), " bytes, not ", 8 * kStates));
    }
    for (int i = 0; i < kStates; ++i)
      counts[i] = static_cast<int64_t>(keys::ReadU64(*value, 8 * i));
  } else {
    FARM_LOG(INFO) << "counting the jobs by state once (a store written before the counts)";
    FARM_ASSIGN_OR_RETURN(counts, CountJobs(store));
    WriteBatch batch;
    batch.Put(Cf::kMeta, std::string(kKey), Encode(counts));
    FARM_RETURN_IF_ERROR(store->Write(batch, /*sync=*/true));
  }
  for (int i = 0; i < kStates; ++i) counts_[i].store(counts[i]);
  written_group_ = 0;
  return absl::OkStatus();
}

void JobCounts::Add(farm::v1::JobState state, int64_t delta) {
  if (state <= farm::v1::JOB_STATE_UNSPECIFIED || state >= kStates) return;
  counts_[state].fetch_add(delta);
}

void JobCounts::Moved(Txn& txn, farm::v1::JobState from, farm::v1::JobState to) {
  if (from == to) return;
  Add(from, -1);
  Add(to, 1);
  WriteOnce(txn);
}

void JobCounts::Removed(Txn& txn, farm::v1::JobState state) {
  Add(state, -1);
  WriteOnce(txn);
}

void JobCounts::WriteOnce(Txn& txn) {
  if (txn.id() != 0 && txn.id() == written_group_) return;
  written_group_ = txn.id();
  txn.BeforeWrite([this](Txn& t) { t.PutBlind(Cf::kMeta, std::string(kKey), Encode(Snapshot())); });
}

std::array<int64_t, JobCounts::kStates> JobCounts::Snapshot() const {
  std::array<int64_t, kStates> out{};
  for (int i = 0; i < kStates; ++i) out[i] = counts_[i].load();
  return out;
}

}  // namespace farm::coordinator
