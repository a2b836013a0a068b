#include "coordinator/service/call_caps.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace farm::coordinator {

CallCap::CallCap(std::string what, std::string flag, int max)
    : what_(std::move(what)), flag_(std::move(flag)), max_(max) {}

CallCap::Slot::Slot(Slot&& other) noexcept
    : cap_(std::exchange(other.cap_, nullptr)), identity_(std::move(other.identity_)) {}

CallCap::Slot& CallCap::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    Reset();
    cap_ = std::exchange(other.cap_, nullptr);
    identity_ = std::move(other.identity_);
  }
  return *this;
}

void CallCap::Slot::Reset() {
  if (cap_ == nullptr) return;
  std::exchange(cap_, nullptr)->Release(identity_);
}

absl::StatusOr<CallCap::Slot> CallCap::Acquire(absl::string_view identity) {
  {
    absl::MutexLock lock(&mu_);
    int& open = open_[identity];
    if (open < max_) {
      ++open;
      ++total_;
      return Slot(this, std::string(identity));
    }
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      identity, " already holds ", max_, " open ", what_, ", the most one caller may (", flag_, "=",
      max_, "): close some first, or raise ", flag_, " on the coordinator"));
}

void CallCap::Release(const std::string& identity) {
  absl::MutexLock lock(&mu_);
  auto it = open_.find(identity);
  // A slot is given back once, to the cap that handed it out: anything else is a broken
  // invariant, and the count would drift.
  FARM_CHECK(it != open_.end() && it->second > 0)
      << what_ << ": a slot of " << identity << " was given back twice";
  if (--it->second == 0) open_.erase(it);
  --total_;
}

int CallCap::open(absl::string_view identity) const {
  absl::MutexLock lock(&mu_);
  auto it = open_.find(identity);
  return it == open_.end() ? 0 : it->second;
}

int CallCap::total() const {
  absl::MutexLock lock(&mu_);
  return total_;
}

std::string CapIdentity(const Authenticator& auth, const grpc::ServerContextBase& ctx) {
  absl::StatusOr<Principal> caller = auth.CallerOf(ctx);
  // Without authentication every caller is the nameless admin: count by connection instead.
  if (!caller.ok() || caller->name.empty()) return absl::StrCat("connection ", ctx.peer());
  return absl::StrCat(RoleName(caller->role), " ", caller->name);
}

}  // namespace farm::coordinator
