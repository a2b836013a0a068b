// An in-process fake of the coordinator's JobService and AdminService for farmctl's tests: a
// real gRPC server on 127.0.0.1:0 whose jobs, pipelines, logs and failures the test scripts.
// Only the behaviour farmctl observes is modelled (ids, states, log chunks with offsets,
// final_state, request_id deduplication, a pipeline's jobs and its state derived from theirs);
// there is no scheduler: a pipeline's jobs change state only when the test says so.
//
// Thread-safe: tests change the state from their own thread while farmctl calls in.
#pragma once

#include <grpcpp/server.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "farm/v1/farm.grpc.pb.h"

namespace farm::testing {

class FakeFarm {
 public:
  // Starts serving on `listen` (port 0: a free one), with `extra_services` (e.g. a fake CAS,
  // which farmctl reaches on the coordinator's address) on the same server; they are not owned
  // and must outlive this object. A fixed `listen` is for a restart on the address a previous
  // FakeFarm had. FARM_CHECKs that the server started.
  explicit FakeFarm(const std::vector<grpc::Service*>& extra_services = {},
                    const std::string& listen = "127.0.0.1:0");
  ~FakeFarm();

  // "127.0.0.1:PORT".
  const std::string& address() const { return address_; }

  // Stops serving; open WatchLogs streams end with UNAVAILABLE. Idempotent.
  void Shutdown();

  // Adds a job as if submitted (id assigned when empty: "1", "2", ...). Returns its id.
  std::string AddJob(farm::v1::Job job);
  std::optional<farm::v1::Job> GetJob(const std::string& id) const;
  // Sets the state (and reason); an ended state ends the job's log streams with it as
  // final_state.
  void SetState(const std::string& id, farm::v1::JobState state, const std::string& reason = "");
  // Appends output to a step of an attempt; offsets follow from what was appended before.
  void AppendLog(const std::string& id, uint32_t attempt, uint32_t step_index,
                 const std::string& step, const std::string& data);

  // Runs (outside the lock) after every Submit that made a new job, e.g. to script its run.
  void OnSubmit(std::function<void(FakeFarm&, const std::string& id)> hook);
  // The next `count` Submit or SubmitPipeline calls fail with `code` before doing anything.
  void FailNextSubmits(int count, grpc::StatusCode code);

  // Pipelines. SubmitPipeline expands the spec (common::ExpandPipeline) into one job per
  // expansion, QUEUED, or WAITING when it needs others; ids "p1", "p2", ... A pipeline's view
  // (GetPipeline, ListPipelines, CancelPipeline) is derived from its jobs as the coordinator
  // derives it: change them with SetState and AddAttempt.
  // Adds a pipeline of jobs named `names` (each needing the one before it when `chain`), all
  // QUEUED; returns its id.
  std::string AddPipeline(const std::string& name, const std::vector<std::string>& names,
                          bool chain = false);
  std::optional<farm::v1::Pipeline> GetPipeline(const std::string& id) const;
  // The id of the job called `job_name` in pipeline `id`.
  std::string PipelineJobId(const std::string& id, const std::string& job_name) const;
  // Records one more attempt of a job.
  void AddAttempt(const std::string& job_id);
  // Cancels a pipeline as CancelPipeline does: its queued and waiting jobs end CANCELLED, its
  // running ones are marked cancel_requested.
  void CancelPipelineNow(const std::string& id);
  std::vector<farm::v1::SubmitPipelineRequest> submit_pipeline_requests() const;
  // How many GetPipeline calls have been answered; waits until at least `count` have.
  int get_pipeline_calls() const;
  bool AwaitGetPipelineCalls(int count, absl::Duration timeout) const;
  // How many calls of any RPC the fake has received.
  int calls() const;
  // The next `count` WatchLogs calls end with UNAVAILABLE after sending `after_messages`
  // messages, as if the coordinator died.
  void BreakNextWatches(int count, int after_messages);
  void SetAgents(farm::v1::ListAgentsResponse agents);

  // What farmctl sent.
  std::vector<farm::v1::SubmitJobRequest> submit_requests() const;
  std::vector<farm::v1::WatchLogsRequest> watch_requests() const;
  std::vector<farm::v1::ListJobsRequest> list_requests() const;

  // Waits until `count` WatchLogs calls are open at the same time; false on timeout.
  bool AwaitOpenWatches(int count, absl::Duration timeout) const;

  // The event history (fake_farm_events.cc). ListEvents answers from the events added here as
  // the coordinator does: oldest first, filtered by job and [since_ms, until_ms), in pages of
  // `limit` (0: 1000) with the last event's seq as the page token; next_page_token is empty once
  // nothing before until_ms is left, else set (also at the live end). A call that finds nothing
  // new with wait_ms set is held until a matching event is added or wait_ms passes.
  // Adds an event (seq assigned: 1, 2, ...) and wakes held ListEvents calls. Returns its seq.
  uint64_t AddEvent(farm::v1::Event event);
  std::vector<farm::v1::ListEventsRequest> list_events_requests() const;
  // How many ListEvents calls are being held at the live end right now; waits for `count`.
  bool AwaitHeldListEvents(int count, absl::Duration timeout) const;
  // Waits until `count` ListEvents calls have been received (refused ones too).
  bool AwaitListEventsCalls(size_t count, absl::Duration timeout) const;
  // The next `count` ListEvents calls fail with UNAVAILABLE before doing anything.
  void FailNextListEvents(int count);

 private:
  class JobServiceImpl;
  class AdminServiceImpl;

  struct JobRecord {
    farm::v1::Job job;
    std::vector<farm::v1::LogChunk> chunks;
  };

  grpc::Status Submit(const farm::v1::SubmitJobRequest& request,
                      farm::v1::SubmitJobResponse* response);
  grpc::Status Get(const farm::v1::GetJobRequest& request, farm::v1::Job* response);
  grpc::Status List(const farm::v1::ListJobsRequest& request, farm::v1::ListJobsResponse* response);
  grpc::Status Cancel(const farm::v1::CancelJobRequest& request,
                      farm::v1::CancelJobResponse* response);
  grpc::Status WatchLogs(grpc::ServerContext* context, const farm::v1::WatchLogsRequest& request,
                         grpc::ServerWriter<farm::v1::WatchLogsResponse>* writer);
  grpc::Status ListAgents(farm::v1::ListAgentsResponse* response);
  grpc::Status SubmitPipeline(const farm::v1::SubmitPipelineRequest& request,
                              farm::v1::SubmitPipelineResponse* response);
  grpc::Status GetPipeline(const farm::v1::GetPipelineRequest& request,
                           farm::v1::Pipeline* response);
  grpc::Status ListPipelines(const farm::v1::ListPipelinesRequest& request,
                             farm::v1::ListPipelinesResponse* response);
  grpc::Status CancelPipeline(const farm::v1::CancelPipelineRequest& request,
                              farm::v1::Pipeline* response);
  grpc::Status ListEvents(const farm::v1::ListEventsRequest& request,
                          farm::v1::ListEventsResponse* response);
  // The page of `request` from events_ (under mu_); whether it has any event.
  bool EventsPageLocked(const farm::v1::ListEventsRequest& request,
                        farm::v1::ListEventsResponse* response) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);

  // Adds a job of a pipeline (under mu_); returns its id.
  std::string AddJobLocked(farm::v1::Job job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The pipeline as GetPipeline answers it: its jobs' states and times, its own derived state.
  farm::v1::Pipeline ViewLocked(const farm::v1::Pipeline& stored) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  void CountCall() ABSL_LOCKS_EXCLUDED(mu_);

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, JobRecord> jobs_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::string> job_by_request_id_ ABSL_GUARDED_BY(mu_);
  int next_id_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
  std::function<void(FakeFarm&, const std::string&)> on_submit_ ABSL_GUARDED_BY(mu_);
  int submits_to_fail_ ABSL_GUARDED_BY(mu_) = 0;
  grpc::StatusCode submit_failure_ ABSL_GUARDED_BY(mu_) = grpc::StatusCode::UNAVAILABLE;
  int watches_to_break_ ABSL_GUARDED_BY(mu_) = 0;
  int break_after_messages_ ABSL_GUARDED_BY(mu_) = 0;
  int open_watches_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  farm::v1::ListAgentsResponse agents_ ABSL_GUARDED_BY(mu_);
  std::vector<farm::v1::SubmitJobRequest> submit_requests_ ABSL_GUARDED_BY(mu_);
  std::vector<farm::v1::WatchLogsRequest> watch_requests_ ABSL_GUARDED_BY(mu_);
  std::vector<farm::v1::ListJobsRequest> list_requests_ ABSL_GUARDED_BY(mu_);
  // Pipelines as stored (jobs' names, ids, needs, input dirs), by id; ordered by seq in
  // pipeline_order_.
  absl::flat_hash_map<std::string, farm::v1::Pipeline> pipelines_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> pipeline_order_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::string> pipeline_by_request_id_ ABSL_GUARDED_BY(mu_);
  std::vector<farm::v1::SubmitPipelineRequest> submit_pipeline_requests_ ABSL_GUARDED_BY(mu_);
  int get_pipeline_calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<farm::v1::Event> events_ ABSL_GUARDED_BY(mu_);  // in seq order
  std::vector<farm::v1::ListEventsRequest> list_events_requests_ ABSL_GUARDED_BY(mu_);
  int held_list_events_ ABSL_GUARDED_BY(mu_) = 0;
  int list_events_to_fail_ ABSL_GUARDED_BY(mu_) = 0;
  int calls_ ABSL_GUARDED_BY(mu_) = 0;

  std::unique_ptr<JobServiceImpl> job_service_;
  std::unique_ptr<AdminServiceImpl> admin_service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

}  // namespace farm::testing
