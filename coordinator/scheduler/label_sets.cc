#include "coordinator/scheduler/label_sets.h"

#include "absl/strings/str_cat.h"
#include "common/job_limits.h"
#include "common/text.h"
#include "coordinator/store/keys.h"

namespace farm::coordinator {

Labels ToLabels(const google::protobuf::Map<std::string, std::string>& labels) {
  return Labels(labels.begin(), labels.end());
}

bool LabelsMatch(const Labels& agent, const Labels& required) {
  for (const auto& [k, v] : required) {
    auto it = agent.find(k);
    if (it == agent.end() || it->second != v) return false;
  }
  return true;
}

absl::Status LabelSets::Recover(Store* store) {
  sets_.clear();
  const std::string prefix(keys::kLabelSetPrefix);
  return store->Scan(Cf::kMeta, prefix, keys::PrefixEnd(prefix),
                     [&](absl::string_view key, absl::string_view value) {
                       if (key.size() != prefix.size() + 8) return true;
                       sets_[keys::ReadU64(key, prefix.size())] = keys::ParseCanonicalLabels(value);
                       return true;
                     });
}

uint64_t LabelSets::Intern(Txn& txn, const google::protobuf::Map<std::string, std::string>& labels,
                           bool* is_new) {
  Labels sorted = ToLabels(labels);
  const std::string canonical = keys::CanonicalLabels(sorted);
  const uint64_t id = keys::LabelSetId(canonical);
  auto [it, added] = sets_.try_emplace(id);
  if (added) {
    it->second = std::move(sorted);
    std::string key(keys::kLabelSetPrefix);
    keys::AppendU64(key, id);
    txn.Put(Cf::kMeta, std::move(key), canonical);
  }
  if (is_new != nullptr) *is_new = added;
  return id;
}

std::vector<uint64_t> LabelSets::Ids() const {
  std::vector<uint64_t> ids;
  ids.reserve(sets_.size());
  for (const auto& [id, labels] : sets_) ids.push_back(id);
  return ids;
}

const Labels* LabelSets::Find(uint64_t id) const {
  auto it = sets_.find(id);
  return it == sets_.end() ? nullptr : &it->second;
}

absl::Status ValidateSelector(const Labels& selector) {
  if (selector.empty()) {
    return absl::InvalidArgumentError("labels: give at least one k=v (e.g. os=linux)");
  }
  if (selector.size() > static_cast<size_t>(common::kMaxLabels)) {
    return absl::InvalidArgumentError(
        absl::StrCat("labels: ", selector.size(), " labels; the limit is ", common::kMaxLabels));
  }
  for (const auto& [k, v] : selector) {
    if (k.empty() || k.size() > static_cast<size_t>(common::kMaxLabelBytes) ||
        v.size() > static_cast<size_t>(common::kMaxLabelBytes)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "labels: ", common::Quote(k), " must be a non-empty key, and key and value at most ",
          common::kMaxLabelBytes, " bytes"));
    }
    if (k.find_first_of("=,\n") != std::string::npos ||
        v.find_first_of(",\n") != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("labels: ", common::Quote(k), " may not contain '=' or ','"));
    }
  }
  return absl::OkStatus();
}

}  // namespace farm::coordinator
