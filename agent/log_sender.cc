#include "agent/log_sender.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "agent/workspace.h"
#include "common/backoff.h"
#include "common/logging.h"
#include "common/posix_io.h"

namespace farm::agent {
namespace {

// Reads back `size` bytes the sender spilled at `offset`.
absl::Status ReadSpilled(int fd, int64_t offset, char* out, int64_t size) {
  absl::StatusOr<bool> read = common::ReadExactlyAt(fd, out, static_cast<size_t>(size), offset,
                                                    "cannot read the spill file");
  if (!read.ok()) return read.status();
  if (!*read) return absl::DataLossError("the spill file is shorter than what was written");
  return absl::OkStatus();
}

}  // namespace

LogSender::LogSender(CoordinatorClient* client, farm::v1::LeaseRef lease, std::string log_prefix,
                     std::function<bool()> reregister, Options options)
    : client_(client),
      lease_(std::move(lease)),
      log_prefix_(std::move(log_prefix)),
      reregister_(std::move(reregister)),
      options_(std::move(options)) {}

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
  Pending entry;
  entry.step_index = step_index;
  entry.offset = offset;
  entry.size = static_cast<int64_t>(data.size());
  const int64_t size = entry.size;

  absl::MutexLock lock(&mu_);
  auto fits_memory = [this, size]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return pending_.empty() || memory_bytes_ + size <= options_.max_memory_bytes;
  };
  auto fits_spill = [this, size]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !options_.spill_dir.empty() && !spill_failed_ &&
           spill_size_ + size <= options_.max_spill_bytes;
  };
  auto has_room = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return Done() || fits_memory() || fits_spill();
  };
  while (true) {
    mu_.Await(absl::Condition(&has_room));
    if (Done()) return false;
    if (fits_memory()) break;
    if (SpillLocked(data, &entry)) {
      pending_.push_back(std::move(entry));
      ++pending_per_step_[step_index];
      return true;
    }
    // Spilling is off now: wait for room in memory.
  }
  auto chunk = std::make_shared<farm::v1::LogUploadChunk>();
  *chunk->mutable_lease() = lease_;
  chunk->set_step_index(step_index);
  chunk->set_offset(offset);
  chunk->set_data(data.data(), data.size());
  entry.chunk = std::move(chunk);
  pending_.push_back(std::move(entry));
  ++pending_per_step_[step_index];
  memory_bytes_ += size;
  if (memory_bytes_ > peak_memory_bytes_) peak_memory_bytes_ = memory_bytes_;
  return true;
}

bool LogSender::SpillLocked(absl::string_view data, Pending* entry) {
  absl::Status status;
  if (spill_fd_ < 0) {
    std::error_code ec;
    std::filesystem::create_directories(options_.spill_dir, ec);
    std::string path = absl::StrCat(options_.spill_dir, "/", SafeFileName(lease_.job_id()), "-",
                                    lease_.attempt(), "-XXXXXX.spill");
    const int fd = ec ? -1 : ::mkostemps(path.data(), 6, O_CLOEXEC);
    if (ec) {
      status = absl::InternalError(absl::StrCat("cannot create the spill directory ",
                                                options_.spill_dir, ": ", ec.message()));
    } else if (fd < 0) {
      status = common::ErrnoStatus(
          errno, absl::StrCat("cannot create a spill file in ", options_.spill_dir));
    } else {
      spill_fd_ = fd;
      spill_path_ = std::move(path);
      spill_size_ = 0;
      if (!spill_logged_) {
        spill_logged_ = true;
        FARM_LOG(INFO) << log_prefix_ << " output outruns the log upload, spilling it to "
                       << spill_path_;
      }
    }
  }
  if (status.ok()) {
    status = common::WriteAllAt(spill_fd_, data, spill_size_, "cannot write the spill file");
  }
  if (!status.ok()) {
    spill_failed_ = true;
    FARM_LOG(WARNING) << log_prefix_ << " " << status
                      << "; no more spilling, output waits in memory (at most "
                      << options_.max_memory_bytes << " bytes) for the upload";
    // Gives back the disk a partial write took. Best effort: nothing reads past spill_size_.
    if (spill_fd_ >= 0 && ::ftruncate(spill_fd_, spill_size_) != 0) {
      FARM_LOG(WARNING) << log_prefix_ << " cannot truncate " << spill_path_ << ": "
                        << std::strerror(errno);
    }
    MaybeRemoveSpillFileLocked();
    return false;
  }
  entry->file_offset = spill_size_;
  spill_size_ += entry->size;
  spilled_bytes_ += entry->size;
  return true;
}

void LogSender::MaybeRemoveSpillFileLocked() {
  if (spill_fd_ < 0 || spilled_bytes_ > 0 || reading_spill_) return;
  if (::unlink(spill_path_.c_str()) != 0) {
    FARM_LOG(WARNING) << log_prefix_ << " cannot remove the spill file " << spill_path_ << ": "
                      << std::strerror(errno);
  }
  ::close(spill_fd_);
  spill_fd_ = -1;
  spill_path_.clear();
  spill_size_ = 0;
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
    ClearLocked();
  }
  canceller_.Cancel();
}

void LogSender::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
  absl::MutexLock lock(&mu_);
  // The sender thread only leaves output behind when nothing can send it anymore.
  if (Done()) ClearLocked();
  MaybeRemoveSpillFileLocked();
}

LogSender::Stats LogSender::GetStats() const {
  absl::MutexLock lock(&mu_);
  Stats stats;
  stats.memory_bytes = memory_bytes_;
  stats.peak_memory_bytes = peak_memory_bytes_;
  stats.spilled_bytes = spilled_bytes_;
  stats.spill_file_bytes = spill_fd_ >= 0 ? spill_size_ : 0;
  stats.spill_failed = spill_failed_;
  return stats;
}

void LogSender::PopFront(size_t count) {
  for (size_t i = 0; i < count && !pending_.empty(); ++i) {
    const Pending& entry = pending_.front();
    if (entry.chunk != nullptr) {
      memory_bytes_ -= entry.size;
    } else {
      spilled_bytes_ -= entry.size;
    }
    auto it = pending_per_step_.find(entry.step_index);
    if (it != pending_per_step_.end() && --it->second == 0) pending_per_step_.erase(it);
    pending_.pop_front();
  }
  MaybeRemoveSpillFileLocked();
}

void LogSender::ClearLocked() {
  pending_.clear();
  pending_per_step_.clear();
  memory_bytes_ = 0;
  spilled_bytes_ = 0;
  MaybeRemoveSpillFileLocked();
}

size_t LogSender::ReadBatch(const std::vector<Pending>& batch, int fd,
                            std::vector<ChunkPtr>* chunks, absl::Status* error) const {
  for (const Pending& entry : batch) {
    if (entry.chunk != nullptr) {
      chunks->push_back(entry.chunk);
      continue;
    }
    auto chunk = std::make_shared<farm::v1::LogUploadChunk>();
    *chunk->mutable_lease() = lease_;
    chunk->set_step_index(entry.step_index);
    chunk->set_offset(entry.offset);
    std::string* data = chunk->mutable_data();
    data->resize(static_cast<size_t>(entry.size));
    *error = ReadSpilled(fd, entry.file_offset, data->data(), entry.size);
    if (!error->ok()) break;
    chunks->push_back(std::move(chunk));
  }
  return chunks->size();
}

struct LogSender::LoopState {
  explicit LoopState(const Options& options)
      : backoff(options.initial_backoff_ms, options.max_backoff_ms) {}
  common::Backoff backoff;
  absl::flat_hash_set<uint32_t> warned_steps;  // told about output the coordinator dropped
  int failures = 0;                            // in a row
};

void LogSender::Loop() {
  LoopState state(options_);
  while (true) {
    std::vector<Pending> batch;
    bool spilled = false;
    int spill_fd = -1;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return Done() || stopping_ || !pending_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (Done() || pending_.empty()) return;
      int64_t bytes = 0;
      for (const Pending& entry : pending_) {
        if (!batch.empty() && bytes + entry.size > options_.max_stream_bytes) break;
        batch.push_back(entry);
        bytes += entry.size;
        if (entry.chunk == nullptr) spilled = true;
      }
      if (spilled) {
        FARM_CHECK(spill_fd_ >= 0) << "spilled output without a spill file";
        spill_fd = spill_fd_;
        // Keeps the file open while it is read outside the lock.
        reading_spill_ = true;
      }
    }

    std::vector<ChunkPtr> chunks;
    absl::Status read_error;
    ReadBatch(batch, spill_fd, &chunks, &read_error);
    if (spilled) {
      absl::MutexLock lock(&mu_);
      reading_spill_ = false;
      MaybeRemoveSpillFileLocked();
      if (Done()) return;
      if (chunks.empty()) {
        // Sending what precedes an unreadable chunk first gives it a second read.
        const Pending& lost = batch.front();
        FARM_LOG(ERROR) << log_prefix_ << " dropping " << lost.size << " bytes of step "
                        << lost.step_index << " output at offset " << lost.offset << ": "
                        << read_error;
        PopFront(1);
        continue;
      }
    }
    if (!Upload(chunks, state)) return;
  }
}

bool LogSender::Upload(const std::vector<ChunkPtr>& chunks, LoopState& state) {
  absl::StatusOr<farm::v1::LogUploadResponse> response = client_->UploadLogs(chunks, &canceller_);
  if (response.ok()) {
    state.failures = 0;
    state.backoff.Reset();
    // Everything written was processed. Bytes the coordinator did not commit (for example
    // past its per-job log limit) would never be, so they are dropped, not resent.
    for (const ChunkPtr& chunk : chunks) {
      auto it = response->committed().find(chunk->step_index());
      const int64_t end = chunk->offset() + static_cast<int64_t>(chunk->data().size());
      const int64_t committed = it == response->committed().end() ? 0 : it->second;
      if (committed < end && state.warned_steps.insert(chunk->step_index()).second) {
        FARM_LOG(WARNING) << log_prefix_ << " coordinator committed " << committed
                          << " bytes of step " << chunk->step_index() << " output, sent up to "
                          << end << "; the rest is dropped";
      }
    }
    absl::MutexLock lock(&mu_);
    if (!aborted_) PopFront(chunks.size());
    return true;
  }

  const absl::Status& status = response.status();
  if (status.code() == absl::StatusCode::kFailedPrecondition) {
    FARM_LOG(WARNING) << log_prefix_ << " log upload refused, lease is stale: " << status;
    absl::MutexLock lock(&mu_);
    failure_ = status;
    ClearLocked();
    return false;
  }
  if (status.code() == absl::StatusCode::kCancelled && canceller_.cancelled()) return false;
  if (IsNotRegistered(status)) {
    if (reregister_ && reregister_()) return true;
    Abort();
    return false;
  }
  if (IsRetryable(status)) {
    if (state.failures++ % 10 == 0) {
      FARM_LOG(WARNING) << log_prefix_ << " log upload failed, retrying: " << status;
    }
    return !canceller_.SleepFor(state.backoff.NextDelayMs());
  }
  // OUT_OF_RANGE (a gap: the coordinator lost bytes it had acknowledged), INVALID_ARGUMENT
  // and the like cannot be fixed by resending the same bytes.
  FARM_LOG(ERROR) << log_prefix_ << " log upload rejected, dropping " << chunks.size()
                  << " chunks: " << status;
  absl::MutexLock lock(&mu_);
  if (!aborted_) PopFront(chunks.size());
  return true;
}

}  // namespace farm::agent
