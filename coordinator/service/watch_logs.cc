#include "coordinator/service/watch_logs.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_status.h"
#include "common/job_state.h"
#include "common/text.h"
#include "coordinator/logs/log_reader.h"
#include "coordinator/service/relay.h"
#include "coordinator/store/keys.h"

namespace farm::coordinator {
namespace {

using common::IsTerminal;
using common::StepDone;
using common::ToGrpcStatus;

// Bytes of output per WatchLogs message.
constexpr size_t kMaxLogMessageBytes = 1 << 20;

class WatchLogsCall final : public grpc::ServerWriteReactor<farm::v1::WatchLogsResponse> {
 public:
  WatchLogsCall(Store* store, const JobReads* reads, FollowerHub* hub, common::IoPool* pool,
                farm::v1::WatchLogsRequest req, uint64_t seq, CallCap::Slot slot,
                common::metrics::Counter* bytes_sent)
      : store_(store),
        reads_(reads),
        hub_(hub),
        req_(std::move(req)),
        seq_(seq),
        slot_(std::move(slot)),
        bytes_sent_(bytes_sent) {
    relay_ = std::make_shared<Relay<WatchLogsCall>>(this, pool);
    if (req_.follow()) hub_->Subscribe(seq_, relay_);
    relay_->Schedule();
  }

  void OnWriteDone(bool ok) override {
    bool finish = false;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) {
        finished_ = true;
        finish = true;
        final_status_ = grpc::Status(grpc::StatusCode::CANCELLED, "stream closed by the client");
      } else if (finish_after_write_) {
        finished_ = true;
        finish = true;
      }
    }
    if (finish) {
      Finish(final_status_);
      return;
    }
    // The next piece (at most 1 MiB of stored output; at the live end, the job's record and an
    // empty scan) is read right here, on the thread that saw the last one written: posting it
    // to the read pool costs two more thread hops per piece and halved the rate of reading a
    // 1 GiB log back (taking turns: 1,000 MB/s here against 450-550 MB/s through the pool).
    // The first read, and every wake-up by a commit, still run on the pool. Pump() reads and
    // claims the write under mu_, so a pool run at the same time finds writing_ and returns.
    Pump();
  }

  void OnCancel() override {
    bool finish = false;
    {
      absl::MutexLock lock(&mu_);
      if (!finished_ && !writing_) {
        finished_ = true;
        finish = true;
      }
      cancelled_ = true;
    }
    if (finish) Finish(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
  }

  void OnDone() override {
    relay_->Detach();
    if (req_.follow()) hub_->Unsubscribe(seq_, relay_.get());
    delete this;
  }

  // Ends the call with UNAVAILABLE (the coordinator is going away; clients reconnect).
  void Abort() {
    bool finish = false;
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      final_status_ =
          grpc::Status(grpc::StatusCode::UNAVAILABLE, "the coordinator is shutting down");
      finish_after_write_ = true;
      if (!writing_) {
        finished_ = true;
        finish = true;
      }
    }
    if (finish) Finish(final_status_);
  }

  // Sends the next piece, or finishes, or waits for a wake-up. On the read pool.
  void Pump() {
    enum { kNothing, kWrite, kFinish } action = kNothing;
    {
      absl::MutexLock lock(&mu_);
      if (finished_ || cancelled_ || writing_) return;  // OnWriteDone schedules again
      action = Next() ? kWrite : (finished_ ? kFinish : kNothing);
      if (action == kWrite) writing_ = true;
    }
    if (action == kWrite) {
      StartWrite(&resp_);
    } else if (action == kFinish) {
      Finish(final_status_);
    }
  }

 private:
  // Fills resp_ and returns true when there is something to write; sets finished_ (and
  // final_status_) when the call should end without another write.
  bool Next() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Picks the attempt to stream at the first read: nullopt to go on, else what Next returns
  // (the call ends, or waits for the job's first attempt).
  std::optional<bool> Start(const farm::v1::Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  bool End(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    finished_ = true;
    final_status_ = std::move(status);
    return false;
  }

  // Ends the stream; when the job is over, with a last message that carries its state.
  bool EndWithState(const farm::v1::Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!IsTerminal(job.state())) return End(grpc::Status::OK);
    resp_.Clear();
    resp_.set_final_state(job.state());
    finish_after_write_ = true;
    final_status_ = grpc::Status::OK;
    return true;
  }

  Store* const store_;
  const JobReads* const reads_;
  FollowerHub* const hub_;
  const farm::v1::WatchLogsRequest req_;
  const uint64_t seq_;
  std::shared_ptr<Relay<WatchLogsCall>> relay_;
  CallCap::Slot slot_;  // given back when the call is deleted (OnDone)
  common::metrics::Counter* const bytes_sent_;

  absl::Mutex mu_;
  farm::v1::WatchLogsResponse resp_ ABSL_GUARDED_BY(mu_);
  uint32_t attempt_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t step_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t offset_ ABSL_GUARDED_BY(mu_) = 0;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_after_write_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status final_status_;
};

std::optional<bool> WatchLogsCall::Start(const farm::v1::Job& job) {
  if (IsTerminal(job.state())) {
    absl::StatusOr<std::optional<LogsRemoved>> removed = ReadLogsRemoved(store_, seq_);
    if (!removed.ok()) return End(ToGrpcStatus(removed.status()));
    if (removed->has_value()) return End(ToGrpcStatus(LogsRemovedError(seq_, **removed)));
  }
  const int attempts = job.attempts_size();
  if (attempts == 0) {
    if (IsTerminal(job.state()) || !req_.follow()) return EndWithState(job);
    return false;  // wait for it
  }
  attempt_ = req_.attempt() > 0 ? req_.attempt() : static_cast<uint32_t>(attempts);
  if (!req_.step().empty()) {
    bool found = false;
    for (const auto& s : job.spec().steps()) found |= s.name() == req_.step();
    if (!found) {
      return End(grpc::Status(
          grpc::StatusCode::NOT_FOUND,
          absl::StrCat("job ", job.id(), " has no step named ", common::Quote(req_.step()))));
    }
  }
  return std::nullopt;
}

bool WatchLogsCall::Next() {
  resp_.Clear();
  if (finish_after_write_) return false;
  while (true) {
    absl::StatusOr<farm::v1::Job> job = reads_->GetJob(keys::JobId(seq_));
    if (!job.ok()) return End(ToGrpcStatus(job.status()));
    const int attempts = job->attempts_size();
    const bool terminal = IsTerminal(job->state());
    if (req_.attempt() > 0 && static_cast<int>(req_.attempt()) > attempts) {
      if (terminal || !req_.follow()) {
        return End(
            grpc::Status(grpc::StatusCode::NOT_FOUND,
                         absl::StrCat("job ", job->id(), " has no attempt ", req_.attempt())));
      }
      return false;  // wait for it
    }
    if (attempt_ == 0) {
      if (std::optional<bool> ended = Start(*job)) return *ended;
    }
    const farm::v1::Attempt& at = job->attempts(static_cast<int>(attempt_) - 1);
    if (step_ >= static_cast<uint32_t>(at.steps_size())) {
      // This attempt is streamed completely.
      if (req_.attempt() == 0 && static_cast<int>(attempt_) < attempts) {
        ++attempt_;
        step_ = 0;
        offset_ = 0;
        continue;
      }
      if (terminal || !req_.follow() || at.outcome() != farm::v1::ATTEMPT_RUNNING) {
        if (!terminal && req_.follow()) return false;  // requeued: wait for the next attempt
        return EndWithState(*job);
      }
      return false;
    }
    const farm::v1::StepResult& step = at.steps(static_cast<int>(step_));
    if (!req_.step().empty() && step.name() != req_.step()) {
      ++step_;
      offset_ = 0;
      continue;
    }
    auto chunks = ReadLog(store_, seq_, attempt_, step_, offset_, kMaxLogMessageBytes);
    if (!chunks.ok()) return End(ToGrpcStatus(chunks.status()));
    if (!chunks->empty()) {
      for (auto& c : *chunks) {
        farm::v1::LogChunk* out = resp_.add_chunks();
        out->set_attempt(attempt_);
        out->set_step_index(step_);
        out->set_step(step.name());
        out->set_offset(c.offset);
        offset_ = c.offset + static_cast<int64_t>(c.data.size());
        if (bytes_sent_ != nullptr) bytes_sent_->Add(c.data.size());
        out->set_data(std::move(c.data));
      }
      return true;
    }
    // Nothing more stored for this step: it is complete once it (or its attempt) ended,
    // because output is committed before the step is reported finished.
    if (StepDone(step.state()) || at.outcome() != farm::v1::ATTEMPT_RUNNING) {
      ++step_;
      offset_ = 0;
      continue;
    }
    if (!req_.follow()) return EndWithState(*job);
    return false;
  }
}

class ErrorWriter final : public grpc::ServerWriteReactor<farm::v1::WatchLogsResponse> {
 public:
  explicit ErrorWriter(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

grpc::ServerWriteReactor<farm::v1::WatchLogsResponse>* NewWatchLogsCall(
    Store* store, const JobReads* reads, FollowerHub* hub, common::IoPool* pool,
    const farm::v1::WatchLogsRequest& req, absl::StatusOr<CallCap::Slot> slot,
    common::metrics::Counter* bytes_sent) {
  if (absl::Status s = common::ValidateRequestText(req); !s.ok()) {
    return new ErrorWriter(ToGrpcStatus(s));
  }
  if (!slot.ok()) return new ErrorWriter(ToGrpcStatus(slot.status()));
  const std::optional<uint64_t> seq = keys::ParseJobId(req.job_id());
  if (!seq.has_value()) {
    return new ErrorWriter(
        grpc::Status(grpc::StatusCode::NOT_FOUND,
                     absl::StrCat("job ", common::Quote(req.job_id()), " not found")));
  }
  return new WatchLogsCall(store, reads, hub, pool, req, *seq, *std::move(slot), bytes_sent);
}

}  // namespace farm::coordinator
