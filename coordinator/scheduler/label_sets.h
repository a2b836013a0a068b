// The label sets jobs require: each distinct set of required labels gets a stable 64-bit id
// (keys::LabelSetId of its canonical text), stored once in the meta family when first seen.
// Queue keys and events carry the id; readers turn it back into labels.
//
// Engine thread only (Intern, Recover); Find may be called there too.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "coordinator/scheduler/engine.h"
#include "coordinator/store/store.h"
#include "google/protobuf/map.h"

namespace farm::coordinator {

using Labels = std::map<std::string, std::string>;

Labels ToLabels(const google::protobuf::Map<std::string, std::string>& labels);
// Whether an agent with `agent` labels may run a job requiring `required`.
bool LabelsMatch(const Labels& agent, const Labels& required);
// A selector an operator gives (`--labels=k=v,...`): at least one label, each key non-empty,
// keys and values within common::kMaxLabelBytes, no '=' in keys, no ',' or newline.
// INVALID_ARGUMENT naming the label.
absl::Status ValidateSelector(const Labels& selector);

class LabelSets {
 public:
  // Loads every known set. DATA_LOSS never: a malformed entry is skipped.
  absl::Status Recover(Store* store);
  // The id of `labels`; the first time a set is seen its text is written in this group (and
  // *is_new, when given, says so).
  uint64_t Intern(Txn& txn, const google::protobuf::Map<std::string, std::string>& labels,
                  bool* is_new = nullptr);
  // The labels of a known id; null when unknown.
  const Labels* Find(uint64_t id) const;
  std::vector<uint64_t> Ids() const;

 private:
  absl::flat_hash_map<uint64_t, Labels> sets_;
};

}  // namespace farm::coordinator
