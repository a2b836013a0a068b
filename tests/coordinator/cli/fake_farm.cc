#include "tests/coordinator/cli/fake_farm.h"

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/job_state.h"
#include "common/logging.h"
#include "common/pipeline.h"

namespace farm::testing {
namespace {

bool Ended(farm::v1::JobState state) { return common::IsTerminal(state); }

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

}  // namespace

class FakeFarm::JobServiceImpl final : public farm::v1::JobService::Service {
 public:
  explicit JobServiceImpl(FakeFarm* farm) : farm_(farm) {}
  grpc::Status Submit(grpc::ServerContext*, const farm::v1::SubmitJobRequest* request,
                      farm::v1::SubmitJobResponse* response) override {
    farm_->CountCall();
    return farm_->Submit(*request, response);
  }
  grpc::Status Get(grpc::ServerContext*, const farm::v1::GetJobRequest* request,
                   farm::v1::Job* response) override {
    farm_->CountCall();
    return farm_->Get(*request, response);
  }
  grpc::Status List(grpc::ServerContext*, const farm::v1::ListJobsRequest* request,
                    farm::v1::ListJobsResponse* response) override {
    farm_->CountCall();
    return farm_->List(*request, response);
  }
  grpc::Status Cancel(grpc::ServerContext*, const farm::v1::CancelJobRequest* request,
                      farm::v1::CancelJobResponse* response) override {
    farm_->CountCall();
    return farm_->Cancel(*request, response);
  }
  grpc::Status WatchLogs(grpc::ServerContext* context, const farm::v1::WatchLogsRequest* request,
                         grpc::ServerWriter<farm::v1::WatchLogsResponse>* writer) override {
    farm_->CountCall();
    return farm_->WatchLogs(context, *request, writer);
  }
  grpc::Status SubmitPipeline(grpc::ServerContext*, const farm::v1::SubmitPipelineRequest* request,
                              farm::v1::SubmitPipelineResponse* response) override {
    farm_->CountCall();
    return farm_->SubmitPipeline(*request, response);
  }
  grpc::Status GetPipeline(grpc::ServerContext*, const farm::v1::GetPipelineRequest* request,
                           farm::v1::Pipeline* response) override {
    farm_->CountCall();
    return farm_->GetPipeline(*request, response);
  }
  grpc::Status ListPipelines(grpc::ServerContext*, const farm::v1::ListPipelinesRequest* request,
                             farm::v1::ListPipelinesResponse* response) override {
    farm_->CountCall();
    return farm_->ListPipelines(*request, response);
  }
  grpc::Status CancelPipeline(grpc::ServerContext*, const farm::v1::CancelPipelineRequest* request,
                              farm::v1::Pipeline* response) override {
    farm_->CountCall();
    return farm_->CancelPipeline(*request, response);
  }
  grpc::Status ListEvents(grpc::ServerContext*, const farm::v1::ListEventsRequest* request,
                          farm::v1::ListEventsResponse* response) override {
    farm_->CountCall();
    return farm_->ListEvents(*request, response);
  }

 private:
  FakeFarm* farm_;
};

class FakeFarm::AdminServiceImpl final : public farm::v1::AdminService::Service {
 public:
  explicit AdminServiceImpl(FakeFarm* farm) : farm_(farm) {}
  grpc::Status ListAgents(grpc::ServerContext*, const farm::v1::ListAgentsRequest*,
                          farm::v1::ListAgentsResponse* response) override {
    farm_->CountCall();
    return farm_->ListAgents(response);
  }

 private:
  FakeFarm* farm_;
};

FakeFarm::FakeFarm(const std::vector<grpc::Service*>& extra_services, const std::string& listen)
    : job_service_(std::make_unique<JobServiceImpl>(this)),
      admin_service_(std::make_unique<AdminServiceImpl>(this)) {
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(job_service_.get());
  builder.RegisterService(admin_service_.get());
  for (grpc::Service* service : extra_services) builder.RegisterService(service);
  server_ = builder.BuildAndStart();
  FARM_CHECK(server_ != nullptr && port > 0) << "the fake farm could not listen";
  address_ = absl::StrCat("127.0.0.1:", port);
}

FakeFarm::~FakeFarm() { Shutdown(); }

void FakeFarm::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (shutting_down_) return;
    shutting_down_ = true;
  }
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  server_->Wait();
}

std::string FakeFarm::AddJob(farm::v1::Job job) {
  absl::MutexLock lock(&mu_);
  return AddJobLocked(std::move(job));
}

std::string FakeFarm::AddJobLocked(farm::v1::Job job) {
  if (job.id().empty()) job.set_id(absl::StrCat(next_id_++));
  if (job.seq() == 0) job.set_seq(next_seq_++);
  const std::string id = job.id();
  jobs_[id].job = std::move(job);
  return id;
}

std::string FakeFarm::AddPipeline(const std::string& name, const std::vector<std::string>& names,
                                  bool chain) {
  absl::MutexLock lock(&mu_);
  farm::v1::Pipeline pipeline;
  pipeline.set_id(absl::StrCat("p", pipelines_.size() + 1));
  pipeline.set_name(name);
  pipeline.set_submitted_ms(NowMs());
  for (size_t i = 0; i < names.size(); ++i) {
    farm::v1::Job job;
    job.mutable_spec()->set_name(names[i]);
    job.set_state(farm::v1::QUEUED);
    job.set_submitted_ms(pipeline.submitted_ms());
    job.set_pipeline_id(pipeline.id());
    job.set_pipeline_job(names[i]);
    farm::v1::PipelineJob* pj = pipeline.add_jobs();
    pj->set_name(names[i]);
    pj->set_input_dir(names[i]);
    if (chain && i > 0) {
      pj->add_needs(names[i - 1]);
      job.add_needs(pipeline.jobs(static_cast<int>(i) - 1).job_id());
    }
    pj->set_job_id(AddJobLocked(std::move(job)));
  }
  pipeline_order_.push_back(pipeline.id());
  const std::string id = pipeline.id();
  pipelines_[id] = std::move(pipeline);
  return id;
}

std::optional<farm::v1::Pipeline> FakeFarm::GetPipeline(const std::string& id) const {
  absl::MutexLock lock(&mu_);
  auto it = pipelines_.find(id);
  if (it == pipelines_.end()) return std::nullopt;
  return ViewLocked(it->second);
}

std::string FakeFarm::PipelineJobId(const std::string& id, const std::string& job_name) const {
  absl::MutexLock lock(&mu_);
  for (const farm::v1::PipelineJob& job : pipelines_.at(id).jobs()) {
    if (job.name() == job_name) return job.job_id();
  }
  FARM_CHECK(false) << "pipeline " << id << " has no job " << job_name;
  return "";
}

void FakeFarm::AddAttempt(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  farm::v1::Job& job = jobs_.at(job_id).job;
  job.add_attempts()->set_number(static_cast<uint32_t>(job.attempts_size()));
}

void FakeFarm::CancelPipelineNow(const std::string& id) {
  farm::v1::CancelPipelineRequest request;
  request.set_pipeline_id(id);
  farm::v1::Pipeline ignored;
  FARM_CHECK(CancelPipeline(request, &ignored).ok()) << "no pipeline " << id;
}

farm::v1::Pipeline FakeFarm::ViewLocked(const farm::v1::Pipeline& stored) const {
  farm::v1::Pipeline p = stored;
  bool all_ended = true;
  bool all_succeeded = true;
  bool any_started = false;
  int64_t finished = 0;
  for (farm::v1::PipelineJob& pj : *p.mutable_jobs()) {
    const farm::v1::Job& job = jobs_.at(pj.job_id()).job;
    pj.set_state(job.state());
    pj.set_started_ms(job.started_ms());
    pj.set_finished_ms(job.finished_ms());
    pj.set_attempts(static_cast<uint32_t>(job.attempts_size()));
    all_ended &= Ended(job.state());
    all_succeeded &= job.state() == farm::v1::SUCCEEDED;
    any_started |=
        job.state() == farm::v1::RUNNING || job.attempts_size() > 0 || Ended(job.state());
    finished = std::max(finished, job.finished_ms());
  }
  if (all_ended) {
    p.set_state(all_succeeded          ? farm::v1::SUCCEEDED
                : p.cancel_requested() ? farm::v1::CANCELLED
                                       : farm::v1::FAILED);
    p.set_finished_ms(finished);
  } else {
    p.set_state(any_started ? farm::v1::RUNNING : farm::v1::QUEUED);
  }
  return p;
}

std::vector<farm::v1::SubmitPipelineRequest> FakeFarm::submit_pipeline_requests() const {
  absl::MutexLock lock(&mu_);
  return submit_pipeline_requests_;
}

int FakeFarm::get_pipeline_calls() const {
  absl::MutexLock lock(&mu_);
  return get_pipeline_calls_;
}

bool FakeFarm::AwaitGetPipelineCalls(int count, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto enough = [this, count]()
                    ABSL_SHARED_LOCKS_REQUIRED(mu_) { return get_pipeline_calls_ >= count; };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

int FakeFarm::calls() const {
  absl::MutexLock lock(&mu_);
  return calls_;
}

void FakeFarm::CountCall() {
  absl::MutexLock lock(&mu_);
  ++calls_;
}

std::optional<farm::v1::Job> FakeFarm::GetJob(const std::string& id) const {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return std::nullopt;
  return it->second.job;
}

void FakeFarm::SetState(const std::string& id, farm::v1::JobState state,
                        const std::string& reason) {
  absl::MutexLock lock(&mu_);
  farm::v1::Job& job = jobs_.at(id).job;
  job.set_state(state);
  job.set_reason(reason);
  if (state == farm::v1::RUNNING && job.started_ms() == 0) job.set_started_ms(NowMs());
  if (Ended(state)) job.set_finished_ms(NowMs());
}

void FakeFarm::AppendLog(const std::string& id, uint32_t attempt, uint32_t step_index,
                         const std::string& step, const std::string& data) {
  absl::MutexLock lock(&mu_);
  JobRecord& record = jobs_.at(id);
  int64_t offset = 0;
  for (const farm::v1::LogChunk& chunk : record.chunks) {
    if (chunk.attempt() == attempt && chunk.step_index() == step_index) {
      offset = chunk.offset() + static_cast<int64_t>(chunk.data().size());
    }
  }
  farm::v1::LogChunk& chunk = record.chunks.emplace_back();
  chunk.set_attempt(attempt);
  chunk.set_step_index(step_index);
  chunk.set_step(step);
  chunk.set_offset(offset);
  chunk.set_data(data);
}

void FakeFarm::OnSubmit(std::function<void(FakeFarm&, const std::string&)> hook) {
  absl::MutexLock lock(&mu_);
  on_submit_ = std::move(hook);
}

void FakeFarm::FailNextSubmits(int count, grpc::StatusCode code) {
  absl::MutexLock lock(&mu_);
  submits_to_fail_ = count;
  submit_failure_ = code;
}

void FakeFarm::BreakNextWatches(int count, int after_messages) {
  absl::MutexLock lock(&mu_);
  watches_to_break_ = count;
  break_after_messages_ = after_messages;
}

void FakeFarm::SetAgents(farm::v1::ListAgentsResponse agents) {
  absl::MutexLock lock(&mu_);
  agents_ = std::move(agents);
}

std::vector<farm::v1::SubmitJobRequest> FakeFarm::submit_requests() const {
  absl::MutexLock lock(&mu_);
  return submit_requests_;
}

std::vector<farm::v1::WatchLogsRequest> FakeFarm::watch_requests() const {
  absl::MutexLock lock(&mu_);
  return watch_requests_;
}

std::vector<farm::v1::ListJobsRequest> FakeFarm::list_requests() const {
  absl::MutexLock lock(&mu_);
  return list_requests_;
}

bool FakeFarm::AwaitOpenWatches(int count, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto enough = [this, count]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return open_watches_ >= count; };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

grpc::Status FakeFarm::Submit(const farm::v1::SubmitJobRequest& request,
                              farm::v1::SubmitJobResponse* response) {
  std::function<void(FakeFarm&, const std::string&)> hook;
  std::string id;
  {
    absl::MutexLock lock(&mu_);
    submit_requests_.push_back(request);
    if (submits_to_fail_ > 0) {
      --submits_to_fail_;
      return grpc::Status(submit_failure_, "injected failure");
    }
    if (auto it = job_by_request_id_.find(request.request_id());
        !request.request_id().empty() && it != job_by_request_id_.end()) {
      response->set_job_id(it->second);
      response->set_existing(true);
      return grpc::Status::OK;
    }
    id = absl::StrCat(next_id_++);
    farm::v1::Job& job = jobs_[id].job;
    job.set_id(id);
    *job.mutable_spec() = request.spec();
    job.set_state(farm::v1::QUEUED);
    job.set_submitted_ms(NowMs());
    job.set_request_id(request.request_id());
    job.set_seq(next_seq_++);
    job_by_request_id_[request.request_id()] = id;
    response->set_job_id(id);
    hook = on_submit_;
  }
  if (hook) hook(*this, id);
  return grpc::Status::OK;
}

grpc::Status FakeFarm::Get(const farm::v1::GetJobRequest& request, farm::v1::Job* response) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(request.job_id());
  if (it == jobs_.end()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "no job " + request.job_id());
  }
  *response = it->second.job;
  return grpc::Status::OK;
}

grpc::Status FakeFarm::List(const farm::v1::ListJobsRequest& request,
                            farm::v1::ListJobsResponse* response) {
  absl::MutexLock lock(&mu_);
  list_requests_.push_back(request);
  std::vector<const farm::v1::Job*> jobs;
  for (const auto& [id, record] : jobs_) {
    if (request.state() == farm::v1::JOB_STATE_UNSPECIFIED ||
        record.job.state() == request.state()) {
      jobs.push_back(&record.job);
    }
  }
  std::sort(jobs.begin(), jobs.end(),
            [](const auto* a, const auto* b) { return a->seq() > b->seq(); });
  const size_t limit = request.limit() == 0 ? 50 : static_cast<size_t>(request.limit());
  for (size_t i = 0; i < jobs.size() && i < limit; ++i) *response->add_jobs() = *jobs[i];
  return grpc::Status::OK;
}

grpc::Status FakeFarm::Cancel(const farm::v1::CancelJobRequest& request,
                              farm::v1::CancelJobResponse* response) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(request.job_id());
  if (it == jobs_.end()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "no job " + request.job_id());
  }
  farm::v1::Job& job = it->second.job;
  if (job.state() == farm::v1::QUEUED) {
    job.set_state(farm::v1::CANCELLED);
    job.set_reason("cancelled by user");
    job.set_finished_ms(NowMs());
  } else if (!Ended(job.state())) {
    job.set_cancel_requested(true);
  }
  *response->mutable_job() = job;
  return grpc::Status::OK;
}

grpc::Status FakeFarm::WatchLogs(grpc::ServerContext* context,
                                 const farm::v1::WatchLogsRequest& request,
                                 grpc::ServerWriter<farm::v1::WatchLogsResponse>* writer) {
  absl::MutexLock lock(&mu_);
  watch_requests_.push_back(request);
  if (!jobs_.contains(request.job_id())) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "no job " + request.job_id());
  }
  int break_after = -1;
  if (watches_to_break_ > 0) {
    --watches_to_break_;
    break_after = break_after_messages_;
  }
  ++open_watches_;
  size_t next = 0;  // index into the job's chunks
  int messages = 0;
  grpc::Status result;
  for (;;) {
    const JobRecord& record = jobs_.at(request.job_id());
    if (next < record.chunks.size()) {
      const farm::v1::LogChunk chunk = record.chunks[next++];
      if (!request.step().empty() && chunk.step() != request.step()) continue;
      if (messages == break_after) {
        result = grpc::Status(grpc::StatusCode::UNAVAILABLE, "injected: connection reset");
        break;
      }
      farm::v1::WatchLogsResponse response;
      *response.add_chunks() = chunk;
      mu_.Unlock();
      const bool written = writer->Write(response);
      mu_.Lock();
      if (!written) {
        result = grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
        break;
      }
      ++messages;
      continue;
    }
    if (Ended(record.job.state())) {
      farm::v1::WatchLogsResponse response;
      response.set_final_state(record.job.state());
      mu_.Unlock();
      writer->Write(response);
      mu_.Lock();
      break;
    }
    if (!request.follow()) break;
    if (shutting_down_) {
      result = grpc::Status(grpc::StatusCode::UNAVAILABLE, "shutting down");
      break;
    }
    if (context->IsCancelled()) {
      result = grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
      break;
    }
    // A sync handler cannot be woken by a cancellation, so it looks again every few ms.
    const std::string id = request.job_id();
    auto changed = [this, &id, next]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      const JobRecord& r = jobs_.at(id);
      return shutting_down_ || next < r.chunks.size() || Ended(r.job.state());
    };
    mu_.AwaitWithTimeout(absl::Condition(&changed), absl::Milliseconds(20));
  }
  --open_watches_;
  return result;
}

grpc::Status FakeFarm::SubmitPipeline(const farm::v1::SubmitPipelineRequest& request,
                                      farm::v1::SubmitPipelineResponse* response) {
  absl::MutexLock lock(&mu_);
  submit_pipeline_requests_.push_back(request);
  if (submits_to_fail_ > 0) {
    --submits_to_fail_;
    return grpc::Status(submit_failure_, "injected failure");
  }
  if (auto it = pipeline_by_request_id_.find(request.request_id());
      !request.request_id().empty() && it != pipeline_by_request_id_.end()) {
    *response->mutable_pipeline() = ViewLocked(pipelines_.at(it->second));
    response->set_existing(true);
    return grpc::Status::OK;
  }
  absl::StatusOr<std::vector<common::ExpandedJob>> expanded =
      common::ExpandPipeline(request.spec());
  if (!expanded.ok()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        std::string(expanded.status().message()));
  }
  farm::v1::Pipeline pipeline;
  pipeline.set_id(absl::StrCat("p", pipelines_.size() + 1));
  pipeline.set_name(request.spec().name());
  pipeline.set_submitted_ms(NowMs());
  pipeline.set_request_id(request.request_id());
  std::vector<std::string> ids;
  for (const common::ExpandedJob& e : *expanded) {
    farm::v1::Job job;
    *job.mutable_spec() = e.spec;
    job.set_state(e.needs.empty() ? farm::v1::QUEUED : farm::v1::WAITING);
    job.set_submitted_ms(pipeline.submitted_ms());
    job.set_pipeline_id(pipeline.id());
    job.set_pipeline_job(e.spec.name());
    farm::v1::PipelineJob* pj = pipeline.add_jobs();
    pj->set_name(e.spec.name());
    pj->set_input_dir(e.input_dir);
    for (int need : e.needs) {
      job.add_needs(ids[static_cast<size_t>(need)]);
      pj->add_needs((*expanded)[static_cast<size_t>(need)].spec.name());
    }
    ids.push_back(AddJobLocked(std::move(job)));
    pj->set_job_id(ids.back());
  }
  const std::string id = pipeline.id();
  pipeline_order_.push_back(id);
  pipeline_by_request_id_[request.request_id()] = id;
  pipelines_[id] = std::move(pipeline);
  *response->mutable_pipeline() = ViewLocked(pipelines_.at(id));
  return grpc::Status::OK;
}

grpc::Status FakeFarm::GetPipeline(const farm::v1::GetPipelineRequest& request,
                                   farm::v1::Pipeline* response) {
  absl::MutexLock lock(&mu_);
  ++get_pipeline_calls_;
  auto it = pipelines_.find(request.pipeline_id());
  if (it == pipelines_.end()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "no pipeline " + request.pipeline_id());
  }
  *response = ViewLocked(it->second);
  return grpc::Status::OK;
}

grpc::Status FakeFarm::ListPipelines(const farm::v1::ListPipelinesRequest& request,
                                     farm::v1::ListPipelinesResponse* response) {
  absl::MutexLock lock(&mu_);
  const size_t limit = request.limit() == 0 ? 50 : static_cast<size_t>(request.limit());
  for (auto it = pipeline_order_.rbegin();
       it != pipeline_order_.rend() && static_cast<size_t>(response->pipelines_size()) < limit;
       ++it) {
    *response->add_pipelines() = ViewLocked(pipelines_.at(*it));
  }
  return grpc::Status::OK;
}

grpc::Status FakeFarm::CancelPipeline(const farm::v1::CancelPipelineRequest& request,
                                      farm::v1::Pipeline* response) {
  absl::MutexLock lock(&mu_);
  auto it = pipelines_.find(request.pipeline_id());
  if (it == pipelines_.end()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "no pipeline " + request.pipeline_id());
  }
  it->second.set_cancel_requested(true);
  for (const farm::v1::PipelineJob& pj : it->second.jobs()) {
    farm::v1::Job& job = jobs_.at(pj.job_id()).job;
    if (job.state() == farm::v1::QUEUED || job.state() == farm::v1::WAITING) {
      job.set_state(farm::v1::CANCELLED);
      job.set_reason("cancelled by user");
      job.set_finished_ms(NowMs());
    } else if (!Ended(job.state())) {
      job.set_cancel_requested(true);
    }
  }
  *response = ViewLocked(it->second);
  return grpc::Status::OK;
}

grpc::Status FakeFarm::ListAgents(farm::v1::ListAgentsResponse* response) {
  absl::MutexLock lock(&mu_);
  *response = agents_;
  return grpc::Status::OK;
}

}  // namespace farm::testing
