#include "coordinator/store/store.h"

namespace farm::coordinator {

const char* CfName(Cf cf) {
  switch (cf) {
    case Cf::kMeta:
      return "meta";
    case Cf::kJobs:
      return "jobs";
    case Cf::kQueue:
      return "queue";
    case Cf::kActive:
      return "active";
    case Cf::kLogs:
      return "logs";
    case Cf::kRequests:
      return "requests";
    case Cf::kCasBlobs:
      return "cas_blobs";
    case Cf::kCasLru:
      return "cas_lru";
    case Cf::kActionCache:
      return "action_cache";
    case Cf::kPipelines:
      return "pipelines";
    case Cf::kGroups:
      return "groups";
    case Cf::kEvents:
      return "events";
    case Cf::kJobEvents:
      return "job_events";
    case Cf::kAgents:
      return "agents";
    case Cf::kProgress:
      return "progress";
    case Cf::kPipelineJobs:
      return "pipeline_jobs";
    case Cf::kWaiting:
      return "waiting";
    case Cf::kTokens:
      return "tokens";
    case Cf::kSecrets:
      return "secrets";
    case Cf::kRetention:
      return "retention";
  }
  return "?";
}

void WriteBatch::Put(Cf cf, std::string key, std::string value) {
  bytes_ += key.size() + value.size();
  ops_.push_back(Op{cf, false, std::move(key), std::move(value)});
}

void WriteBatch::Delete(Cf cf, std::string key) {
  bytes_ += key.size();
  ops_.push_back(Op{cf, true, std::move(key), {}});
}

void WriteBatch::DeleteRange(Cf cf, std::string start, std::string limit) {
  bytes_ += start.size() + limit.size();
  ops_.push_back(Op{cf, true, std::move(start), std::move(limit), true});
}

void WriteBatch::Append(const WriteBatch& other) {
  ops_.insert(ops_.end(), other.ops_.begin(), other.ops_.end());
  bytes_ += other.bytes_;
}

void WriteBatch::Clear() {
  ops_.clear();
  bytes_ = 0;
}

absl::Status Store::Checkpoint(const std::string& dir) {
  return absl::UnimplementedError("this store cannot make a checkpoint of " + dir);
}

absl::StatusOr<StoreStats> Store::Stats() {
  return absl::UnimplementedError("this store keeps no statistics");
}

}  // namespace farm::coordinator
