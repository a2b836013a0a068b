// Reads the event history (written by scheduler/event_recorder.h) for ListEvents: oldest first,
// in pages, all events or one job's (through its index), within [since, until). A page token is
// the position of the last event returned ("TIME.SEQ"); the next page starts after it, so a
// reader that goes on with the token misses nothing appended later (keys only grow).
//
// Events are stored without their labels (only the label-set id); the reader restores them
// from the label sets in the meta family (cached: a label set never changes).
//
// Thread-safe. Errors: INVALID_ARGUMENT (a bad limit, range, job id or page token), DATA_LOSS
// (a corrupt event), the store's read errors.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "coordinator/store/store.h"
#include "farm/v1/farm.pb.h"

namespace farm::coordinator {

class EventReader {
 public:
  static constexpr int kDefaultLimit = 1000;
  static constexpr int kMaxLimit = 10'000;
  static constexpr int64_t kMaxWaitMs = 60'000;

  explicit EventReader(Store* store) : store_(store) {}

  // Checks the request without reading (INVALID_ARGUMENT naming the field).
  static absl::Status Validate(const farm::v1::ListEventsRequest& req);
  absl::StatusOr<farm::v1::ListEventsResponse> List(const farm::v1::ListEventsRequest& req);

  // Calls fn with each event in [since_ms, until_ms), oldest first, until it returns false. The
  // event is reused from call to call and its labels are not filled (its labelset is set: see
  // LabelsOf). For readers of the whole history (the factory report).
  absl::Status Scan(int64_t since_ms, int64_t until_ms,
                    const std::function<bool(const farm::v1::Event&)>& fn);
  // The labels of a label-set id (empty when unknown).
  absl::StatusOr<std::map<std::string, std::string>> LabelsOf(uint64_t labelset);

 private:
  // Calls fn with the keys (Cf::kEvents) of the job's events in [start, until), in order,
  // through the job's index, until fn returns false.
  absl::Status ScanJob(uint64_t job, const std::string& start, const std::string& until,
                       const std::function<bool(absl::string_view)>& fn);
  // Restores the event's labels from its label set.
  absl::Status FillLabels(farm::v1::Event& event);

  Store* const store_;
  absl::Mutex mu_;
  absl::flat_hash_map<uint64_t, std::map<std::string, std::string>> labelsets_ ABSL_GUARDED_BY(mu_);
};

}  // namespace farm::coordinator
