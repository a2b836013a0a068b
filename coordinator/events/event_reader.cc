#include "coordinator/events/event_reader.h"

#include <optional>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "common/text.h"
#include "coordinator/store/keys.h"

namespace farm::coordinator {
namespace {

std::string Token(const farm::v1::Event& e) { return absl::StrCat(e.time_ms(), ".", e.seq()); }

std::optional<keys::EventKeyParts> ParseToken(absl::string_view token) {
  std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  keys::EventKeyParts out;
  uint64_t time = 0;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &time) ||
      !absl::SimpleAtoi(parts[1], &out.seq) || time > (uint64_t{1} << 62)) {
    return std::nullopt;
  }
  out.time_ms = static_cast<int64_t>(time);
  return out;
}

}  // namespace

absl::Status EventReader::Validate(const farm::v1::ListEventsRequest& req) {
  if (req.limit() < 0 || req.limit() > kMaxLimit) {
    return absl::InvalidArgumentError(
        absl::StrCat("limit ", req.limit(), " is out of range [0, ", kMaxLimit, "]"));
  }
  if (req.since_ms() < 0 || req.until_ms() < 0) {
    return absl::InvalidArgumentError("since_ms and until_ms must not be negative");
  }
  if (req.until_ms() > 0 && req.until_ms() <= req.since_ms()) {
    return absl::InvalidArgumentError("until_ms must be later than since_ms");
  }
  if (req.wait_ms() < 0 || req.wait_ms() > kMaxWaitMs) {
    return absl::InvalidArgumentError(
        absl::StrCat("wait_ms ", req.wait_ms(), " is out of range [0, ", kMaxWaitMs, "]"));
  }
  if (!req.job_id().empty() && !keys::ParseJobId(req.job_id()).has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat(common::Quote(req.job_id()), " is not a job id"));
  }
  if (!req.page_token().empty() && !ParseToken(req.page_token()).has_value()) {
    return absl::InvalidArgumentError("page_token is malformed");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::map<std::string, std::string>> EventReader::LabelsOf(uint64_t labelset) {
  if (labelset == 0) return std::map<std::string, std::string>();
  {
    absl::MutexLock lock(&mu_);
    auto it = labelsets_.find(labelset);
    if (it != labelsets_.end()) return it->second;
  }
  std::string key(keys::kLabelSetPrefix);
  keys::AppendU64(key, labelset);
  FARM_ASSIGN_OR_RETURN(auto canonical, store_->Get(Cf::kMeta, key));
  // Not yet visible: no labels, and nothing cached.
  if (!canonical.has_value()) return std::map<std::string, std::string>();
  std::map<std::string, std::string> labels = keys::ParseCanonicalLabels(*canonical);
  absl::MutexLock lock(&mu_);
  labelsets_.emplace(labelset, labels);
  return labels;
}

absl::Status EventReader::FillLabels(farm::v1::Event& event) {
  if (event.labelset() == 0) return absl::OkStatus();
  {
    // The common case, without copying the cached labels first.
    absl::MutexLock lock(&mu_);
    auto it = labelsets_.find(event.labelset());
    if (it != labelsets_.end()) {
      event.mutable_labels()->insert(it->second.begin(), it->second.end());
      return absl::OkStatus();
    }
  }
  FARM_ASSIGN_OR_RETURN(auto labels, LabelsOf(event.labelset()));
  event.mutable_labels()->insert(labels.begin(), labels.end());
  return absl::OkStatus();
}

absl::Status EventReader::Scan(int64_t since_ms, int64_t until_ms,
                               const std::function<bool(const farm::v1::Event&)>& fn) {
  farm::v1::Event event;
  bool corrupt = false;
  FARM_RETURN_IF_ERROR(
      store_->Scan(Cf::kEvents, keys::EventKey(since_ms, 0), keys::EventKey(until_ms, 0),
                   [&](absl::string_view, absl::string_view value) {
                     event.Clear();
                     if (!event.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
                       corrupt = true;
                       return false;
                     }
                     return fn(event);
                   }));
  if (corrupt) return absl::DataLossError("an event record is corrupt");
  return absl::OkStatus();
}

absl::Status EventReader::ScanJob(uint64_t job, const std::string& start, const std::string& until,
                                  const std::function<bool(absl::string_view)>& fn) {
  const std::string prefix = keys::U64(job);
  bool more = true;
  // Calls fn on the entry's event keys within [start, until); false once fn or until stops.
  auto each = [&](absl::string_view events) {
    for (size_t at = 0; more && at + 16 <= events.size(); at += 16) {
      absl::string_view event = events.substr(at, 16);
      if (!until.empty() && event >= until) more = false;
      if (more && event >= start) more = fn(event);
    }
  };
  auto entry = [&](absl::string_view key, absl::string_view value) {
    each(key.substr(prefix.size()));  // the first event
    each(value);                      // the others
    return more;
  };
  // The entry that begins before `start` may hold events after it.
  FARM_RETURN_IF_ERROR(store_->Scan(
      Cf::kJobEvents, prefix, prefix + start,
      [&](absl::string_view key, absl::string_view value) { return entry(key, value), false; },
      /*reverse=*/true));
  if (!more) return absl::OkStatus();
  const std::string limit = until.empty() ? keys::PrefixEnd(prefix) : prefix + until;
  return store_->Scan(Cf::kJobEvents, prefix + start, limit, entry);
}

absl::StatusOr<farm::v1::ListEventsResponse> EventReader::List(
    const farm::v1::ListEventsRequest& req) {
  FARM_RETURN_IF_ERROR(Validate(req));
  const size_t limit = req.limit() > 0 ? static_cast<size_t>(req.limit()) : kDefaultLimit;
  // The first key to read: after the token's event, else at since_ms.
  std::string start = keys::EventKey(req.since_ms(), 0);
  if (std::optional<keys::EventKeyParts> after = ParseToken(req.page_token())) {
    const std::string next = keys::EventKey(after->time_ms, after->seq + 1);
    if (next > start) start = next;
  }
  const std::string until = req.until_ms() > 0 ? keys::EventKey(req.until_ms(), 0) : "";
  farm::v1::ListEventsResponse resp;
  absl::Status error;
  auto take = [&](absl::string_view value) {
    farm::v1::Event* e = resp.add_events();
    if (!e->ParseFromArray(value.data(), static_cast<int>(value.size()))) {
      error = absl::DataLossError("an event record is corrupt");
      return false;
    }
    error = FillLabels(*e);
    return error.ok() && static_cast<size_t>(resp.events_size()) < limit;
  };
  if (req.job_id().empty()) {
    FARM_RETURN_IF_ERROR(
        store_->Scan(Cf::kEvents, start, until,
                     [&](absl::string_view, absl::string_view value) { return take(value); }));
  } else {
    FARM_RETURN_IF_ERROR(
        ScanJob(*keys::ParseJobId(req.job_id()), start, until, [&](absl::string_view key) {
          absl::StatusOr<std::optional<std::string>> value = store_->Get(Cf::kEvents, key);
          if (!value.ok()) {
            error = value.status();
            return false;
          }
          if (!value->has_value()) return true;  // expired meanwhile
          return take(**value);
        }));
  }
  FARM_RETURN_IF_ERROR(error);
  const bool reached_until = req.until_ms() > 0 && static_cast<size_t>(resp.events_size()) < limit;
  if (!reached_until) {
    // Go on after the last event, or (none yet) from where this call started.
    if (!resp.events().empty()) {
      resp.set_next_page_token(Token(*resp.events().rbegin()));
    } else if (!req.page_token().empty()) {
      resp.set_next_page_token(req.page_token());
    } else {
      resp.set_next_page_token(absl::StrCat(req.since_ms(), ".0"));  // no event has seq 0
    }
  }
  return resp;
}

}  // namespace farm::coordinator
