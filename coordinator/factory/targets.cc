#include "coordinator/factory/targets.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/job_limits.h"
#include "common/status_macros.h"
#include "common/text.h"
#include "coordinator/scheduler/flow_metrics.h"
#include "coordinator/scheduler/label_sets.h"
#include "coordinator/store/keys.h"

namespace farm::coordinator::factory {
namespace {

constexpr absl::string_view kPrefix = "factory_target/";
// Two figures within this share of each other are "the same".
constexpr double kSameWithin = 0.05;

std::string KeyOf(const google::protobuf::Map<std::string, std::string>& labels,
                  const std::string& pipeline) {
  std::string key = absl::StrCat(kPrefix, keys::CanonicalLabels(ToLabels(labels)));
  key.push_back('\0');
  key += pipeline;
  return key;
}

std::string PrefixLimit() {
  std::string limit(kPrefix);
  limit.back() = static_cast<char>(limit.back() + 1);
  return limit;
}

absl::Status CheckDuration(int64_t ms, absl::string_view field) {
  if (ms < 0 || ms > kMaxTargetMs) {
    return absl::InvalidArgumentError(absl::StrCat(field, " must be between 0 (no target) and ",
                                                   kMaxTargetMs / 86'400'000, " days; got ", ms,
                                                   " ms"));
  }
  return absl::OkStatus();
}

// One figure: its target, now and before; `lower` when a smaller value is better.
farm::v1::TargetCondition Condition(std::string scope, std::string figure, double target,
                                    double now, int64_t now_count, double before,
                                    int64_t before_count, bool lower) {
  farm::v1::TargetCondition c;
  c.set_scope(std::move(scope));
  c.set_figure(std::move(figure));
  c.set_target(target);
  c.set_current(now);
  c.set_current_count(now_count);
  c.set_previous(before);
  c.set_previous_count(before_count);
  c.set_met(now_count > 0 && (lower ? now <= target : now >= target));
  if (now_count == 0 || before_count == 0) {
    c.set_trend("no data");
  } else if (std::abs(now - before) <= kSameWithin * std::max(std::abs(now), std::abs(before))) {
    c.set_trend("same");
  } else {
    c.set_trend((now < before) == lower ? "better" : "worse");
  }
  return c;
}

}  // namespace

std::string TargetScope(const farm::v1::FactoryTarget& target) {
  const std::string labels = LabelSetText(ToLabels(target.labels()));
  if (target.pipeline().empty()) {
    return target.labels().empty() ? "farm" : absl::StrCat("labels ", labels);
  }
  if (target.labels().empty()) return absl::StrCat("pipeline ", target.pipeline());
  return absl::StrCat("pipeline ", target.pipeline(), ", labels ", labels);
}

absl::Status ValidateTarget(const farm::v1::FactoryTarget& t) {
  if (!t.labels().empty()) FARM_RETURN_IF_ERROR(ValidateSelector(ToLabels(t.labels())));
  if (t.pipeline().size() > static_cast<size_t>(common::kMaxNameBytes) ||
      t.pipeline().find_first_of(std::string("\n\0", 2)) != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("pipeline: a pipeline's name, at most ",
                                                   common::kMaxNameBytes, " bytes on one line"));
  }
  FARM_RETURN_IF_ERROR(CheckDuration(t.p95_wait_ms(), "p95_wait_ms"));
  FARM_RETURN_IF_ERROR(CheckDuration(t.p95_lead_ms(), "p95_lead_ms"));
  if (!(t.first_pass_yield() >= 0 && t.first_pass_yield() <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("first_pass_yield must be a share between 0 (no target) and 1; got ",
                     t.first_pass_yield()));
  }
  if (t.p95_wait_ms() == 0 && t.p95_lead_ms() == 0 && t.first_pass_yield() == 0) {
    return absl::InvalidArgumentError(
        "a target needs at least one figure: p95_wait_ms, p95_lead_ms or first_pass_yield");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::pair<farm::v1::FactoryTarget, bool>> TargetStore::Set(
    farm::v1::FactoryTarget target, const std::string& by, int64_t now_ms) {
  FARM_RETURN_IF_ERROR(ValidateTarget(target));
  target.set_set_ms(now_ms);
  target.set_set_by(by);
  target.set_scope(TargetScope(target));
  const std::string key = KeyOf(target.labels(), target.pipeline());
  absl::MutexLock lock(&write_mu_);
  FARM_ASSIGN_OR_RETURN(std::optional<std::string> old, store_->Get(Cf::kMeta, key));
  if (!old.has_value()) {
    FARM_ASSIGN_OR_RETURN(std::vector<farm::v1::FactoryTarget> all, List());
    if (all.size() >= kMaxTargets) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the farm has ", all.size(), " targets, the most it keeps; remove one first"));
    }
  }
  WriteBatch batch;
  batch.Put(Cf::kMeta, key, target.SerializeAsString());
  FARM_RETURN_IF_ERROR(store_->Write(batch, /*sync=*/true));
  return std::make_pair(std::move(target), old.has_value());
}

absl::StatusOr<std::vector<farm::v1::FactoryTarget>> TargetStore::List() const {
  std::vector<farm::v1::FactoryTarget> out;
  absl::Status bad;
  FARM_RETURN_IF_ERROR(store_->Scan(
      Cf::kMeta, kPrefix, PrefixLimit(), [&](absl::string_view key, absl::string_view value) {
        farm::v1::FactoryTarget t;
        if (!t.ParseFromString(std::string(value))) {
          bad = absl::DataLossError(
              absl::StrCat("the factory target at ", common::Quote(key), " does not parse"));
          return false;
        }
        out.push_back(std::move(t));
        return true;
      }));
  FARM_RETURN_IF_ERROR(bad);
  return out;
}

absl::StatusOr<farm::v1::FactoryTarget> TargetStore::Delete(
    const farm::v1::DeleteFactoryTargetRequest& scope) {
  farm::v1::FactoryTarget asked;
  *asked.mutable_labels() = scope.labels();
  asked.set_pipeline(scope.pipeline());
  const std::string key = KeyOf(scope.labels(), scope.pipeline());
  absl::MutexLock lock(&write_mu_);
  FARM_ASSIGN_OR_RETURN(std::optional<std::string> old, store_->Get(Cf::kMeta, key));
  farm::v1::FactoryTarget target;
  if (!old.has_value()) {
    return absl::NotFoundError(absl::StrCat("no target for ", TargetScope(asked)));
  }
  if (!target.ParseFromString(*old)) {
    return absl::DataLossError(
        absl::StrCat("the target of ", TargetScope(asked), " does not parse"));
  }
  WriteBatch batch;
  batch.Delete(Cf::kMeta, key);
  FARM_RETURN_IF_ERROR(store_->Write(batch, /*sync=*/true));
  return target;
}

std::vector<farm::v1::TargetCondition> Conditions(
    const std::vector<farm::v1::FactoryTarget>& targets,
    const std::vector<farm::v1::FlowFigures>& now,
    const std::vector<farm::v1::FlowFigures>& before) {
  std::vector<farm::v1::TargetCondition> out;
  for (size_t i = 0; i < targets.size() && i < now.size() && i < before.size(); ++i) {
    const farm::v1::FactoryTarget& t = targets[i];
    const farm::v1::FlowFigures& a = now[i];
    const farm::v1::FlowFigures& b = before[i];
    const std::string scope = TargetScope(t);
    if (t.p95_wait_ms() > 0) {
      out.push_back(Condition(scope, "p95 wait", static_cast<double>(t.p95_wait_ms()),
                              static_cast<double>(a.queue_wait().p95_ms()), a.queue_wait().count(),
                              static_cast<double>(b.queue_wait().p95_ms()), b.queue_wait().count(),
                              /*lower=*/true));
    }
    if (t.p95_lead_ms() > 0) {
      out.push_back(Condition(scope, "p95 lead", static_cast<double>(t.p95_lead_ms()),
                              static_cast<double>(a.lead().p95_ms()), a.lead().count(),
                              static_cast<double>(b.lead().p95_ms()), b.lead().count(),
                              /*lower=*/true));
    }
    if (t.first_pass_yield() > 0) {
      out.push_back(Condition(scope, "first-pass yield", t.first_pass_yield(), a.first_pass_yield(),
                              a.succeeded() + a.failed(), b.first_pass_yield(),
                              b.succeeded() + b.failed(), /*lower=*/false));
    }
  }
  return out;
}

}  // namespace farm::coordinator::factory
