// Target conditions: what may be set, how they are kept, and how each figure is judged against
// its target and its compare window.
#include "coordinator/factory/targets.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "coordinator/store/memory_store.h"
#include "tests/testing/status_matchers.h"

namespace farm::coordinator::factory {
namespace {

using ::farm::testing::StatusIsWithMessage;
using ::testing::HasSubstr;

farm::v1::FactoryTarget Target(const std::string& pool, int64_t p95_wait_ms, double fpy) {
  farm::v1::FactoryTarget t;
  if (!pool.empty()) (*t.mutable_labels())["pool"] = pool;
  t.set_p95_wait_ms(p95_wait_ms);
  t.set_first_pass_yield(fpy);
  return t;
}

TEST(TargetsTest, ATargetNeedsAScopeAndAFigureWithinRange) {
  EXPECT_TRUE(ValidateTarget(Target("linux", 60'000, 0.95)).ok());
  EXPECT_THAT(
      ValidateTarget(Target("linux", 0, 0)),
      StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("at least one figure")));
  EXPECT_THAT(ValidateTarget(Target("linux", 0, 1.5)),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                  HasSubstr("first_pass_yield must be a share")));
  EXPECT_THAT(ValidateTarget(Target("linux", -1, 0)),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("p95_wait_ms")));
  farm::v1::FactoryTarget bad = Target("", 1000, 0);
  (*bad.mutable_labels())["a,b"] = "c";
  EXPECT_THAT(ValidateTarget(bad),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("labels")));
  EXPECT_EQ(TargetScope(Target("", 1000, 0)), "farm");
  farm::v1::FactoryTarget both = Target("linux", 1000, 0);
  both.set_pipeline("release");
  EXPECT_EQ(TargetScope(both), "pipeline release, labels pool=linux");
}

TEST(TargetsTest, OneTargetPerScopeIsKeptReplacedAndRemoved) {
  MemoryStore store;
  TargetStore targets(&store);
  ASSERT_OK_AND_ASSIGN(auto set, targets.Set(Target("linux", 60'000, 0), "alice", 1000));
  EXPECT_FALSE(set.second);
  EXPECT_EQ(set.first.scope(), "labels pool=linux");
  EXPECT_EQ(set.first.set_by(), "alice");
  ASSERT_OK_AND_ASSIGN(set, targets.Set(Target("linux", 30'000, 0.9), "bob", 2000));
  EXPECT_TRUE(set.second);
  ASSERT_OK(targets.Set(Target("mac", 0, 0.5), "bob", 3000).status());
  ASSERT_OK_AND_ASSIGN(std::vector<farm::v1::FactoryTarget> all, targets.List());
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].p95_wait_ms(), 30'000);  // replaced
  EXPECT_EQ(all[0].set_by(), "bob");
  farm::v1::DeleteFactoryTargetRequest rm;
  (*rm.mutable_labels())["pool"] = "linux";
  ASSERT_OK_AND_ASSIGN(farm::v1::FactoryTarget gone, targets.Delete(rm));
  EXPECT_EQ(gone.first_pass_yield(), 0.9);
  EXPECT_THAT(targets.Delete(rm),
              StatusIsWithMessage(absl::StatusCode::kNotFound,
                                  HasSubstr("no target for labels pool=linux")));
  ASSERT_OK_AND_ASSIGN(all, targets.List());
  EXPECT_EQ(all.size(), 1u);
}

TEST(TargetsTest, EachFigureIsMetOrMissedAndItsTrendSaysWhichWayItMoved) {
  farm::v1::FlowFigures now, before;
  now.mutable_queue_wait()->set_count(10);
  now.mutable_queue_wait()->set_p95_ms(20'000);  // 20 s: meets 1m
  before.mutable_queue_wait()->set_count(10);
  before.mutable_queue_wait()->set_p95_ms(90'000);
  now.set_succeeded(8);
  now.set_failed(2);
  now.set_first_pass_yield(0.8);  // misses 0.95
  before.set_succeeded(5);
  before.set_failed(5);
  before.set_first_pass_yield(0.5);
  const std::vector<farm::v1::TargetCondition> c =
      Conditions({Target("linux", 60'000, 0.95)}, {now}, {before});
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].figure(), "p95 wait");
  EXPECT_TRUE(c[0].met());
  EXPECT_EQ(c[0].trend(), "better");
  EXPECT_EQ(c[1].figure(), "first-pass yield");
  EXPECT_FALSE(c[1].met());
  EXPECT_EQ(c[1].trend(), "better");
  EXPECT_DOUBLE_EQ(c[1].previous(), 0.5);
  // Worse, the same, and no data.
  now.set_first_pass_yield(0.4);
  EXPECT_EQ(Conditions({Target("linux", 0, 0.95)}, {now}, {before})[0].trend(), "worse");
  now.set_first_pass_yield(0.51);
  EXPECT_EQ(Conditions({Target("linux", 0, 0.95)}, {now}, {before})[0].trend(), "same");
  const farm::v1::TargetCondition empty =
      Conditions({Target("linux", 60'000, 0)}, {farm::v1::FlowFigures()}, {before})[0];
  EXPECT_FALSE(empty.met());
  EXPECT_EQ(empty.trend(), "no data");
}

}  // namespace
}  // namespace farm::coordinator::factory
