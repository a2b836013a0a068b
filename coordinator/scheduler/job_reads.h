// Users' reads of jobs and pipelines, straight from the committed store: any thread, never the
// engine's (the services run them on a read pool, not on gRPC's callback threads). A pipeline
// is read with its record and one scan of its jobs' summaries; a page of pipelines with two
// scans in all.
//
// Thread-safe (the store is). Errors: NOT_FOUND (an unknown id), INVALID_ARGUMENT (a bad limit
// or page token), DATA_LOSS (a corrupt record), the store's read errors.
#pragma once

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "coordinator/store/store.h"
#include "farm/v1/farm.pb.h"

namespace farm::coordinator {

class JobReads {
 public:
  explicit JobReads(Store* store) : store_(store) {}

  absl::StatusOr<farm::v1::Job> GetJob(absl::string_view job_id) const;
  // Newest first, at most `limit` (≤ 1000) and about 8 MiB a page.
  absl::StatusOr<farm::v1::ListJobsResponse> ListJobs(const farm::v1::ListJobsRequest& req) const;
  // With each job's state and the derived pipeline state.
  absl::StatusOr<farm::v1::Pipeline> GetPipeline(absl::string_view pipeline_id) const;
  absl::StatusOr<farm::v1::ListPipelinesResponse> ListPipelines(
      const farm::v1::ListPipelinesRequest& req) const;

 private:
  Store* const store_;
};

}  // namespace farm::coordinator
