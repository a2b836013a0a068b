// How the scheduler's parts answer: every answer is a callback (Done<T>), called with the value
// only once what it reports is durable (ReplyAfterCommit), or at once with an error that
// changed nothing.
#pragma once

#include <functional>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "coordinator/scheduler/engine.h"

namespace farm::coordinator {

template <typename T>
using Done = std::function<void(absl::StatusOr<T>)>;

inline absl::Status Stopping() {
  return absl::UnavailableError("the coordinator is shutting down");
}

// Answers `done` with `value` once the group is durable, or with the write error (on the
// engine's reply thread).
template <typename T>
void ReplyAfterCommit(Txn& txn, const Done<T>& done, T value) {
  txn.ReplyOnCommit([done, value = std::move(value)](const absl::Status& s) mutable {
    if (s.ok()) {
      done(std::move(value));
    } else {
      done(s);
    }
  });
}

}  // namespace farm::coordinator
