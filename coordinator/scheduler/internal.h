// Helpers shared by the files that implement the Scheduler (scheduler.cc, pipelines.cc).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "coordinator/scheduler/engine.h"
#include "coordinator/scheduler/scheduler.h"
#include "coordinator/store/keys.h"
#include "google/protobuf/map.h"

namespace farm::coordinator::internal {

inline absl::Status Stopping() {
  return absl::UnavailableError("the coordinator is shutting down");
}

inline std::map<std::string, std::string> ToMap(
    const google::protobuf::Map<std::string, std::string>& m) {
  return std::map<std::string, std::string>(m.begin(), m.end());
}

// A client's request id: at most 256 bytes, no control characters (so that the coordinator's
// own prefixes, which start with one, can never collide with a client's id).
inline absl::Status ValidateRequestId(const std::string& request_id) {
  if (request_id.size() > 256) {
    return absl::InvalidArgumentError("request_id is longer than 256 bytes");
  }
  for (unsigned char c : request_id) {
    if (c < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError("request_id contains a control character");
    }
  }
  return absl::OkStatus();
}

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
inline absl::StatusOr<Page> ParsePage(
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

// Answers `done` with `value` once the group is durable, or with the write error.
template <typename T>
void ReplyAfterCommit(Txn& txn, const Scheduler::Done<T>& done, T value) {
  txn.ReplyOnCommit([done, value = std::move(value)](const absl::Status& s) {
    if (s.ok()) {
      done(value);
    } else {
      done(s);
    }
  });
}

}  // namespace farm::coordinator::internal
