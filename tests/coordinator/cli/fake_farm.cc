#include "tests/coordinator/cli/fake_farm.h"

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace farm::testing {
namespace {

bool Ended(farm::v1::JobState state) {
  return state == farm::v1::SUCCEEDED || state == farm::v1::FAILED || state == farm::v1::CANCELLED;
}

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

}  // namespace

class FakeFarm::JobServiceImpl final : public farm::v1::JobService::Service {
 public:
  explicit JobServiceImpl(FakeFarm* farm) : farm_(farm) {}
  grpc::Status Submit(grpc::ServerContext*, const farm::v1::SubmitJobRequest* request,
                      farm::v1::SubmitJobResponse* response) override {
    return farm_->Submit(*request, response);
  }
  grpc::Status Get(grpc::ServerContext*, const farm::v1::GetJobRequest* request,
                   farm::v1::Job* response) override {
    return farm_->Get(*request, response);
  }
  grpc::Status List(grpc::ServerContext*, const farm::v1::ListJobsRequest* request,
                    farm::v1::ListJobsResponse* response) override {
    return farm_->List(*request, response);
  }
  grpc::Status Cancel(grpc::ServerContext*, const farm::v1::CancelJobRequest* request,
                      farm::v1::CancelJobResponse* response) override {
    return farm_->Cancel(*request, response);
  }
  grpc::Status WatchLogs(grpc::ServerContext* context, const farm::v1::WatchLogsRequest* request,
                         grpc::ServerWriter<farm::v1::WatchLogsResponse>* writer) override {
    return farm_->WatchLogs(context, *request, writer);
  }

 private:
  FakeFarm* farm_;
};

class FakeFarm::AdminServiceImpl final : public farm::v1::AdminService::Service {
 public:
  explicit AdminServiceImpl(FakeFarm* farm) : farm_(farm) {}
  grpc::Status ListAgents(grpc::ServerContext*, const farm::v1::ListAgentsRequest*,
                          farm::v1::ListAgentsResponse* response) override {
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
  if (job.id().empty()) job.set_id(absl::StrCat(next_id_++));
  if (job.seq() == 0) job.set_seq(next_seq_++);
  const std::string id = job.id();
  jobs_[id].job = std::move(job);
  return id;
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

grpc::Status FakeFarm::ListAgents(farm::v1::ListAgentsResponse* response) {
  absl::MutexLock lock(&mu_);
  *response = agents_;
  return grpc::Status::OK;
}

}  // namespace farm::testing
