#include "coordinator/service/agent_service.h"

#include <algorithm>
#include <chrono>
#include <optional>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/text.h"
#include "coordinator/service/request_text.h"
#include "coordinator/service/unary.h"

namespace farm::coordinator {
namespace {

using common::ToGrpcStatus;

// Longest a parked call is held, whatever the client asks.
constexpr int64_t kMaxParkMs = 60'000;
// A parked call answers this long before the client's deadline, so the answer arrives.
constexpr int64_t kDeadlineMarginMs = 1'000;

int64_t ParkMs(grpc::CallbackServerContext* ctx, int64_t requested_ms) {
  int64_t ms = std::clamp<int64_t>(requested_ms, 0, kMaxParkMs);
  const auto deadline = ctx->deadline();
  if (deadline != std::chrono::system_clock::time_point::max()) {
    const int64_t left = std::chrono::duration_cast<std::chrono::milliseconds>(
                             deadline - std::chrono::system_clock::now())
                             .count() -
                         kDeadlineMarginMs;
    ms = std::min(ms, std::max<int64_t>(left, 0));
  }
  return ms;
}

// Adds the values of the leased job's secrets to a lease about to be sent to the agent that
// holds it: the one place values leave the coordinator. Jobs without secrets pay nothing.
void AddSecretValues(const SecretRegistry* secrets, farm::v1::LeaseResponse& lease) {
  if (secrets == nullptr || !lease.has_job() || lease.job().spec().secrets().empty()) return;
  for (common::NamedSecret& s : secrets->Values(lease.job().spec().secrets())) {
    farm::v1::SecretValue* v = lease.add_secrets();
    v->set_name(std::move(s.name));
    v->set_value(std::move(s.value));
  }
}

// A unary call the scheduler may hold; tells the scheduler when the client goes away. It holds
// a slot of its caller's parked-call cap until gRPC is done with it.
class ParkedCall final : public grpc::ServerUnaryReactor {
 public:
  ParkedCall(Scheduler* scheduler, uint64_t call_id) : scheduler_(scheduler), call_id_(call_id) {}
  void OnCancel() override { scheduler_->CancelWait(call_id_); }
  void OnDone() override { delete this; }

  // Takes a slot of `cap` for the caller; RESOURCE_EXHAUSTED when it holds the most already.
  absl::Status Hold(CallCap* cap, const Authenticator& auth,
                    const grpc::CallbackServerContext& ctx) {
    absl::StatusOr<CallCap::Slot> slot = cap->Acquire(CapIdentity(auth, ctx));
    if (!slot.ok()) return slot.status();
    slot_ = *std::move(slot);
    return absl::OkStatus();
  }

 private:
  Scheduler* const scheduler_;
  const uint64_t call_id_;
  CallCap::Slot slot_;
};

// Applies uploaded chunks in order, keeping up to kMaxInFlightBytes of them appended but not
// yet durable, so that the engine commits many chunks with one fsync (one chunk per fsync
// capped a stream at ~25 MB/s here). That also bounds what a stream holds in memory. The reply
// carries, per step, the largest committed length; the first failure ends the stream once
// nothing is in flight.
class UploadLogsCall final : public grpc::ServerReadReactor<farm::v1::LogUploadChunk> {
 public:
  static constexpr size_t kMaxInFlightBytes = 4 << 20;

  // `holder`: the agent whose leases the chunks must name ("" any); `refused`: the caller may
  // not upload at all (the call ends with it at once).
  UploadLogsCall(Scheduler* scheduler, farm::v1::LogUploadResponse* resp, std::string holder,
                 const absl::Status& refused, common::metrics::Counter* bytes_received)
      : scheduler_(scheduler),
        resp_(resp),
        holder_(std::move(holder)),
        bytes_received_(bytes_received) {
    if (!refused.ok()) {
      finished_ = true;
      Finish(ToGrpcStatus(refused));
      return;
    }
    reading_ = true;
    StartRead(&chunk_);
  }

  void OnReadDone(bool ok) override {
    std::optional<farm::v1::LogUploadChunk> append;
    Next next = Next::kNothing;
    grpc::Status status;
    {
      absl::MutexLock lock(&mu_);
      if (!ok) {
        read_done_ = true;  // the client half-closed (or went away)
      } else if (absl::Status s = common::ValidateRequestText(chunk_); !s.ok()) {
        Fail(ToGrpcStatus(s));
      } else if (chunk_.data().size() > kMaxLogChunkBytes) {
        Fail(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("a log chunk is ", chunk_.data().size(),
                                       " bytes; the limit is ", kMaxLogChunkBytes)));
      } else if (status_.ok()) {
        in_flight_bytes_ += chunk_.data().size();
        ++in_flight_;
        append = std::move(chunk_);
      }
      // A chunk being appended keeps the next read from starting until it has been posted:
      // appends must reach the engine in stream order, or a later chunk would arrive first and
      // be refused as a gap. (It also keeps the call from finishing meanwhile.)
      if (!append.has_value()) {
        reading_ = false;
        next = NextLocked(&status);
      }
    }
    if (append.has_value()) {
      const uint32_t step = append->step_index();
      const size_t bytes = append->data().size();
      if (bytes_received_ != nullptr) bytes_received_->Add(bytes);
      scheduler_->AppendLog(
          std::move(*append),
          [this, step, bytes](absl::StatusOr<int64_t> committed) {
            Appended(step, bytes, committed);
          },
          holder_);
      absl::MutexLock lock(&mu_);
      reading_ = false;
      next = NextLocked(&status);
    }
    Do(next, status);
  }

  void OnDone() override { delete this; }

 private:
  enum class Next { kNothing, kRead, kFinish };

  void Appended(uint32_t step, size_t bytes, const absl::StatusOr<int64_t>& committed) {
    Next next;
    grpc::Status status;
    {
      absl::MutexLock lock(&mu_);
      --in_flight_;
      in_flight_bytes_ -= bytes;
      if (!committed.ok()) {
        Fail(ToGrpcStatus(committed.status()));
      } else {
        int64_t& length = (*resp_->mutable_committed())[step];
        length = std::max(length, *committed);
      }
      next = NextLocked(&status);
    }
    Do(next, status);
  }

  void Fail(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (status_.ok()) status_ = std::move(status);
  }

  // What comes next, decided once per change: read the next chunk while there is room in
  // flight; finish (with *status) once the client is done or a chunk failed, no read is pending
  // and every append has answered. Exactly one thread is told to finish.
  Next NextLocked(grpc::Status* status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_ || reading_) return Next::kNothing;
    if (read_done_ || !status_.ok()) {
      if (in_flight_ > 0) return Next::kNothing;
      finished_ = true;
      *status = status_;
      return Next::kFinish;
    }
    if (in_flight_bytes_ >= kMaxInFlightBytes) return Next::kNothing;
    reading_ = true;
    return Next::kRead;
  }

  // Outside the lock (reactions may run at once, on another thread), and the last thing its
  // caller does with this call: once Finish is called, OnDone may delete it.
  void Do(Next next, const grpc::Status& status) {
    if (next == Next::kRead) {
      chunk_.Clear();
      StartRead(&chunk_);
    } else if (next == Next::kFinish) {
      Finish(status);
    }
  }

  Scheduler* const scheduler_;
  farm::v1::LogUploadResponse* const resp_;  // written under mu_ until Finish
  const std::string holder_;
  common::metrics::Counter* const bytes_received_;
  farm::v1::LogUploadChunk chunk_;  // the read buffer: only while reading_
  absl::Mutex mu_;
  bool reading_ ABSL_GUARDED_BY(mu_) = false;  // a read is pending, or its chunk being posted
  bool read_done_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  size_t in_flight_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::StatusOr<std::string> AgentServiceImpl::ActingAgent(const grpc::CallbackServerContext& ctx,
                                                          absl::string_view named,
                                                          Principal* caller_out) const {
  absl::StatusOr<Principal> caller = auth_->CallerOf(ctx);
  if (!caller.ok()) return caller.status();
  if (caller_out != nullptr) *caller_out = *caller;
  if (caller->role != Role::kAgent) return std::string();
  if (!named.empty() && named != caller->name) {
    return absl::PermissionDeniedError(absl::StrCat("agent ", caller->name,
                                                    " may act only as itself, not as \"",
                                                    absl::CHexEscape(named.substr(0, 128)), "\""));
  }
  return caller->name;
}

grpc::ServerUnaryReactor* AgentServiceImpl::Register(grpc::CallbackServerContext* ctx,
                                                     const farm::v1::RegisterRequest* req,
                                                     farm::v1::RegisterResponse* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  auto* reactor = ctx->DefaultReactor();
  Principal caller;
  absl::StatusOr<std::string> agent = ActingAgent(*ctx, req->name(), &caller);
  absl::Status allowed = agent.status();
  if (allowed.ok()) {
    allowed = CheckClaimedLabels(caller, {req->labels().begin(), req->labels().end()});
  }
  if (!allowed.ok()) {
    reactor->Finish(ToGrpcStatus(allowed));
    return reactor;
  }
  scheduler_->Register(*req, FinishWith(reactor, resp));
  return reactor;
}

grpc::ServerUnaryReactor* AgentServiceImpl::Enroll(grpc::CallbackServerContext* ctx,
                                                   const farm::v1::EnrollRequest* req,
                                                   farm::v1::EnrollResponse* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  if (req->enroll_token().empty()) {
    auto* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                 "enroll_token is empty: farm-agent --enroll_token=TOKEN"));
    return reactor;
  }
  return RunOnPool(ctx, pool_, resp,
                   [this, req, peer = ctx->peer()]() -> absl::StatusOr<farm::v1::EnrollResponse> {
                     const std::string id = TokenRegistry::IdOf(req->enroll_token());
                     absl::StatusOr<TokenRegistry::Created> enrolled =
                         tokens_->Enroll(req->enroll_token(), req->name(), req->request_id());
                     if (!enrolled.ok()) {
                       FARM_LOG(WARNING) << "enrollment of agent " << common::Quote(req->name())
                                         << " from " << peer << " with enrollment token " << id
                                         << " refused: " << enrolled.status().message();
                       return enrolled.status();
                     }
                     FARM_LOG(INFO) << "agent " << req->name() << " enrolled from " << peer
                                    << " with enrollment token " << id
                                    << ": its credential is token " << enrolled->info.id();
                     farm::v1::EnrollResponse out;
                     out.set_token(std::move(enrolled->token));
                     *out.mutable_info() = std::move(enrolled->info);
                     return out;
                   });
}

grpc::ServerUnaryReactor* AgentServiceImpl::Lease(grpc::CallbackServerContext* ctx,
                                                  const farm::v1::LeaseRequest* req,
                                                  farm::v1::LeaseResponse* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  const uint64_t call_id = scheduler_->NewCallId();
  auto* reactor = new ParkedCall(scheduler_, call_id);
  absl::StatusOr<std::string> agent = ActingAgent(*ctx, req->agent());
  const absl::Status refused =
      agent.ok() ? reactor->Hold(parked_cap_, *auth_, *ctx) : agent.status();
  if (!refused.ok()) {
    reactor->Finish(ToGrpcStatus(refused));
    return reactor;
  }
  scheduler_->Lease(*req, ParkMs(ctx, req->wait_ms()), call_id,
                    [reactor, resp, secrets = secrets_](absl::StatusOr<farm::v1::LeaseResponse> r) {
                      if (r.ok()) AddSecretValues(secrets, *r);
                      FinishWith(reactor, resp)(std::move(r));
                    });
  return reactor;
}

grpc::ServerUnaryReactor* AgentServiceImpl::Heartbeat(grpc::CallbackServerContext* ctx,
                                                      const farm::v1::HeartbeatRequest* req,
                                                      farm::v1::HeartbeatResponse* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  const uint64_t call_id = scheduler_->NewCallId();
  auto* reactor = new ParkedCall(scheduler_, call_id);
  absl::StatusOr<std::string> agent = ActingAgent(*ctx, req->agent());
  const absl::Status refused =
      agent.ok() ? reactor->Hold(parked_cap_, *auth_, *ctx) : agent.status();
  if (!refused.ok()) {
    reactor->Finish(ToGrpcStatus(refused));
    return reactor;
  }
  const absl::Time arrived = absl::Now();
  scheduler_->Heartbeat(*req, ParkMs(ctx, req->wait_ms()), call_id,
                        [reactor, resp, arrived](absl::StatusOr<farm::v1::HeartbeatResponse> r) {
                          if (r.ok())
                            r->set_held_us(absl::ToInt64Microseconds(absl::Now() - arrived));
                          FinishWith(reactor, resp)(std::move(r));
                        });
  return reactor;
}

grpc::ServerReadReactor<farm::v1::LogUploadChunk>* AgentServiceImpl::UploadLogs(
    grpc::CallbackServerContext* ctx, farm::v1::LogUploadResponse* resp) {
  absl::StatusOr<std::string> agent = ActingAgent(*ctx, "");
  return new UploadLogsCall(scheduler_, resp, agent.value_or(""), agent.status(),
                            log_bytes_received_);
}

grpc::ServerUnaryReactor* AgentServiceImpl::StepStarted(grpc::CallbackServerContext* ctx,
                                                        const farm::v1::StepStartedRequest* req,
                                                        farm::v1::Ack* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  auto* reactor = ctx->DefaultReactor();
  absl::StatusOr<std::string> agent = ActingAgent(*ctx, "");
  if (!agent.ok()) {
    reactor->Finish(ToGrpcStatus(agent.status()));
    return reactor;
  }
  scheduler_->StepStarted(*req, FinishWith(reactor, resp), *std::move(agent));
  return reactor;
}

grpc::ServerUnaryReactor* AgentServiceImpl::StepFinished(grpc::CallbackServerContext* ctx,
                                                         const farm::v1::StepFinishedRequest* req,
                                                         farm::v1::Ack* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  auto* reactor = ctx->DefaultReactor();
  absl::StatusOr<std::string> agent = ActingAgent(*ctx, "");
  if (!agent.ok()) {
    reactor->Finish(ToGrpcStatus(agent.status()));
    return reactor;
  }
  scheduler_->StepFinished(*req, FinishWith(reactor, resp), *std::move(agent));
  return reactor;
}

grpc::ServerUnaryReactor* AgentServiceImpl::CompleteJob(grpc::CallbackServerContext* ctx,
                                                        const farm::v1::CompleteJobRequest* req,
                                                        farm::v1::CompleteJobResponse* resp) {
  if (auto* refused = RefuseUncleanText(ctx, *req)) return refused;
  auto* reactor = ctx->DefaultReactor();
  absl::StatusOr<std::string> agent = ActingAgent(*ctx, req->agent());
  if (!agent.ok()) {
    reactor->Finish(ToGrpcStatus(agent.status()));
    return reactor;
  }
  scheduler_->CompleteJob(
      *req,
      [reactor, resp, secrets = secrets_](absl::StatusOr<farm::v1::CompleteJobResponse> r) {
        if (r.ok() && r->has_next()) AddSecretValues(secrets, *r->mutable_next());
        FinishWith(reactor, resp)(std::move(r));
      },
      *std::move(agent));
  return reactor;
}

}  // namespace farm::coordinator
