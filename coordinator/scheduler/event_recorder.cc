#include "coordinator/scheduler/event_recorder.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/store/keys.h"

namespace farm::coordinator {

absl::Status EventRecorder::Recover(Store* store) {
  last_seq_ = 0;
  last_time_ms_ = 0;
  FARM_ASSIGN_OR_RETURN(auto floor, store->Get(Cf::kMeta, keys::kEventSeqFloor));
  if (floor.has_value() && floor->size() == 8) last_seq_ = keys::ReadU64(*floor, 0);
  return store->Scan(
      Cf::kEvents, "", "",
      [&](absl::string_view key, absl::string_view) {
        if (auto parts = keys::DecodeEventKey(key)) {
          last_time_ms_ = parts->time_ms;
          last_seq_ = std::max(last_seq_, parts->seq);
        }
        return false;
      },
      /*reverse=*/true);
}

farm::v1::Event EventRecorder::ForJob(Txn& txn, const farm::v1::Job& job,
                                      farm::v1::EventKind kind) {
  farm::v1::Event event;
  event.set_kind(kind);
  event.set_job_id(job.id());
  // Unset rather than empty: each string set costs the message an allocation.
  if (!job.pipeline_id().empty()) {
    event.set_pipeline_id(job.pipeline_id());
    event.set_pipeline_job(job.pipeline_job());
  }
  event.set_labelset(sets_->Intern(txn, job.spec().labels()));
  event.set_state(job.state());
  return event;
}

void EventRecorder::Append(Txn& txn, farm::v1::Event event) {
  event.set_seq(++last_seq_);
  last_time_ms_ = std::max(last_time_ms_, event.time_ms() > 0 ? event.time_ms() : clock_->NowMs());
  event.set_time_ms(last_time_ms_);
  event.clear_labels();  // readers restore them from the label set
  std::string key = keys::EventKey(event.time_ms(), event.seq());
  txn.PutBlind(Cf::kEvents, key, event.SerializeAsString());
  if (const std::optional<uint64_t> job = keys::ParseJobId(event.job_id())) {
    IndexBeforeWrite(txn, *job, std::move(key));
  }
  if (notified_group_ != txn.id() || txn.id() == 0) {
    notified_group_ = txn.id();
    txn.OnCommit([hub = hub_](const absl::Status& s) {
      if (s.ok()) hub->NotifyEvents();
    });
  }
}

void EventRecorder::IndexBeforeWrite(Txn& txn, uint64_t job, std::string event_key) {
  if (index_.empty() || index_group_ != txn.id()) {
    index_.clear();  // what a failed group left
    index_group_ = txn.id();
    txn.BeforeWrite([this](Txn& t) { WriteIndex(t); });
  }
  index_[job] += event_key;
}

void EventRecorder::WriteIndex(Txn& txn) {
  for (auto& [job, events] : index_) {
    std::string key;
    key.reserve(24);
    keys::AppendU64(key, job);
    key.append(events, 0, 16);
    events.erase(0, 16);
    txn.PutBlind(Cf::kJobEvents, std::move(key), std::move(events));
  }
  index_.clear();
}

absl::Status EventRecorder::Sweep(Txn& txn) {
  const int64_t now = clock_->MonotonicMs();
  if (now < next_sweep_ms_) return absl::OkStatus();
  next_sweep_ms_ = now + 60'000;
  FARM_ASSIGN_OR_RETURN(size_t expired, Expire(txn, /*dry_run=*/false));
  if (expired >= kMaxDeletesPerSweep) next_sweep_ms_ = now;  // more are due
  return absl::OkStatus();
}

absl::StatusOr<size_t> EventRecorder::Expire(Txn& txn, bool dry_run) {
  const int64_t cutoff = clock_->NowMs() - retention_ms_;
  if (cutoff <= 0) return 0;
  std::vector<std::pair<std::string, uint64_t>> expired;  // event key, job seq (0: none)
  uint64_t max_seq = 0;
  FARM_RETURN_IF_ERROR(txn.Scan(
      Cf::kEvents, "", keys::EventKey(cutoff, 0),
      [&](absl::string_view key, absl::string_view value) {
        farm::v1::Event event;
        uint64_t job = 0;
        if (!dry_run && event.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
          job = keys::ParseJobId(event.job_id()).value_or(0);
        }
        if (auto parts = keys::DecodeEventKey(key)) {
          max_seq = std::max(max_seq, parts->seq);
        }
        expired.emplace_back(std::string(key), job);
        return expired.size() < kMaxDeletesPerSweep;
      }));
  if (dry_run) return expired.size();
  for (const auto& [key, job] : expired) {
    if (job != 0) {  // the index entry this event begins, if it does
      std::string index = keys::U64(job);
      index += key;
      txn.Delete(Cf::kJobEvents, std::move(index));
    }
    txn.Delete(Cf::kEvents, key);
  }
  if (max_seq > 0) txn.Put(Cf::kMeta, std::string(keys::kEventSeqFloor), keys::U64(max_seq));
  return expired.size();
}

}  // namespace farm::coordinator
