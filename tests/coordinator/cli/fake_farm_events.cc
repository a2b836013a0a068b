// FakeFarm's event history: AddEvent and ListEvents (see fake_farm.h).
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/coordinator/cli/fake_farm.h"

namespace farm::testing {

uint64_t FakeFarm::AddEvent(farm::v1::Event event) {
  absl::MutexLock lock(&mu_);
  event.set_seq(events_.size() + 1);
  events_.push_back(std::move(event));
  return events_.back().seq();
}

std::vector<farm::v1::ListEventsRequest> FakeFarm::list_events_requests() const {
  absl::MutexLock lock(&mu_);
  return list_events_requests_;
}

bool FakeFarm::AwaitHeldListEvents(int count, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto held = [this, count]()
                  ABSL_SHARED_LOCKS_REQUIRED(mu_) { return held_list_events_ >= count; };
  return mu_.AwaitWithTimeout(absl::Condition(&held), timeout);
}

bool FakeFarm::AwaitListEventsCalls(size_t count, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto received = [this, count]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return list_events_requests_.size() >= count;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&received), timeout);
}

void FakeFarm::FailNextListEvents(int count) {
  absl::MutexLock lock(&mu_);
  list_events_to_fail_ = count;
}

bool FakeFarm::EventsPageLocked(const farm::v1::ListEventsRequest& request,
                                farm::v1::ListEventsResponse* response) const {
  uint64_t after = 0;
  if (!request.page_token().empty() && !absl::SimpleAtoi(request.page_token(), &after)) {
    after = 0;
  }
  const size_t limit = request.limit() > 0 ? static_cast<size_t>(request.limit()) : 1000;
  const auto matches = [&](const farm::v1::Event& event) {
    return event.seq() > after && event.time_ms() >= request.since_ms() &&
           (request.job_id().empty() || event.job_id() == request.job_id());
  };
  bool more = false;  // a matching event before until_ms beyond the page
  response->Clear();
  for (const farm::v1::Event& event : events_) {
    if (!matches(event)) continue;
    if (request.until_ms() != 0 && event.time_ms() >= request.until_ms()) break;
    if (static_cast<size_t>(response->events_size()) == limit) {
      more = true;
      break;
    }
    *response->add_events() = event;
  }
  const uint64_t last =
      response->events().empty() ? after : response->events(response->events_size() - 1).seq();
  if (request.until_ms() == 0 || more) response->set_next_page_token(absl::StrCat(last));
  return !response->events().empty();
}

grpc::Status FakeFarm::ListEvents(const farm::v1::ListEventsRequest& request,
                                  farm::v1::ListEventsResponse* response) {
  absl::MutexLock lock(&mu_);
  list_events_requests_.push_back(request);
  if (list_events_to_fail_ > 0) {
    --list_events_to_fail_;
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "injected failure");
  }
  if (EventsPageLocked(request, response) || request.wait_ms() <= 0) return grpc::Status::OK;
  // The live end: hold the call until a matching event arrives, the wait ends, or shutdown.
  ++held_list_events_;
  const auto ready = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return shutting_down_ || EventsPageLocked(request, response);
  };
  mu_.AwaitWithTimeout(absl::Condition(&ready),
                       absl::Milliseconds(std::min<int64_t>(request.wait_ms(), 60'000)));
  --held_list_events_;
  EventsPageLocked(request, response);
  return grpc::Status::OK;
}

}  // namespace farm::testing
