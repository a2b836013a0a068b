#include "agent/log_sender.h"

#include <vector>

#include "absl/container/flat_hash_set.h"
#include "common/backoff.h"
#include "common/logging.h"

namespace farm::agent {

LogSender::LogSender(CoordinatorClient* client, farm::v1::LeaseRef lease, std::string log_prefix,
                     std::function<bool()> reregister, Options options)
    : client_(client),
      lease_(std::move(lease)),
      log_prefix_(std::move(log_prefix)),
      reregister_(std::move(reregister)),
      options_(options) {}

LogSender::~LogSender() {
  Abort();
  Stop();
}

void LogSender::Start() {
  FARM_CHECK(!started_);
  started_ = true;
  thread_ = std::thread([this] { Loop(); });
}

bool LogSender::Append(uint32_t step_index, int64_t offset, absl::string_view data) {
  if (data.empty()) return true;
  auto chunk = std::make_shared<farm::v1::LogUploadChunk>();
  *chunk->mutable_lease() = lease_;
  chunk->set_step_index(step_index);
  chunk->set_offset(offset);
  chunk->set_data(data.data(), data.size());
  const int64_t size = static_cast<int64_t>(data.size());

  absl::MutexLock lock(&mu_);
  auto has_room = [this, size]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return Done() || pending_.empty() || buffered_bytes_ + size <= options_.max_buffered_bytes;
  };
  mu_.Await(absl::Condition(&has_room));
  if (Done()) return false;
  pending_.push_back(std::move(chunk));
  ++pending_per_step_[step_index];
  buffered_bytes_ += size;
  return true;
}

absl::Status LogSender::Flush(uint32_t step_index) {
  absl::MutexLock lock(&mu_);
  auto flushed = [this, step_index]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return Done() || !pending_per_step_.contains(step_index);
  };
  mu_.Await(absl::Condition(&flushed));
  if (!failure_.ok()) return failure_;
  if (aborted_) return absl::CancelledError("log upload aborted");
  return absl::OkStatus();
}

void LogSender::Abort() {
  {
    absl::MutexLock lock(&mu_);
    if (aborted_) return;
    aborted_ = true;
    pending_.clear();
    pending_per_step_.clear();
    buffered_bytes_ = 0;
  }
  canceller_.Cancel();
}

void LogSender::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void LogSender::PopFront(size_t count) {
  for (size_t i = 0; i < count && !pending_.empty(); ++i) {
    const ChunkPtr& chunk = pending_.front();
    buffered_bytes_ -= static_cast<int64_t>(chunk->data().size());
    auto it = pending_per_step_.find(chunk->step_index());
    if (it != pending_per_step_.end() && --it->second == 0) pending_per_step_.erase(it);
    pending_.pop_front();
  }
}

void LogSender::Loop() {
  common::Backoff backoff(options_.initial_backoff_ms, options_.max_backoff_ms);
  absl::flat_hash_set<uint32_t> warned_steps;
  int failures = 0;
  while (true) {
    std::vector<ChunkPtr> batch;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return Done() || stopping_ || !pending_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (Done() || pending_.empty()) return;
      int64_t bytes = 0;
      for (const ChunkPtr& chunk : pending_) {
        const int64_t size = static_cast<int64_t>(chunk->data().size());
        if (!batch.empty() && bytes + size > options_.max_stream_bytes) break;
        batch.push_back(chunk);
        bytes += size;
      }
    }

    absl::StatusOr<farm::v1::LogUploadResponse> response = client_->UploadLogs(batch, &canceller_);
    if (response.ok()) {
      failures = 0;
      backoff.Reset();
      // Everything written was processed. Bytes the coordinator did not commit (for example
      // past its per-job log limit) would never be, so they are dropped, not resent.
      for (const ChunkPtr& chunk : batch) {
        auto it = response->committed().find(chunk->step_index());
        const int64_t end = chunk->offset() + static_cast<int64_t>(chunk->data().size());
        const int64_t committed = it == response->committed().end() ? 0 : it->second;
        if (committed < end && warned_steps.insert(chunk->step_index()).second) {
          FARM_LOG(WARNING) << log_prefix_ << " coordinator committed " << committed
                            << " bytes of step " << chunk->step_index() << " output, sent up to "
                            << end << "; the rest is dropped";
        }
      }
      absl::MutexLock lock(&mu_);
      if (!aborted_) PopFront(batch.size());
      continue;
    }

    const absl::Status& status = response.status();
    if (status.code() == absl::StatusCode::kFailedPrecondition) {
      FARM_LOG(WARNING) << log_prefix_ << " log upload refused, lease is stale: " << status;
      absl::MutexLock lock(&mu_);
      failure_ = status;
      return;
    }
    if (status.code() == absl::StatusCode::kCancelled && canceller_.cancelled()) return;
    if (IsNotRegistered(status)) {
      if (!reregister_ || !reregister_()) {
        Abort();
        return;
      }
      continue;
    }
    if (IsRetryable(status)) {
      if (failures++ % 10 == 0) {
        FARM_LOG(WARNING) << log_prefix_ << " log upload failed, retrying: " << status;
      }
      if (canceller_.SleepFor(backoff.NextDelayMs())) return;
      continue;
    }
    // OUT_OF_RANGE (a gap: the coordinator lost bytes it had acknowledged), INVALID_ARGUMENT
    // and the like cannot be fixed by resending the same bytes.
    FARM_LOG(ERROR) << log_prefix_ << " log upload rejected, dropping " << batch.size()
                    << " chunks: " << status;
    absl::MutexLock lock(&mu_);
    if (!aborted_) PopFront(batch.size());
  }
}

}  // namespace farm::agent
