// The operators' queue commands (scheduler.h: PauseQueue ... BulkCancel).
#include <algorithm>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/job_limits.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/text.h"
#include "coordinator/scheduler/job_records.h"
#include "coordinator/scheduler/scheduler.h"
#include "coordinator/store/keys.h"

namespace farm::coordinator {
namespace {

// As scheduler.cc's: an error that is the store's fails the group.
template <typename T>
void AnswerQueues(Txn& txn, const Done<T>& done, absl::StatusOr<T> r) {
  if (r.ok()) return ReplyAfterCommit(txn, done, *std::move(r));
  const absl::Status& s = r.status();
  const bool store_failure =
      absl::IsUnavailable(s) || absl::IsInternal(s) || absl::IsDataLoss(s) || absl::IsUnknown(s);
  if (store_failure && !txn.failed()) txn.Fail(s);
  done(s);
}

std::string SelectorText(const Labels& selector) {
  std::string out;
  for (const auto& [k, v] : selector) absl::StrAppend(&out, out.empty() ? "" : ",", k, "=", v);
  return out;
}

farm::v1::QueuePause PauseOf(const Labels& selector, int64_t since) {
  farm::v1::QueuePause p;
  p.mutable_labels()->insert(selector.begin(), selector.end());
  p.set_paused_ms(since);
  return p;
}

absl::Status NotFound(const std::string& job_id) {
  return absl::NotFoundError(absl::StrCat("job ", common::Quote(job_id), " not found"));
}

}  // namespace

struct Scheduler::BulkCancelRun {
  Labels selector;
  std::map<uint64_t, std::string> after;  // label set → the last queue key taken from it
  int64_t cancelled = 0;
  int64_t batches = 0;
  Done<farm::v1::BulkCancelResponse> done;
};

void Scheduler::PauseQueue(Labels selector, Done<farm::v1::PauseQueueResponse> done) {
  if (absl::Status s = ValidateSelector(selector); !s.ok()) return done(s);
  Post(
      [this, selector = std::move(selector), done](Txn& txn) {
        farm::v1::PauseQueueResponse resp;
        const int64_t now = clock_->NowMs();
        resp.set_existing(!queue_.Pause(txn, selector, now));
        *resp.mutable_pause() = PauseOf(selector, queue_.pauses().at(selector));
        if (!resp.existing()) {
          farm::v1::Event event;
          event.set_kind(farm::v1::QUEUE_PAUSED);
          event.set_labelset(label_sets_.Intern(txn, resp.pause().labels()));
          event.set_reason(absl::StrCat("paused ", SelectorText(selector)));
          events_.Append(txn, std::move(event));
          FARM_LOG(INFO) << "queue paused: " << SelectorText(selector);
        }
        ReplyAfterCommit(txn, done, std::move(resp));
      },
      [&](absl::Status s) { done(s); });
}

void Scheduler::ResumeQueue(Labels selector, Done<farm::v1::ResumeQueueResponse> done) {
  if (absl::Status s = ValidateSelector(selector); !s.ok()) return done(s);
  Post(
      [this, selector = std::move(selector), done](Txn& txn) {
        auto it = queue_.pauses().find(selector);
        if (it == queue_.pauses().end()) {
          return done(absl::NotFoundError(
              absl::StrCat("no pause of ", common::Quote(SelectorText(selector)),
                           " (farmctl admin queues lists the pauses)")));
        }
        farm::v1::ResumeQueueResponse resp;
        *resp.mutable_resumed() = PauseOf(selector, it->second);
        queue_.Resume(txn, selector);
        farm::v1::Event event;
        event.set_kind(farm::v1::QUEUE_RESUMED);
        event.set_labelset(label_sets_.Intern(txn, resp.resumed().labels()));
        event.set_reason(absl::StrCat("resumed ", SelectorText(selector)));
        events_.Append(txn, std::move(event));
        FARM_LOG(INFO) << "queue resumed: " << SelectorText(selector);
        ReplyAfterCommit(txn, done, std::move(resp));
      },
      [&](absl::Status s) { done(s); });
}

void Scheduler::SnapshotQueues(Done<QueueSnapshot> done) {
  Post(
      [this, done](Txn&) {
        QueueSnapshot snap;
        snap.now_ms = clock_->NowMs();
        for (uint64_t id : label_sets_.Ids()) {
          snap.sets[id] = *label_sets_.Find(id);
          snap.paused[id] = queue_.Paused(id);
        }
        snap.pauses = queue_.pauses();
        for (const auto& [name, agent] : agents_.all()) {
          const std::string state = agents_.StateOf(agent, false);
          if (state == "idle" || state == "busy") snap.agents.push_back(agent.labels);
        }
        done(std::move(snap));
      },
      [&](absl::Status s) { done(s); });
}

void Scheduler::Reprioritize(std::string job_id, int32_t priority, Done<farm::v1::Job> done) {
  if (priority < common::kMinPriority || priority > common::kMaxPriority) {
    return done(absl::InvalidArgumentError(absl::StrCat("priority ", priority, " is out of range [",
                                                        common::kMinPriority, ", ",
                                                        common::kMaxPriority, "]")));
  }
  const std::optional<uint64_t> seq = keys::ParseJobId(job_id);
  if (!seq.has_value()) return done(NotFound(job_id));
  Post(
      [this, seq = *seq, job_id, priority, done](Txn& txn) {
        absl::StatusOr<std::optional<farm::v1::Job>> job = jobs::Load(txn, seq);
        if (!job.ok()) return AnswerQueues<farm::v1::Job>(txn, done, job.status());
        if (!job->has_value()) return done(NotFound(job_id));
        farm::v1::Job& j = **job;
        if (j.state() != farm::v1::QUEUED) {
          return done(absl::FailedPreconditionError(
              absl::StrCat("job ", j.id(), " is ", farm::v1::JobState_Name(j.state()),
                           "; only queued jobs can be reprioritized")));
        }
        const int32_t from = j.spec().priority();
        queue_.Reprioritize(txn, j, priority);
        farm::v1::Event event = events_.ForJob(txn, j, farm::v1::JOB_REPRIORITIZED);
        event.set_reason(absl::StrCat("priority ", from, " -> ", priority));
        lifecycle_.Record(txn, j, std::move(event));
        ReplyAfterCommit(txn, done, std::move(j));
      },
      [&](absl::Status s) { done(s); });
}

void Scheduler::Retry(std::string id, std::string request_id, Done<farm::v1::RetryResponse> done) {
  if (absl::Status s = RequestIds::Validate(request_id); !s.ok()) return done(s);
  const std::optional<uint64_t> pseq = keys::ParsePipelineId(id);
  const std::optional<uint64_t> seq = keys::ParseJobId(id);
  if (!pseq.has_value() && !seq.has_value()) {
    return done(
        absl::NotFoundError(absl::StrCat("job or pipeline ", common::Quote(id), " not found")));
  }
  Post(
      [this, pseq, seq, request_id = std::move(request_id), done](Txn& txn) {
        AnswerQueues(txn, done,
                     pseq.has_value() ? intake_.RetryPipeline(txn, *pseq, request_id)
                                      : intake_.RetryJob(txn, *seq, request_id));
      },
      [&](absl::Status s) { done(s); });
}

void Scheduler::BulkCancel(Labels selector, farm::v1::JobState state,
                           Done<farm::v1::BulkCancelResponse> done) {
  if (absl::Status s = ValidateSelector(selector); !s.ok()) return done(s);
  if (state != farm::v1::QUEUED) {
    return done(absl::InvalidArgumentError(
        absl::StrCat("state ", farm::v1::JobState_Name(state),
                     ": only QUEUED jobs can be cancelled in bulk (give --state=QUEUED)")));
  }
  auto run = std::make_shared<BulkCancelRun>();
  run->selector = std::move(selector);
  run->done = std::move(done);
  Post([this, run](Txn& txn) { BulkCancelBatch(txn, run); }, [&](absl::Status s) { run->done(s); });
}

void Scheduler::BulkCancelBatch(Txn& txn, const std::shared_ptr<BulkCancelRun>& run) {
  std::vector<uint64_t> ids = label_sets_.Ids();
  std::sort(ids.begin(), ids.end());
  std::vector<uint64_t> seqs;
  for (uint64_t id : ids) {
    if (seqs.size() >= kBulkCancelBatch) break;
    if (!LabelsMatch(*label_sets_.Find(id), run->selector)) continue;
    const std::string prefix = keys::QueuePrefix(id);
    std::string& after = run->after[id];
    const std::string start = after.empty() ? prefix : after + std::string(1, '\0');
    absl::Status s = txn.Scan(Cf::kQueue, start, keys::PrefixEnd(prefix),
                              [&](absl::string_view key, absl::string_view value) {
                                if (value.size() != 8) return true;
                                after = std::string(key);
                                seqs.push_back(keys::ReadU64(value, 0));
                                return seqs.size() < kBulkCancelBatch;
                              });
    if (!s.ok()) return AnswerQueues<farm::v1::BulkCancelResponse>(txn, run->done, s);
  }
  int64_t cancelled = 0;
  for (uint64_t seq : seqs) {
    absl::StatusOr<std::optional<farm::v1::Job>> job = jobs::Load(txn, seq);
    absl::Status s = job.status();
    if (s.ok() && job->has_value() && (*job)->state() == farm::v1::QUEUED) {
      s = lifecycle_.CancelNotRunning(txn, **job);
      ++cancelled;
    }
    if (!s.ok()) return AnswerQueues<farm::v1::BulkCancelResponse>(txn, run->done, s);
  }
  run->cancelled += cancelled;
  run->batches += 1;
  if (seqs.size() < kBulkCancelBatch) {
    FARM_LOG(INFO) << "bulk cancel of " << SelectorText(run->selector) << ": " << run->cancelled
                   << " queued jobs in " << run->batches << " writes";
    farm::v1::BulkCancelResponse resp;
    resp.set_cancelled(run->cancelled);
    resp.set_batches(run->batches);
    return ReplyAfterCommit(txn, run->done, std::move(resp));
  }
  // The next batch in a group of its own, once this one is durable.
  txn.OnCommit([this, run](const absl::Status& s) {
    if (!s.ok()) return run->done(s);
    Post([this, run](Txn& next) { BulkCancelBatch(next, run); },
         [&](absl::Status stopping) { run->done(stopping); });
  });
}

}  // namespace farm::coordinator
