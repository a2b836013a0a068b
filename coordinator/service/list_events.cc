#include "coordinator/service/list_events.h"

#include <grpcpp/alarm.h>

#include <algorithm>
#include <memory>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "coordinator/service/relay.h"

namespace farm::coordinator {
namespace {

// A held call answers this long before the client's deadline, so the answer arrives.
constexpr absl::Duration kDeadlineMargin = absl::Seconds(1);

class ListEventsCall final : public grpc::ServerUnaryReactor {
 public:
  ListEventsCall(grpc::CallbackServerContext* ctx, EventReader* reader, FollowerHub* hub,
                 common::IoPool* pool, const farm::v1::ListEventsRequest& req,
                 farm::v1::ListEventsResponse* resp)
      : reader_(reader), hub_(hub), req_(req), resp_(resp) {
    relay_ = std::make_shared<Relay<ListEventsCall>>(this, pool);
    absl::Duration wait = absl::Milliseconds(req.wait_ms());
    const auto deadline = ctx->deadline();
    if (deadline != std::chrono::system_clock::time_point::max()) {
      wait = std::min(wait, absl::FromChrono(deadline) - absl::Now() - kDeadlineMargin);
    }
    due_ = absl::Now() + std::max(wait, absl::ZeroDuration());
    if (wait > absl::ZeroDuration()) {
      hub_->SubscribeEvents(relay_);  // before the first read: no event slips in between
      subscribed_ = true;
      alarm_.Set(absl::ToChronoTime(due_), [relay = relay_](bool ok) {
        if (ok) relay->Schedule();
      });
    }
    relay_->Schedule();
  }

  void OnCancel() override { FinishOnce(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled")); }

  void OnDone() override {
    relay_->Detach();
    if (subscribed_) hub_->UnsubscribeEvents(relay_.get());
    delete this;
  }

  void Abort() {
    FinishOnce(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the coordinator is shutting down"));
  }

  // On the read pool: answers when there are events, or the wait is over; else waits on.
  void Pump() {
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
    }
    absl::StatusOr<farm::v1::ListEventsResponse> page = reader_->List(req_);
    if (!page.ok()) return FinishOnce(common::ToGrpcStatus(page.status()));
    if (page->events().empty() && absl::Now() < due_) return;  // a commit or the alarm wakes it
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    finished_ = true;
    *resp_ = *std::move(page);
    Finish(grpc::Status::OK);
  }

 private:
  void FinishOnce(grpc::Status status) {
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      finished_ = true;
    }
    Finish(std::move(status));
  }

  EventReader* const reader_;
  FollowerHub* const hub_;
  const farm::v1::ListEventsRequest req_;
  farm::v1::ListEventsResponse* const resp_;
  std::shared_ptr<Relay<ListEventsCall>> relay_;
  absl::Time due_;
  bool subscribed_ = false;
  grpc::Alarm alarm_;
  absl::Mutex mu_;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

grpc::ServerUnaryReactor* NewListEventsCall(grpc::CallbackServerContext* ctx, EventReader* reader,
                                            FollowerHub* hub, common::IoPool* pool,
                                            const farm::v1::ListEventsRequest& req,
                                            farm::v1::ListEventsResponse* resp) {
  if (absl::Status s = EventReader::Validate(req); !s.ok()) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(common::ToGrpcStatus(s));
    return reactor;
  }
  return new ListEventsCall(ctx, reader, hub, pool, req, resp);
}

}  // namespace farm::coordinator
