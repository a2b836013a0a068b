#include "coordinator/scheduler/job_reads.h"

#include <functional>
#include <map>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/text.h"
#include "coordinator/scheduler/job_records.h"
#include "coordinator/scheduler/pipeline_graph.h"
#include "coordinator/store/keys.h"

namespace farm::coordinator {
namespace {

// A list call's page: how many entries at most, the exclusive upper key to scan down from
// (empty: from the newest), and the byte budget that keeps a reply far below the gRPC limit.
struct Page {
  static constexpr int kDefaultLimit = 50;
  static constexpr int kMaxLimit = 1000;
  static constexpr size_t kMaxBytes = 8 << 20;
  int limit = kDefaultLimit;
  std::string upper;
};

// `parse_id` turns a page token (the id of the last entry of the previous page) into its seq.
absl::StatusOr<Page> ParsePage(
    int32_t limit, const std::string& page_token,
    const std::function<std::optional<uint64_t>(absl::string_view)>& parse_id) {
  if (limit < 0 || limit > Page::kMaxLimit) {
    return absl::InvalidArgumentError(
        absl::StrCat("limit ", limit, " is out of range [0, ", Page::kMaxLimit, "]"));
  }
  Page page;
  if (limit > 0) page.limit = limit;
  if (!page_token.empty()) {
    const std::optional<uint64_t> seq = parse_id(page_token);
    if (!seq.has_value()) return absl::InvalidArgumentError("page_token is malformed");
    page.upper = keys::JobKey(*seq);
  }
  return page;
}

}  // namespace

absl::StatusOr<farm::v1::Job> JobReads::GetJob(absl::string_view job_id) const {
  const std::optional<uint64_t> seq = keys::ParseJobId(job_id);
  // A well-formed id is short digits; anything else is echoed quoted and cut.
  auto not_found = [&] {
    return absl::NotFoundError(absl::StrCat(
        "job ", seq.has_value() ? std::string(job_id) : common::Quote(job_id), " not found"));
  };
  if (!seq.has_value()) return not_found();
  FARM_ASSIGN_OR_RETURN(std::optional<farm::v1::Job> job, jobs::Read(store_, *seq));
  if (!job.has_value()) return not_found();
  return *std::move(job);
}

absl::StatusOr<farm::v1::ListJobsResponse> JobReads::ListJobs(
    const farm::v1::ListJobsRequest& req) const {
  // Bounds the work of one call when a state filter matches little.
  constexpr int kMaxScanned = 100'000;
  FARM_ASSIGN_OR_RETURN(Page page, ParsePage(req.limit(), req.page_token(), keys::ParseJobId));
  farm::v1::ListJobsResponse resp;
  int scanned = 0;
  uint64_t last_seq = 0;  // the last job scanned (returned or filtered out)
  bool full = false;      // stopped at the limit, the byte budget or the scan bound
  size_t page_bytes = 0;
  absl::Status parse_error;
  FARM_RETURN_IF_ERROR(store_->Scan(
      Cf::kJobs, "", page.upper,
      [&](absl::string_view key, absl::string_view value) {
        const uint64_t seq = keys::ReadU64(key, 0);
        if (++scanned > kMaxScanned) return !(full = true);
        absl::StatusOr<farm::v1::Job> job = jobs::Parse(value, seq);
        if (!job.ok()) {
          parse_error = job.status();
          return false;
        }
        if (req.state() == farm::v1::JOB_STATE_UNSPECIFIED || job->state() == req.state()) {
          // A page stays far below the gRPC message limit however big the jobs are; one job
          // always fits (a job's spec and artifact list are bounded by job_limits.h).
          if (resp.jobs_size() > 0 && page_bytes + value.size() > Page::kMaxBytes) {
            return !(full = true);
          }
          page_bytes += value.size();
          *resp.add_jobs() = *std::move(job);
        }
        last_seq = seq;
        return !(full = resp.jobs_size() >= page.limit);
      },
      /*reverse=*/true));
  FARM_RETURN_IF_ERROR(parse_error);
  // The running ones with their steps so far.
  for (farm::v1::Job& job : *resp.mutable_jobs()) {
    if (job.state() != farm::v1::RUNNING) continue;
    FARM_ASSIGN_OR_RETURN(auto raw, store_->Get(Cf::kProgress, keys::JobKey(job.seq())));
    farm::v1::Attempt progress;
    if (raw.has_value() && progress.ParseFromString(*raw)) jobs::MergeProgress(job, progress);
  }
  if (full && last_seq > 1) resp.set_next_page_token(keys::JobId(last_seq));
  return resp;
}

absl::StatusOr<farm::v1::Pipeline> JobReads::GetPipeline(absl::string_view pipeline_id) const {
  const std::optional<uint64_t> pseq = keys::ParsePipelineId(pipeline_id);
  auto not_found = [&] {
    return absl::NotFoundError(absl::StrCat(
        "pipeline ", pseq.has_value() ? std::string(pipeline_id) : common::Quote(pipeline_id),
        " not found"));
  };
  if (!pseq.has_value()) return not_found();
  FARM_ASSIGN_OR_RETURN(auto raw, store_->Get(Cf::kPipelines, keys::JobKey(*pseq)));
  if (!raw.has_value()) return not_found();
  FARM_ASSIGN_OR_RETURN(farm::v1::Pipeline pipeline, ParsePipeline(*raw, *pseq));
  FARM_RETURN_IF_ERROR(FillViewFromSummaries(
      pipeline,
      [&](absl::string_view start, absl::string_view limit, const Store::ScanFn& fn) {
        return store_->Scan(Cf::kPipelineJobs, start, limit, fn);
      },
      [&](uint64_t seq) { return jobs::Read(store_, seq); }));
  return pipeline;
}

absl::StatusOr<farm::v1::ListPipelinesResponse> JobReads::ListPipelines(
    const farm::v1::ListPipelinesRequest& req) const {
  FARM_ASSIGN_OR_RETURN(Page page, ParsePage(req.limit(), req.page_token(), keys::ParsePipelineId));
  std::vector<farm::v1::Pipeline> pipelines;
  size_t page_bytes = 0;
  bool full = false;
  absl::Status parse_error;
  FARM_RETURN_IF_ERROR(store_->Scan(
      Cf::kPipelines, "", page.upper,
      [&](absl::string_view key, absl::string_view value) {
        absl::StatusOr<farm::v1::Pipeline> p = ParsePipeline(value, keys::ReadU64(key, 0));
        if (!p.ok()) {
          parse_error = p.status();
          return false;
        }
        // Far below the gRPC message limit; one pipeline always fits (its record is bounded).
        if (!pipelines.empty() && page_bytes + value.size() > Page::kMaxBytes) {
          return !(full = true);
        }
        page_bytes += value.size();
        pipelines.push_back(*std::move(p));
        return !(full = pipelines.size() >= static_cast<size_t>(page.limit));
      },
      /*reverse=*/true));
  FARM_RETURN_IF_ERROR(parse_error);
  farm::v1::ListPipelinesResponse resp;
  if (pipelines.empty()) return resp;
  // One scan for the summaries of every pipeline on the page (their seqs are one range).
  std::map<uint64_t, std::map<uint64_t, farm::v1::PipelineJob>> summaries;
  FARM_RETURN_IF_ERROR(store_->Scan(
      Cf::kPipelineJobs, keys::U64(pipelines.back().seq()),
      keys::PrefixEnd(keys::U64(pipelines.front().seq())),
      [&](absl::string_view key, absl::string_view value) {
        farm::v1::PipelineJob summary;
        if (key.size() == 16 &&
            summary.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
          summaries[keys::ReadU64(key, 0)].emplace(keys::ReadU64(key, 8), std::move(summary));
        }
        return true;
      }));
  for (farm::v1::Pipeline& p : pipelines) {
    FARM_RETURN_IF_ERROR(FillViewFromSummaries(
        p, summaries[p.seq()], [&](uint64_t seq) { return jobs::Read(store_, seq); }));
    *resp.add_pipelines() = std::move(p);
  }
  const uint64_t last = resp.pipelines(resp.pipelines_size() - 1).seq();
  if (full && last > 1) resp.set_next_page_token(keys::PipelineId(last));
  return resp;
}

}  // namespace farm::coordinator
