// Per-identity caps on the calls a caller may hold open at once: parked calls (Lease and
// Heartbeat long polls) and WatchLogs streams. Without them one caller (a runaway script, a
// stolen viewer token) could open thousands of long-lived calls and tie up the coordinator's
// memory and threads at the expense of everyone else.
//
// A call takes a Slot when it starts and gives it back when the Slot is destroyed. The service
// keeps the Slot in the call's reactor, which gRPC deletes exactly once whatever ends the call
// (finished, cancelled by the client, shut down), so every slot is given back exactly once.
#pragma once

#include <grpcpp/server_context.h>

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "coordinator/service/authenticator.h"

namespace farm::coordinator {

// Thread-safe. Outlives every Slot it hands out.
class CallCap {
 public:
  // `what`: the calls counted, for messages ("parked calls"); `flag`: the flag that sets `max`
  // ("--max_parked_calls_per_identity"), named when a call is refused. `max` >= 1.
  CallCap(std::string what, std::string flag, int max);
  CallCap(const CallCap&) = delete;
  CallCap& operator=(const CallCap&) = delete;

  // One open call of one identity; move-only. An empty Slot (default-constructed or moved
  // from) holds nothing.
  class Slot {
   public:
    Slot() = default;
    Slot(Slot&& other) noexcept;
    Slot& operator=(Slot&& other) noexcept;
    ~Slot() { Reset(); }
    // Gives the slot back now (at most once).
    void Reset();

   private:
    friend class CallCap;
    Slot(CallCap* cap, std::string identity) : cap_(cap), identity_(std::move(identity)) {}
    CallCap* cap_ = nullptr;
    std::string identity_;
  };

  // A slot for `identity` (a key from CapIdentity). RESOURCE_EXHAUSTED naming the cap and its
  // flag when `identity` already holds max() calls.
  absl::StatusOr<Slot> Acquire(absl::string_view identity);

  // Calls `identity` holds open now; over all identities.
  int open(absl::string_view identity) const;
  int total() const;
  int max() const { return max_; }

 private:
  void Release(const std::string& identity);

  const std::string what_;
  const std::string flag_;
  const int max_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, int> open_ ABSL_GUARDED_BY(mu_);  // only identities with > 0
  int total_ ABSL_GUARDED_BY(mu_) = 0;
};

// Whose calls count together: the authenticated caller ("agent builder-1"); with
// authentication off (--insecure: everyone is admin) the client's connection ("connection
// ipv4:127.0.0.1:40312"), so that two processes on a development farm are capped apart.
std::string CapIdentity(const Authenticator& auth, const grpc::ServerContextBase& ctx);

}  // namespace farm::coordinator
