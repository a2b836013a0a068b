#include "coordinator/logs/follower_hub.h"

#include <vector>

namespace farm::coordinator {

void FollowerHub::Subscribe(uint64_t seq, std::shared_ptr<Watcher> watcher) {
  {
    absl::MutexLock lock(&mu_);
    if (!shut_down_) {
      const Watcher* key = watcher.get();
      watchers_[seq][key] = std::move(watcher);
      return;
    }
  }
  watcher->OnShutdown();
}

void FollowerHub::Unsubscribe(uint64_t seq, const Watcher* watcher) {
  absl::MutexLock lock(&mu_);
  auto it = watchers_.find(seq);
  if (it == watchers_.end()) return;
  it->second.erase(watcher);
  if (it->second.empty()) watchers_.erase(it);
}

void FollowerHub::Notify(uint64_t seq) {
  std::vector<std::shared_ptr<Watcher>> targets;
  {
    absl::MutexLock lock(&mu_);
    auto it = watchers_.find(seq);
    if (it == watchers_.end()) return;
    targets.reserve(it->second.size());
    for (const auto& [key, w] : it->second) targets.push_back(w);
  }
  for (const auto& w : targets) w->OnChanged();
}

void FollowerHub::Shutdown() {
  std::vector<std::shared_ptr<Watcher>> targets;
  {
    absl::MutexLock lock(&mu_);
    shut_down_ = true;
    for (const auto& [seq, set] : watchers_) {
      for (const auto& [key, w] : set) targets.push_back(w);
    }
  }
  for (const auto& w : targets) w->OnShutdown();
}

}  // namespace farm::coordinator
