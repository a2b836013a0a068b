#include "coordinator/scheduler/engine.h"

#include <chrono>

#include "absl/time/time.h"
#include "common/io_pool.h"
#include "common/logging.h"

namespace farm::coordinator {
namespace {

// One written group in the engine's metrics, when it has them: its commands, and its write's
// seconds since `start`.
void ObserveGroup(const EngineOptions& options, int commands,
                  std::chrono::steady_clock::time_point start) {
  if (options.write_seconds != nullptr) {
    options.write_seconds->Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  if (options.group_commands != nullptr) options.group_commands->Observe(commands);
}

}  // namespace

const std::string* Txn::Written(int64_t op) const {
  return op < 0 ? nullptr : &batch_.ops()[static_cast<size_t>(op)].value;
}

absl::StatusOr<std::optional<std::string>> Txn::Get(Cf cf, absl::string_view key) {
  auto it = overlay_.find({static_cast<int>(cf), std::string(key)});
  if (it == overlay_.end()) return store_->Get(cf, key);
  const std::string* value = Written(it->second);
  if (value == nullptr) return std::nullopt;
  return *value;
}

absl::Status Txn::Scan(Cf cf, absl::string_view start, absl::string_view limit,
                       const Store::ScanFn& fn) {
  const int c = static_cast<int>(cf);
  auto ov = overlay_.lower_bound({c, std::string(start)});
  auto ov_in_range = [&] {
    return ov != overlay_.end() && ov->first.first == c &&
           (limit.empty() || ov->first.second < limit);
  };
  bool stopped = false;
  // Emits overlay entries that sort before `key` (all of them when key is null).
  auto drain_overlay = [&](const absl::string_view* key) {
    while (!stopped && ov_in_range() && (key == nullptr || ov->first.second < *key)) {
      const std::string* value = Written(ov->second);
      if (value != nullptr && !fn(ov->first.second, *value)) stopped = true;
      ++ov;
    }
  };
  absl::Status status = store_->Scan(
      cf, start, limit,
      [&](absl::string_view key, absl::string_view value) {
        drain_overlay(&key);
        if (stopped) return false;
        if (ov_in_range() && ov->first.second == key) {
          // The group rewrote or deleted this key: the overlay wins.
          const std::string* written = Written(ov->second);
          if (written != nullptr && !fn(key, *written)) stopped = true;
          ++ov;
          return !stopped;
        }
        if (!fn(key, value)) stopped = true;
        return !stopped;
      },
      /*reverse=*/false);
  if (!status.ok()) return status;
  drain_overlay(nullptr);
  return absl::OkStatus();
}

void Txn::Put(Cf cf, std::string key, std::string value) {
  overlay_[{static_cast<int>(cf), key}] = static_cast<int64_t>(batch_.ops().size());
  batch_.Put(cf, std::move(key), std::move(value));
}

void Txn::PutBlind(Cf cf, std::string key, std::string value) {
  batch_.Put(cf, std::move(key), std::move(value));
}

void Txn::DeleteRangeBlind(Cf cf, std::string start, std::string limit) {
  batch_.DeleteRange(cf, std::move(start), std::move(limit));
}

void Txn::Delete(Cf cf, std::string key) {
  overlay_[{static_cast<int>(cf), key}] = -1;
  batch_.Delete(cf, std::move(key));
}

void Txn::BeforeWrite(std::function<void(Txn&)> fn) { before_write_.push_back(std::move(fn)); }

void Txn::Seal() {
  // A function may add another (it appends, so an index loop sees it).
  for (size_t i = 0; i < before_write_.size() && !failed(); ++i) {
    std::function<void(Txn&)> fn = std::move(before_write_[i]);
    fn(*this);
  }
  before_write_.clear();
}

void Txn::OnCommit(std::function<void(const absl::Status&)> fn) {
  callbacks_.push_back(std::move(fn));
}

void Txn::ReplyOnCommit(std::function<void(const absl::Status&)> fn) {
  replies_.push_back(std::move(fn));
}

void Txn::Fail(absl::Status status) {
  FARM_CHECK(!status.ok());
  if (failed_.ok()) failed_ = std::move(status);
}

Engine::Engine(Store* store, common::Clock* clock, EngineOptions options)
    : store_(store), clock_(clock), options_(options) {}

Engine::~Engine() { Stop(); }

void Engine::Start() {
  reply_thread_ = std::thread([this] {
    common::SetThreadName("engine-replies");
    SendReplies();
  });
  thread_ = std::thread([this] {
    common::SetThreadName("engine");
    Run();
  });
  thread_id_ = thread_.get_id();
}

void Engine::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
    wake_ = true;
  }
  if (thread_.joinable()) thread_.join();
  {
    absl::MutexLock lock(&reply_mu_);
    replies_done_ = true;
  }
  if (reply_thread_.joinable()) reply_thread_.join();
}

void Engine::SendReplies() {
  while (true) {
    std::pair<absl::Status, std::vector<std::function<void(const absl::Status&)>>> group;
    {
      absl::MutexLock lock(&reply_mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(reply_mu_) {
        return !replies_.empty() || replies_done_;
      };
      reply_mu_.Await(absl::Condition(&ready));
      if (replies_.empty()) return;  // done, and everything sent
      group = std::move(replies_.front());
      replies_.pop_front();
    }
    for (auto& reply : group.second) reply(group.first);
  }
}

bool Engine::Post(Command cmd) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return false;
  queue_.push_back(std::move(cmd));
  wake_ = true;
  return true;
}

Engine::TimerId Engine::AddTimer(int64_t due_ms, Command fn) {
  FARM_CHECK(OnEngineThread());
  TimerId id = next_timer_++;
  timers_.emplace(due_ms, std::make_pair(id, std::move(fn)));
  timer_due_[id] = due_ms;
  return id;
}

void Engine::CancelTimer(TimerId id) {
  FARM_CHECK(OnEngineThread());
  auto it = timer_due_.find(id);
  if (it == timer_due_.end()) return;
  auto range = timers_.equal_range(it->second);
  for (auto t = range.first; t != range.second; ++t) {
    if (t->second.first == id) {
      timers_.erase(t);
      break;
    }
  }
  timer_due_.erase(it);
}

bool Engine::SleepUnlessStopping(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
  mu_.AwaitWithTimeout(absl::Condition(&stopping), d);
  return !stopping_;
}

void Engine::SetWriteFailureHandler(std::function<void(const absl::Status&)> fn) {
  on_write_failure_ = std::move(fn);
}

void Engine::Run() {
  while (true) {
    std::deque<Command> batch;
    bool stopping;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return wake_; };
      if (!wake_) {
        if (timers_.empty()) {
          mu_.Await(absl::Condition(&ready));
        } else {
          int64_t wait = timers_.begin()->first - clock_->MonotonicMs();
          if (wait > 0) mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(wait));
        }
      }
      batch.swap(queue_);
      wake_ = false;
      stopping = stopping_;
    }

    Txn txn(store_, ++groups_started_);
    int commands = 0;
    // Due timers first: they are older than anything just posted.
    const int64_t now = clock_->MonotonicMs();
    while (!timers_.empty() && timers_.begin()->first <= now) {
      auto node = timers_.extract(timers_.begin());
      timer_due_.erase(node.mapped().first);
      node.mapped().second(txn);
      ++commands;
      if (epilogue_ && !txn.failed()) epilogue_(txn);
    }
    // A full group, or a failed one, takes no more commands: the rest run in the next group,
    // ahead of anything posted meanwhile (after a failure, once the owner has rebuilt its
    // memory: they had no part in it).
    while (!batch.empty() && !txn.failed() && txn.batch_.byte_size() < options_.max_group_bytes) {
      Command cmd = std::move(batch.front());
      batch.pop_front();
      cmd(txn);
      ++commands;
      if (epilogue_ && !txn.failed()) epilogue_(txn);
    }
    if (!batch.empty()) {
      absl::MutexLock lock(&mu_);
      for (auto it = batch.rbegin(); it != batch.rend(); ++it) queue_.push_front(std::move(*it));
      batch.clear();
      wake_ = true;
    }

    txn.Seal();
    absl::Status status;
    if (txn.failed()) {
      status = txn.failed_;
      FARM_LOG(ERROR) << "a group of " << txn.batch_.ops().size()
                      << " operations was abandoned: " << status;
      if (on_write_failure_) on_write_failure_(status);
    } else if (!txn.batch_.empty() && writes_stopped_) {
      status = absl::UnavailableError("the coordinator is stopping after a failed write");
    } else if (!txn.batch_.empty()) {
      const auto start = std::chrono::steady_clock::now();
      status = store_->Write(txn.batch_, options_.sync);
      ++groups_written_;
      ObserveGroup(options_, commands, start);
      if (!status.ok()) {
        FARM_LOG(ERROR) << "store write of " << txn.batch_.ops().size()
                        << " operations failed: " << status;
        if (on_write_failure_) on_write_failure_(status);
      }
    }
    for (auto& cb : txn.callbacks_) cb(status);
    if (!txn.replies_.empty()) {
      absl::MutexLock lock(&reply_mu_);
      replies_.emplace_back(status, std::move(txn.replies_));
    }

    if (stopping) {
      absl::MutexLock lock(&mu_);
      if (queue_.empty()) break;
    }
  }
}

}  // namespace farm::coordinator
