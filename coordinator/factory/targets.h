// Target conditions (the improvement kata's): what an operator wants the figures of one scope
// (jobs whose required labels include some labels, and/or of one pipeline) to become, recorded
// with `farmctl factory target set` and kept in the store (Cf::kMeta, "factory_target/" then the
// scope's canonical labels, a 0 byte and the pipeline name). The factory report shows each
// figure now against its target, and its trend since a compare window.
//
// Thread-safe (TargetStore serializes its writes; the store is). Errors: INVALID_ARGUMENT naming
// the field, NOT_FOUND for a scope without a target, RESOURCE_EXHAUSTED past kMaxTargets,
// DATA_LOSS for a record that does not parse, and the store's own.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "coordinator/store/store.h"
#include "farm/v1/farm.pb.h"

namespace farm::coordinator::factory {

inline constexpr size_t kMaxTargets = 1000;
// The longest duration a target may set.
inline constexpr int64_t kMaxTargetMs = 30LL * 24 * 3600'000;

// "labels pool=linux", "pipeline release", "pipeline release, labels os=linux", or "farm".
std::string TargetScope(const farm::v1::FactoryTarget& target);

// Checks a target as set: a valid scope (labels as a job's, a pipeline name as a pipeline's) and
// at least one figure, each within its range.
absl::Status ValidateTarget(const farm::v1::FactoryTarget& target);

class TargetStore {
 public:
  explicit TargetStore(Store* store) : store_(store) {}

  // Records `target` (its scope's target replaced, if it had one), synced; returns it as
  // stored and whether it replaced one.
  absl::StatusOr<std::pair<farm::v1::FactoryTarget, bool>> Set(farm::v1::FactoryTarget target,
                                                               const std::string& by,
                                                               int64_t now_ms);
  // Every target, ordered by scope.
  absl::StatusOr<std::vector<farm::v1::FactoryTarget>> List() const;
  // Removes the target of this scope and returns it.
  absl::StatusOr<farm::v1::FactoryTarget> Delete(const farm::v1::DeleteFactoryTargetRequest& scope);

 private:
  Store* const store_;
  absl::Mutex write_mu_;
};

// Each target's figures: `now` and `before` are the figures of the targets' scopes in the
// window and in the compare window (FlowReportBuilder::target_figures), in the targets' order.
std::vector<farm::v1::TargetCondition> Conditions(
    const std::vector<farm::v1::FactoryTarget>& targets,
    const std::vector<farm::v1::FlowFigures>& now,
    const std::vector<farm::v1::FlowFigures>& before);

}  // namespace farm::coordinator::factory
