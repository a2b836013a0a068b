// Helpers shared by the files that implement the Scheduler (scheduler.cc, pipelines.cc).
#pragma once

#include <map>
#include <string>

#include "absl/status/status.h"
#include "coordinator/scheduler/engine.h"
#include "coordinator/scheduler/scheduler.h"
#include "google/protobuf/map.h"

namespace farm::coordinator::internal {

inline absl::Status Stopping() {
  return absl::UnavailableError("the coordinator is shutting down");
}

inline std::map<std::string, std::string> ToMap(
    const google::protobuf::Map<std::string, std::string>& m) {
  return std::map<std::string, std::string>(m.begin(), m.end());
}

// Answers `done` with `value` once the group is durable, or with the write error.
template <typename T>
void ReplyAfterCommit(Txn& txn, const Scheduler::Done<T>& done, T value) {
  txn.OnCommit([done, value = std::move(value)](const absl::Status& s) {
    if (s.ok()) {
      done(value);
    } else {
      done(s);
    }
  });
}

}  // namespace farm::coordinator::internal
