#include "coordinator/scheduler/retention.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/job_limits.h"
#include "common/job_state.h"
#include "common/status_macros.h"
#include "coordinator/scheduler/job_records.h"
#include "coordinator/scheduler/pipeline_graph.h"
#include "coordinator/store/keys.h"

namespace farm::coordinator {
namespace {

constexpr absl::string_view kIndexStart = "f";
constexpr absl::string_view kIndexLimit = "g";
constexpr char kLogsRemovedFlag = 1;
// A dry run only reads the index: it may look at many more entries than a pass removes.
constexpr size_t kMaxDryRunEntries = 1'000'000;
// Job records a pass of the backfill reads at most.
constexpr size_t kBackfillPerSweep = 500;

// What a pass knows of a pipeline: whether all its jobs ended, when, and its last job.
struct PipelineInfo {
  bool done = false;
  int64_t end_ms = 0;
  uint64_t last_seq = 0;
  farm::v1::Pipeline record;
};

absl::StatusOr<std::optional<PipelineInfo>> LoadPipelineInfo(Txn& txn, uint64_t pseq) {
  FARM_ASSIGN_OR_RETURN(auto raw, txn.Get(Cf::kPipelines, keys::JobKey(pseq)));
  if (!raw.has_value()) return std::nullopt;
  PipelineInfo info;
  FARM_ASSIGN_OR_RETURN(info.record, ParsePipeline(*raw, pseq));
  std::map<uint64_t, farm::v1::PipelineJob> summaries;
  const std::string prefix = keys::U64(pseq);
  FARM_RETURN_IF_ERROR(txn.Scan(Cf::kPipelineJobs, prefix, keys::PrefixEnd(prefix),
                                [&](absl::string_view key, absl::string_view value) {
                                  farm::v1::PipelineJob pj;
                                  if (key.size() == 16 &&
                                      pj.ParseFromArray(value.data(), value.size())) {
                                    summaries.emplace(keys::ReadU64(key, 8), std::move(pj));
                                  }
                                  return true;
                                }));
  info.done = true;
  for (const farm::v1::PipelineJob& pj : info.record.jobs()) {
    const uint64_t seq = keys::ParseJobId(pj.job_id()).value_or(0);
    info.last_seq = std::max(info.last_seq, seq);
    farm::v1::JobState state;
    int64_t finished = 0;
    if (auto it = summaries.find(seq); it != summaries.end()) {
      state = it->second.state();
      finished = it->second.finished_ms();
    } else {  // a job from before summaries existed, or one already removed
      FARM_ASSIGN_OR_RETURN(std::optional<farm::v1::Job> job, jobs::Load(txn, seq));
      if (!job.has_value()) continue;
      state = job->state();
      finished = job->finished_ms();
    }
    if (!common::IsTerminal(state)) info.done = false;
    info.end_ms = std::max(info.end_ms, finished);
  }
  return info;
}

}  // namespace

std::string Retention::IndexKey(int64_t end_ms, uint64_t seq) {
  std::string key(kIndexStart);
  keys::AppendU64(key, static_cast<uint64_t>(std::max<int64_t>(end_ms, 0)));
  keys::AppendU64(key, seq);
  return key;
}

std::string Retention::EncodeEntry(int64_t log_bytes, bool logs_removed, uint64_t pseq) {
  std::string value = keys::U64(static_cast<uint64_t>(std::max<int64_t>(log_bytes, 0)));
  value.push_back(logs_removed ? kLogsRemovedFlag : 0);
  keys::AppendU64(value, pseq);
  return value;
}

absl::StatusOr<Retention::Entry> Retention::DecodeEntry(absl::string_view key,
                                                        absl::string_view value) {
  if (key.size() != 17 || value.size() != 17) {
    return absl::DataLossError("a retention index entry is malformed");
  }
  Entry e;
  e.key = std::string(key);
  e.end_ms = static_cast<int64_t>(keys::ReadU64(key, 1));
  e.seq = keys::ReadU64(key, 9);
  e.log_bytes = static_cast<int64_t>(keys::ReadU64(value, 0));
  e.logs_removed = (value[8] & kLogsRemovedFlag) != 0;
  e.pseq = keys::ReadU64(value, 9);
  return e;
}

int64_t Retention::LogBytesOf(const farm::v1::Job& job) const {
  int64_t total = 0;
  for (const farm::v1::Attempt& at : job.attempts()) {
    int64_t attempt = 0;
    for (const farm::v1::StepResult& step : at.steps())
      attempt += std::max<int64_t>(0, step.log_bytes());
    total += std::min(attempt, policy_.max_log_bytes_per_job);
  }
  return total;
}

absl::Status Retention::Recover(Store* store) {
  log_bytes_ = 0;
  log_cursor_.clear();
  backfill_next_ = backfill_end_ = 0;
  persist_group_ = 0;
  next_sweep_ms_ = 0;
  FARM_ASSIGN_OR_RETURN(auto bytes, store->Get(Cf::kMeta, kLogBytesKey));
  if (bytes.has_value()) {
    if (bytes->size() != 8) return absl::DataLossError("meta retention/log_bytes is malformed");
    log_bytes_ = static_cast<int64_t>(keys::ReadU64(*bytes, 0));
  }
  FARM_ASSIGN_OR_RETURN(auto cursor, store->Get(Cf::kMeta, kLogCursorKey));
  if (cursor.has_value()) log_cursor_ = *cursor;
  FARM_ASSIGN_OR_RETURN(auto backfill, store->Get(Cf::kMeta, kBackfillKey));
  if (backfill.has_value()) {
    if (backfill->size() != 16) return absl::DataLossError("meta retention/backfill is malformed");
    backfill_next_ = keys::ReadU64(*backfill, 0);
    backfill_end_ = keys::ReadU64(*backfill, 8);
  }
  return absl::OkStatus();
}

void Retention::PersistBeforeWrite(Txn& txn) {
  if (persist_group_ == txn.id() && txn.id() != 0) return;
  persist_group_ = txn.id();
  txn.BeforeWrite([this](Txn& t) {
    t.PutBlind(Cf::kMeta, std::string(kLogBytesKey), keys::U64(static_cast<uint64_t>(log_bytes_)));
    t.PutBlind(Cf::kMeta, std::string(kLogCursorKey), log_cursor_);
    std::string backfill = keys::U64(backfill_next_);
    keys::AppendU64(backfill, backfill_end_);
    t.PutBlind(Cf::kMeta, std::string(kBackfillKey), std::move(backfill));
  });
}

absl::Status Retention::Index(Txn& txn, const farm::v1::Job& job, int64_t end_ms,
                              bool only_if_absent) {
  std::string key = IndexKey(end_ms, job.seq());
  if (only_if_absent) {
    FARM_ASSIGN_OR_RETURN(auto existing, txn.Get(Cf::kRetention, key));
    if (existing.has_value()) return absl::OkStatus();
  }
  const int64_t bytes = LogBytesOf(job);
  const uint64_t pseq = keys::ParsePipelineId(job.pipeline_id()).value_or(0);
  log_bytes_ += bytes;
  // The log pass goes on from its cursor: an entry behind it (a backfilled job, a clock set
  // back) moves the cursor back to it.
  if (!log_cursor_.empty() && key < log_cursor_) log_cursor_ = key;
  txn.Put(Cf::kRetention, std::move(key), EncodeEntry(bytes, false, pseq));
  PersistBeforeWrite(txn);
  return absl::OkStatus();
}

absl::Status Retention::IndexPipeline(Txn& txn, const farm::v1::Pipeline& pipeline,
                                      int64_t end_ms) {
  for (const farm::v1::PipelineJob& pj : pipeline.jobs()) {
    const std::optional<uint64_t> seq = keys::ParseJobId(pj.job_id());
    if (!seq.has_value()) continue;
    FARM_ASSIGN_OR_RETURN(std::optional<farm::v1::Job> job, jobs::Load(txn, *seq));
    if (!job.has_value() || !common::IsTerminal(job->state())) continue;
    FARM_RETURN_IF_ERROR(Index(txn, *job, end_ms, /*only_if_absent=*/true));
  }
  return absl::OkStatus();
}

absl::Status Retention::OnJobEnded(Txn& txn, const farm::v1::Job& job) {
  const std::optional<uint64_t> pseq = keys::ParsePipelineId(job.pipeline_id());
  if (!pseq.has_value()) return Index(txn, job, job.finished_ms(), /*only_if_absent=*/false);
  FARM_ASSIGN_OR_RETURN(std::optional<PipelineInfo> info, LoadPipelineInfo(txn, *pseq));
  if (!info.has_value() || !info->done) return absl::OkStatus();
  return IndexPipeline(txn, info->record, info->end_ms);
}

// ---------------------------------------------------------------------------------------------
// Sweeps

absl::Status Retention::CountRemoval(Txn& txn, uint64_t seq) {
  FARM_ASSIGN_OR_RETURN(std::optional<farm::v1::Job> job, jobs::Load(txn, seq));
  if (job.has_value()) counts_->Removed(txn, job->state());
  return absl::OkStatus();
}

absl::StatusOr<Retention::PipelineState> Retention::Pipeline(Txn& txn, uint64_t pseq) {
  auto it = pipelines_.find(pseq);
  if (it != pipelines_.end()) return it->second;
  FARM_ASSIGN_OR_RETURN(std::optional<PipelineInfo> info, LoadPipelineInfo(txn, pseq));
  PipelineState state;
  if (info.has_value()) {
    state.exists = true;
    state.done = info->done;
    state.end_ms = info->end_ms;
    state.last_seq = info->last_seq;
  }
  pipelines_[pseq] = state;
  return state;
}

absl::StatusOr<RetentionReport> Retention::Sweep(Txn& txn, bool dry_run, bool force) {
  const int64_t now = clock_->MonotonicMs();
  RetentionReport report;
  if (!force && !dry_run && (!policy_.background || now < next_sweep_ms_)) return report;
  pipelines_.clear();
  Pass pass;
  pass.dry_run = dry_run;
  pass.budget = dry_run ? kMaxDryRunEntries : kMaxPerSweep;
  pass.log_bytes = log_bytes_;
  pass.log_cursor = log_cursor_;
  pass.now_ms = clock_->NowMs();
  if (!dry_run) FARM_RETURN_IF_ERROR(Backfill(txn, pass, report));
  FARM_RETURN_IF_ERROR(RemoveJobs(txn, pass, report));
  FARM_RETURN_IF_ERROR(RemoveLogs(txn, pass, report));
  pipelines_.clear();
  report.more = pass.budget == 0;
  if (!dry_run) {
    log_bytes_ = pass.log_bytes;
    log_cursor_ = pass.log_cursor;
    if (report.jobs + report.logs + report.backfilled > 0) PersistBeforeWrite(txn);
    next_sweep_ms_ = report.more ? now : now + 1000;
    if (report.max_seq > 0) {
      Note(removed_, report.min_seq);
      Note(removed_, report.max_seq);
    }
  }
  return report;
}

std::pair<uint64_t, uint64_t> Retention::TakeRemovedRange() {
  std::pair<uint64_t, uint64_t> range{removed_.min_seq, removed_.max_seq};
  removed_ = RetentionReport();
  return range;
}

void Retention::Note(RetentionReport& report, uint64_t seq) {
  report.min_seq = report.min_seq == 0 ? seq : std::min(report.min_seq, seq);
  report.max_seq = std::max(report.max_seq, seq);
}

absl::Status Retention::Backfill(Txn& txn, Pass& pass, RetentionReport& report) {
  if (backfill_next_ == 0) {
    // The first sweep with the index: every job that exists now may have ended unindexed.
    uint64_t last = 0;
    FARM_RETURN_IF_ERROR(txn.store()->Scan(
        Cf::kJobs, "", "",
        [&](absl::string_view key, absl::string_view) {
          if (key.size() == 8) last = keys::ReadU64(key, 0);
          return false;
        },
        /*reverse=*/true));
    backfill_next_ = 1;
    backfill_end_ = last + 1;
    PersistBeforeWrite(txn);
  }
  if (backfill_next_ >= backfill_end_) return absl::OkStatus();
  std::vector<farm::v1::Job> found;
  absl::Status parse_error;
  size_t examined = 0;
  const size_t limit = std::min(pass.budget, kBackfillPerSweep);
  FARM_RETURN_IF_ERROR(
      txn.Scan(Cf::kJobs, keys::JobKey(backfill_next_), keys::JobKey(backfill_end_),
               [&](absl::string_view key, absl::string_view value) {
                 if (key.size() != 8) return true;
                 absl::StatusOr<farm::v1::Job> job = jobs::Parse(value, keys::ReadU64(key, 0));
                 if (!job.ok()) {
                   parse_error = job.status();
                   return false;
                 }
                 found.push_back(*std::move(job));
                 return ++examined < limit;
               }));
  FARM_RETURN_IF_ERROR(parse_error);
  pass.budget -= examined;
  backfill_next_ = examined < limit || found.empty() ? backfill_end_ : found.back().seq() + 1;
  for (const farm::v1::Job& job : found) {
    if (!common::IsTerminal(job.state())) continue;  // indexed when it ends
    int64_t end_ms = job.finished_ms();
    if (const std::optional<uint64_t> pseq = keys::ParsePipelineId(job.pipeline_id())) {
      FARM_ASSIGN_OR_RETURN(PipelineState p, Pipeline(txn, *pseq));
      if (!p.done) continue;  // indexed with its pipeline, when that ends
      end_ms = p.end_ms;
    }
    FARM_RETURN_IF_ERROR(Index(txn, job, end_ms, /*only_if_absent=*/true));
    ++report.backfilled;
  }
  pass.log_bytes = log_bytes_;  // Index counted them
  pass.log_cursor = log_cursor_;
  PersistBeforeWrite(txn);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Retention::Entry>> Retention::ReadEntries(Txn& txn,
                                                                     absl::string_view start,
                                                                     absl::string_view limit,
                                                                     size_t max) {
  std::vector<Entry> entries;
  absl::Status error;
  FARM_RETURN_IF_ERROR(
      txn.Scan(Cf::kRetention, start, limit, [&](absl::string_view key, absl::string_view value) {
        absl::StatusOr<Entry> e = DecodeEntry(key, value);
        if (!e.ok()) {
          error = e.status();
          return false;
        }
        entries.push_back(*std::move(e));
        return entries.size() < max;
      }));
  FARM_RETURN_IF_ERROR(error);
  return entries;
}

absl::StatusOr<bool> Retention::Stale(Txn& txn, Pass& pass, const Entry& e) {
  if (e.pseq == 0) return false;  // a job's end is final
  FARM_ASSIGN_OR_RETURN(PipelineState p, Pipeline(txn, e.pseq));
  if (!p.exists || p.done) return false;
  // Its pipeline runs again (a retry added jobs to it): it is indexed anew when that ends.
  if (!pass.dry_run) {
    if (!e.logs_removed) pass.log_bytes -= e.log_bytes;
    txn.Delete(Cf::kRetention, e.key);
  }
  return true;
}

absl::Status Retention::RemoveJobs(Txn& txn, Pass& pass, RetentionReport& report) {
  if (policy_.job_retention_ms <= 0 || pass.budget == 0) return absl::OkStatus();
  const int64_t cutoff = pass.now_ms - policy_.job_retention_ms;
  if (cutoff <= 0) return absl::OkStatus();
  FARM_ASSIGN_OR_RETURN(std::vector<Entry> entries,
                        ReadEntries(txn, kIndexStart, IndexKey(cutoff, 0), pass.budget));
  pass.budget -= entries.size();
  if (!entries.empty() && pass.budget == 0 && entries.back().pseq != 0) {
    // A pipeline goes whole in one group (readers never see it half removed): take the rest of
    // its jobs, which follow at the same end time (at most kMaxPipelineJobs).
    const Entry last = entries.back();
    FARM_ASSIGN_OR_RETURN(std::vector<Entry> rest,
                          ReadEntries(txn, last.key + std::string(1, '\0'),
                                      IndexKey(last.end_ms + 1, 0), common::kMaxPipelineJobs));
    for (Entry& e : rest) {
      if (e.pseq == last.pseq) entries.push_back(std::move(e));
    }
  }
  uint64_t max_removed = 0;
  for (const Entry& e : entries) {
    FARM_ASSIGN_OR_RETURN(bool stale, Stale(txn, pass, e));
    if (stale) continue;
    ++report.jobs;
    Note(report, e.seq);
    if (!e.logs_removed) {
      ++report.logs;
      report.log_bytes += e.log_bytes;
      pass.log_bytes -= e.log_bytes;
    }
    std::string after = e.key + std::string(1, '\0');
    if (pass.log_cursor < after) pass.log_cursor = std::move(after);
    max_removed = std::max(max_removed, e.seq);
    if (e.pseq != 0) {
      FARM_ASSIGN_OR_RETURN(PipelineState p, Pipeline(txn, e.pseq));
      // A pipeline's jobs share one end time and go in seq order: its last job goes last.
      if (p.exists && p.last_seq == e.seq) {
        ++report.pipelines;
        if (!pass.dry_run) txn.Delete(Cf::kPipelines, keys::JobKey(e.pseq));
      }
    }
    if (pass.dry_run) continue;
    if (counts_ != nullptr) FARM_RETURN_IF_ERROR(CountRemoval(txn, e.seq));
    txn.Delete(Cf::kJobs, keys::JobKey(e.seq));
    txn.Delete(Cf::kProgress, keys::JobKey(e.seq));
    txn.DeleteRangeBlind(Cf::kLogs, keys::U64(e.seq), keys::U64(e.seq + 1));
    if (e.pseq != 0) txn.Delete(Cf::kPipelineJobs, keys::PipelineJobKey(e.pseq, e.seq));
    txn.Delete(Cf::kRetention, e.key);
  }
  if (max_removed == 0 || pass.dry_run) return absl::OkStatus();
  // Job ids are never reused: the floor intake recovers from must cover the removed ones.
  FARM_ASSIGN_OR_RETURN(auto floor, txn.Get(Cf::kMeta, keys::kNextSeq));
  const uint64_t old_floor = floor.has_value() && floor->size() == 8 ? keys::ReadU64(*floor, 0) : 0;
  if (max_removed > old_floor) {
    txn.Put(Cf::kMeta, std::string(keys::kNextSeq), keys::U64(max_removed));
  }
  return absl::OkStatus();
}

absl::Status Retention::RemoveLogs(Txn& txn, Pass& pass, RetentionReport& report) {
  const bool by_age = policy_.log_retention_ms > 0;
  const bool by_size = policy_.max_log_bytes > 0;
  if ((!by_age && !by_size) || pass.budget == 0) return absl::OkStatus();
  const std::string age_limit =
      by_age ? IndexKey(std::max<int64_t>(0, pass.now_ms - policy_.log_retention_ms), 0)
             : std::string(kIndexStart);
  const std::string start = std::max(pass.log_cursor, std::string(kIndexStart));
  FARM_ASSIGN_OR_RETURN(std::vector<Entry> entries,
                        ReadEntries(txn, start, kIndexLimit, pass.budget));
  for (const Entry& e : entries) {
    const bool old = e.key < age_limit;
    const bool over = by_size && pass.log_bytes > policy_.max_log_bytes;
    if (!e.logs_removed && !old && !over) break;
    --pass.budget;
    pass.log_cursor = e.key + std::string(1, '\0');
    if (e.logs_removed) continue;
    FARM_ASSIGN_OR_RETURN(bool stale, Stale(txn, pass, e));
    if (stale) continue;
    ++report.logs;
    report.log_bytes += e.log_bytes;
    pass.log_bytes -= e.log_bytes;
    Note(report, e.seq);
    if (pass.dry_run) continue;
    txn.DeleteRangeBlind(Cf::kLogs, keys::U64(e.seq), keys::U64(e.seq + 1));
    std::string marker = keys::U64(static_cast<uint64_t>(pass.now_ms));
    marker += old ? "log_retention" : "max_log_bytes";
    txn.PutBlind(Cf::kLogs, keys::LogsRemovedKey(e.seq), std::move(marker));
    txn.Put(Cf::kRetention, e.key, EncodeEntry(e.log_bytes, true, e.pseq));
  }
  return absl::OkStatus();
}

}  // namespace farm::coordinator
