// What the HTTP port's parts share: waiting for a scheduler call's answer from an HTTP thread,
// and the web API's JSON responses and errors.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/http_server.h"
#include "coordinator/scheduler/replies.h"
#include "google/protobuf/message.h"

namespace farm::coordinator::web {

// What a scheduler call answers through its callback (`ask` makes the call), waited for at
// most `timeout`: UNAVAILABLE when the engine does not answer in time (the late answer is
// dropped).
template <typename T>
absl::StatusOr<T> Await(const std::function<void(Done<T>)>& ask,
                        absl::Duration timeout = absl::Seconds(10)) {
  auto answer = std::make_shared<absl::StatusOr<T>>(absl::UnavailableError("no answer"));
  auto done = std::make_shared<absl::Notification>();
  ask([answer, done](absl::StatusOr<T> got) {
    *answer = std::move(got);
    done->Notify();
  });
  if (!done->WaitForNotificationWithTimeout(timeout)) {
    return absl::UnavailableError("the coordinator is too busy to answer now; try again");
  }
  return *std::move(*answer);
}

// protobuf's JSON mapping of `message` (field names in lowerCamelCase, enums by name).
std::string ToJson(const google::protobuf::Message& message);
common::HttpServer::Response Json(std::string json, int status = 200);
common::HttpServer::Response Json(const google::protobuf::Message& message);
// {"error": MESSAGE} with the HTTP status of the code.
common::HttpServer::Response Error(const absl::Status& status);
// A JSON string literal of `text` (invalid UTF-8 replaced by U+FFFD).
std::string Quote(absl::string_view text);
// The path's parts after `prefix` ("/api/jobs/12/log", "/api/jobs/" -> {"12", "log"}), each
// percent-decoded; empty parts dropped.
std::vector<std::string> PathAfter(const std::string& path, absl::string_view prefix);
// %XX decoded, and '+' as a space (a form field's value).
std::string PercentDecode(absl::string_view text);
// The query parameter `name`, or "".
std::string Param(const common::HttpServer::Request& req, const std::string& name);
// The query parameter `labels` ("k=v,k2=v2") as labels; empty when absent.
std::map<std::string, std::string> LabelsParam(const common::HttpServer::Request& req);

}  // namespace farm::coordinator::web
