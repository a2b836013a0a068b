// The coordinator's state-machine thread. Every change to jobs, leases and agents runs here,
// one command at a time, so domain state needs no locks; and every change is made durable by
// group commit: the commands that queued up while the previous batch was syncing are applied
// together and written as ONE synced WriteBatch, then all their completion callbacks run.
// Throughput is therefore not bounded by one fsync per call.
//
// A command sees a Txn: reads through it see the writes of earlier commands of the same group.
// In-memory state may be changed by commands before the write; if the write fails, the
// failure handler runs first (the owner rebuilds its memory from the store), then every
// callback of the group gets the error. No reply is ever sent before its write is durable.
//
// Thread-safety: Post() from any thread. AddTimer/CancelTimer only on the engine thread (from
// inside commands and timers). A second thread sends replies (Txn::ReplyOnCommit) while the
// engine thread goes on with the next group.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "coordinator/store/store.h"

namespace farm::coordinator {

class Txn {
 public:
  // `id` numbers the engine's groups (1, 2, ...), so that a part can do something once per group.
  explicit Txn(Store* store, uint64_t id = 0) : store_(store), id_(id) {}
  uint64_t id() const { return id_; }

  absl::StatusOr<std::optional<std::string>> Get(Cf cf, absl::string_view key);
  // Keys in [start, limit) in order as this group sees them (store merged with the writes
  // of earlier commands), until fn returns false.
  absl::Status Scan(Cf cf, absl::string_view start, absl::string_view limit,
                    const Store::ScanFn& fn);
  void Put(Cf cf, std::string key, std::string value);
  void Delete(Cf cf, std::string key);
  // A write that no command reads back through this group (an event, output, a counter): it
  // goes to the batch only, not to the group's read overlay. Get and Scan do not see it.
  void PutBlind(Cf cf, std::string key, std::string value);
  // Deletes the keys in [start, limit) (Store's WriteBatch::DeleteRange). Blind like PutBlind:
  // for keys no command of this group reads back (a removed job's output).
  void DeleteRangeBlind(Cf cf, std::string start, std::string limit);

  // fn runs on the engine thread after the group's last command, before the group is written
  // (unless it failed); it may add writes. For a part that writes one entry per group.
  void BeforeWrite(std::function<void(Txn&)> fn);
  // Runs the BeforeWrite functions, once. The engine does before it writes the group; a test
  // that writes batch() itself does too.
  void Seal();

  // fn runs on the engine thread once the group is written: OK, or the write error.
  void OnCommit(std::function<void(const absl::Status&)> fn);
  // Like OnCommit, but fn runs on the engine's reply thread, after the group's OnCommit
  // callbacks, so that sending replies (gRPC's work) does not hold up the next group. For
  // callbacks that touch no engine state. Replies keep their order, within and across groups.
  void ReplyOnCommit(std::function<void(const absl::Status&)> fn);

  // Fails the whole group: nothing of it is written, the write-failure handler runs (the owner
  // rebuilds its memory from the store) and every callback gets `status`. For a command that
  // cannot finish a change it has begun (a read failed halfway through a cascade): committing
  // the half would lose the rest. The first failure wins; commands not yet run when it fails
  // run in the next group instead.
  void Fail(absl::Status status);
  bool failed() const { return !failed_.ok(); }

  Store* store() const { return store_; }
  const WriteBatch& batch() const { return batch_; }

 private:
  friend class Engine;
  // The value written by batch_ operation `op`; null for a delete (op < 0).
  const std::string* Written(int64_t op) const;

  Store* store_;
  uint64_t id_;
  WriteBatch batch_;
  // What this group wrote, for its own reads: the index of the key's last Put in batch_ (its
  // value lives there, not copied), or -1 for a Delete.
  std::map<std::pair<int, std::string>, int64_t> overlay_;
  std::vector<std::function<void(Txn&)>> before_write_;
  std::vector<std::function<void(const absl::Status&)>> callbacks_;
  std::vector<std::function<void(const absl::Status&)>> replies_;
  absl::Status failed_;
};

struct EngineOptions {
  bool sync = true;                   // fsync each group (off only in benchmarks' A/B)
  size_t max_group_bytes = 32 << 20;  // stop adding commands to a group past this
  // When set (not owned; they outlive the engine), each group written is observed: how many
  // commands and timers it holds, and how long the store's write (with its fsync) took.
  common::metrics::Histogram* group_commands = nullptr;
  common::metrics::Histogram* write_seconds = nullptr;
};

class Engine {
 public:
  using Command = std::function<void(Txn&)>;
  using TimerId = uint64_t;

  Engine(Store* store, common::Clock* clock, EngineOptions options = {});
  ~Engine();

  void Start();
  // Runs everything already posted, writes it, sends every reply, then joins the threads.
  // Later Posts fail.
  void Stop();

  // Queues cmd for the engine thread. Returns false (and drops cmd) once stopping.
  bool Post(Command cmd);

  // Engine thread only. fn runs in a group at or after the monotonic time due_ms.
  TimerId AddTimer(int64_t due_ms, Command fn);
  void CancelTimer(TimerId id);

  // Runs on the engine thread after a failed group write, before the callbacks.
  void SetWriteFailureHandler(std::function<void(const absl::Status&)> fn);
  // Runs after every command and every timer, in its group (unless the group failed): the
  // owner's follow-up work (the scheduler offers newly queued jobs to parked agents). Before
  // Start.
  void SetCommandEpilogue(Command fn) { epilogue_ = std::move(fn); }
  // Engine thread only. From now on no group is written; their callbacks get UNAVAILABLE. For
  // when memory can no longer be trusted to match the store.
  void StopWriting() { writes_stopped_ = true; }

  // Sleeps up to `d` (for retries on the engine thread); returns false at once when stopping.
  bool SleepUnlessStopping(absl::Duration d);

  bool OnEngineThread() const { return std::this_thread::get_id() == thread_id_; }
  int64_t groups_written() const { return groups_written_; }

 private:
  void Run();
  void SendReplies();  // the reply thread

  Store* const store_;
  common::Clock* const clock_;
  const EngineOptions options_;
  std::function<void(const absl::Status&)> on_write_failure_;
  Command epilogue_;

  absl::Mutex mu_;
  std::deque<Command> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool wake_ ABSL_GUARDED_BY(mu_) = false;

  // Engine thread only.
  std::multimap<int64_t, std::pair<TimerId, Command>> timers_;
  std::map<TimerId, int64_t> timer_due_;
  TimerId next_timer_ = 1;
  uint64_t groups_started_ = 0;
  int64_t groups_written_ = 0;
  bool writes_stopped_ = false;

  std::thread thread_;
  std::thread::id thread_id_;

  // Groups' ReplyOnCommit callbacks with their write status, in commit order.
  absl::Mutex reply_mu_;
  std::deque<std::pair<absl::Status, std::vector<std::function<void(const absl::Status&)>>>>
      replies_ ABSL_GUARDED_BY(reply_mu_);
  bool replies_done_ ABSL_GUARDED_BY(reply_mu_) = false;  // the engine thread has ended
  std::thread reply_thread_;
};

}  // namespace farm::coordinator
