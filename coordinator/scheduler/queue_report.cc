#include "coordinator/scheduler/queue_report.h"

#include <algorithm>

#include "common/status_macros.h"
#include "coordinator/scheduler/job_records.h"
#include "coordinator/store/keys.h"

namespace farm::coordinator {
namespace {

struct SetTally {
  int64_t depth = 0;
  std::vector<uint64_t> candidates;  // jobs that may be the earliest submitted
  int32_t last_priority = 0;
  bool new_seen = false;  // the current priority class's first new job was taken
};

}  // namespace

absl::StatusOr<farm::v1::ListQueuesResponse> BuildQueueReport(Store* store,
                                                              const QueueSnapshot& snapshot) {
  // Within a priority class new jobs are in submit order, after the requeued ones (in order of
  // their lost lease): the earliest submit is the class's first new job or a requeued one.
  std::map<uint64_t, SetTally> tallies;
  FARM_RETURN_IF_ERROR(
      store->Scan(Cf::kQueue, "", "", [&](absl::string_view key, absl::string_view value) {
        if (key.size() != 20 || value.size() != 8) return true;
        const keys::QueueKey k = keys::QueueKey::Decode(key);
        SetTally& t = tallies[k.labelset];
        if (t.depth++ == 0 || k.priority != t.last_priority) t.new_seen = false;
        t.last_priority = k.priority;
        const bool is_new = k.pos >= keys::NewJobPosition(0);
        if (!is_new || !t.new_seen) t.candidates.push_back(keys::ReadU64(value, 0));
        t.new_seen |= is_new;
        return true;
      }));
  farm::v1::ListQueuesResponse resp;
  resp.set_now_ms(snapshot.now_ms);
  for (const auto& [id, labels] : snapshot.sets) {
    auto tally = tallies.find(id);
    auto paused = snapshot.paused.find(id);
    const bool is_paused = paused != snapshot.paused.end() && paused->second;
    if (tally == tallies.end() && !is_paused) continue;
    farm::v1::QueueInfo* info = resp.add_queues();
    info->mutable_labels()->insert(labels.begin(), labels.end());
    info->set_labelset(id);
    info->set_paused(is_paused);
    int32_t agents = 0;
    for (const Labels& agent : snapshot.agents) agents += LabelsMatch(agent, labels) ? 1 : 0;
    info->set_agents(agents);
    if (tally == tallies.end()) continue;
    info->set_depth(tally->second.depth);
    int64_t oldest = 0;
    for (uint64_t seq : tally->second.candidates) {
      FARM_ASSIGN_OR_RETURN(std::optional<farm::v1::Job> job, jobs::Read(store, seq));
      if (!job.has_value() || job->state() != farm::v1::QUEUED) continue;
      if (oldest == 0 || job->submitted_ms() < oldest) oldest = job->submitted_ms();
    }
    info->set_oldest_submitted_ms(oldest);
  }
  std::sort(resp.mutable_queues()->begin(), resp.mutable_queues()->end(),
            [](const farm::v1::QueueInfo& a, const farm::v1::QueueInfo& b) {
              return keys::CanonicalLabels({a.labels().begin(), a.labels().end()}) <
                     keys::CanonicalLabels({b.labels().begin(), b.labels().end()});
            });
  for (const auto& [selector, since] : snapshot.pauses) {
    farm::v1::QueuePause* p = resp.add_pauses();
    p->mutable_labels()->insert(selector.begin(), selector.end());
    p->set_paused_ms(since);
  }
  return resp;
}

}  // namespace farm::coordinator
