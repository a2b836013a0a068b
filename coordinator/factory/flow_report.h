// The factory report: the value stream of the farm, of each label pool and of each pipeline over
// a window, computed from the event history alone (plus what is known now: the agents, and how
// many jobs are open). What `farmctl factory` prints.
//
//   FlowReportBuilder b(inputs);
//   for (each event from ScanStart(since, until) to until, in order) b.Add(event);
//   farm::v1::FactoryReport report = b.Finish();
//
// The events are read from one window before `since` (at most 7 days), so that the jobs that
// were submitted before the window and ended in it have their submit, queue and lease times.
// What each figure means is documented on farm::v1::FlowFigures; in short:
//   - arrivals: submits in the window; completions: job ends in it (per hour: / window hours);
//   - WIP: jobs submitted and not ended; averaged over the window, and at its end;
//   - queue wait per lease, run per attempt, lead time per job ended (p50, p95, mean);
//   - flow efficiency: run time / lead time of the jobs that ended;
//   - utilisation of a pool: slot-seconds its jobs ran / slot-seconds of the agents that can run
//     them, online (from their events) and known now (their labels and slots);
//   - first-pass yield, re-runs by cause, flaky steps (one fingerprint both passed and failed);
//   - the bottleneck (highest utilisation, then longest p95 wait) and M/M/c capacity advice;
//   - Little's law (WIP = throughput x lead time) checked within 10%.
// A job open through the whole scan without any event is invisible to it: the farm's WIP is
// corrected with the exact count of open jobs when the window ends now and nothing is filtered;
// a pool's or a pipeline's WIP is not (the report notes it).
//
// Not thread-safe; one builder per report.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/strings/string_view.h"
#include "coordinator/scheduler/label_sets.h"
#include "farm/v1/farm.pb.h"

namespace farm::coordinator::factory {

using coordinator::Labels;

// How far before `since` the events are read: the window's length, at most 7 days.
int64_t ScanStart(int64_t since_ms, int64_t until_ms);

struct FlowInputs {
  farm::v1::FactoryReportRequest request;  // since_ms and until_ms set (until > since)
  // Jobs open now (waiting, queued or running), when the window ends now; nullopt otherwise.
  std::optional<int64_t> open_now;
  struct Agent {
    std::string name;
    Labels labels;
    int slots = 0;
    bool online = false;  // now: neither offline nor draining (it takes work)
  };
  std::vector<Agent> agents;                                      // known now
  std::function<Labels(uint64_t labelset)> labels_of;             // a label set's labels
  std::function<std::string(const std::string& id)> pipeline_of;  // a pipeline's name
  // Scopes whose figures target_figures() gives after Finish, in this order, whatever the
  // request's filters (each target is its own filter).
  std::vector<farm::v1::FactoryTarget> targets;
};

class FlowReportBuilder {
 public:
  explicit FlowReportBuilder(FlowInputs inputs);

  // The next event (oldest first) from ScanStart to until_ms.
  void Add(const farm::v1::Event& event);
  farm::v1::FactoryReport Finish();

  // After Finish: the figures of each of FlowInputs::targets.
  const std::vector<farm::v1::FlowFigures>& target_figures() const { return target_figures_; }
  // The ids of at most `limit` jobs that passed the filters and ended in the window, the last
  // to end first; `*total` says how many there were.
  std::vector<std::string> EndedJobs(size_t limit, size_t* total);

 private:
  struct Attempt {
    int64_t queued = -1;  // when it became ready (before its lease)
    int64_t leased = -1;
    int64_t ended = -1;
    farm::v1::AttemptOutcome outcome = farm::v1::ATTEMPT_OUTCOME_UNSPECIFIED;
    uint32_t number = 0;
    farm::v1::AttemptOutcome previous = farm::v1::ATTEMPT_OUTCOME_UNSPECIFIED;  // the one before
  };
  // One job as its events tell it. Kept small (about 100 bytes): a report over a day of a
  // busy farm holds a few hundred thousand.
  struct Job {
    uint64_t labelset = 0;
    uint32_t pipeline = 0;   // its pipeline's id in pipeline_ids_ (0: none)
    uint32_t name = 0;       // its name in names_ (0: not known yet)
    int64_t first_seen = 0;  // its first event in the scan
    int64_t submitted = -1;
    int64_t queued = -1;  // the last JOB_QUEUED not yet leased
    int64_t ended = -1;
    farm::v1::JobState state = farm::v1::JOB_STATE_UNSPECIFIED;
    uint32_t last_attempt = 0;
    bool retried = false;  // an operator ran it again in the window
    farm::v1::AttemptOutcome last_outcome = farm::v1::ATTEMPT_OUTCOME_UNSPECIFIED;
    absl::InlinedVector<Attempt, 1> attempts;
  };
  // A step definition (by fingerprint) and its verdicts in the window.
  struct Step {
    uint32_t job_name = 0;  // in names_
    std::string step;
    uint64_t job = 0;  // the first job it ran in: its scopes are the step's
    int64_t passed = 0;
    int64_t failed = 0;
  };
  // An agent's online time in the window, from its events.
  struct AgentTrack {
    bool seen = false;
    bool online = false;
    int64_t since = 0;
    int64_t online_ms = 0;  // within [since, until)
  };

  void AddJobEvent(const farm::v1::Event& e);
  void AddAgentEvent(const farm::v1::Event& e);

  // Finish's parts (flow_figures.cc).
  struct Scopes;  // what the farm, each pool and each pipeline add up
  struct Capacity {
    int64_t slot_ms = 0;  // slot-milliseconds online in the window
    int slots = 0;        // online now
    int agents = 0;
  };
  const Labels& LabelsOf(uint64_t labelset);
  const std::string& PipelineOf(const std::string& id);
  bool Wanted(const Job& job);  // passes the request's filters
  void AddJob(const Job& job, Scopes& scopes);
  // The agents known now that can run jobs requiring `required` (all agents: null).
  Capacity CapacityFor(const Labels* required) const;
  void AddTargets(const Job& job, Scopes& scopes);
  void AddStage(const Job& job, Scopes& scopes);
  void AddPools(Scopes& scopes, farm::v1::FactoryReport& report);
  void AddStages(Scopes& scopes, farm::v1::FactoryReport& report);
  void AddFlakySteps(farm::v1::FactoryReport& report);

  FlowInputs in_;
  int64_t since_;
  int64_t until_;
  const Labels filter_;  // the request's --labels: jobs whose labels include them
  int64_t events_ = 0;
  // Strings many jobs share, each kept once: [0] is "".
  static uint32_t Intern(std::vector<std::string>& table,
                         absl::flat_hash_map<std::string, uint32_t>& index, absl::string_view text);
  std::vector<std::string> names_{""};
  absl::flat_hash_map<std::string, uint32_t> name_index_;
  std::vector<std::string> pipeline_ids_{""};
  absl::flat_hash_map<std::string, uint32_t> pipeline_index_;
  absl::flat_hash_map<uint64_t, Job> jobs_;       // by job seq
  absl::flat_hash_map<std::string, Step> steps_;  // by fingerprint
  absl::flat_hash_map<std::string, AgentTrack> agents_;
  absl::flat_hash_map<uint64_t, Labels> labels_;
  absl::flat_hash_map<std::string, std::string> pipelines_;
  std::vector<Labels> target_labels_;  // of in_.targets
  std::vector<farm::v1::FlowFigures> target_figures_;
};

}  // namespace farm::coordinator::factory
