#include "agent/options.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/testing/status_matchers.h"

namespace farm::agent {
namespace {

using ::farm::testing::StatusIs;
using ::farm::testing::StatusIsWithMessage;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

AgentOptions Valid() {
  AgentOptions o;
  o.coordinator = "127.0.0.1:1234";
  o.name = "a1";
  o.work_dir = "/tmp/w";
  return o;
}

TEST(OptionsTest, ParsesLabels) {
  ASSERT_OK_AND_ASSIGN(auto labels, ParseLabels("os=linux, gpu=a100,empty="));
  EXPECT_THAT(labels,
              UnorderedElementsAre(Pair("os", "linux"), Pair("gpu", "a100"), Pair("empty", "")));
  ASSERT_OK_AND_ASSIGN(auto none, ParseLabels(""));
  EXPECT_TRUE(none.empty());
}

TEST(OptionsTest, RejectsBadLabels) {
  EXPECT_THAT(ParseLabels("novalue"),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("--labels")));
  EXPECT_THAT(ParseLabels("=x"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseLabels("a=1,a=2"),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("twice")));
}

TEST(OptionsTest, ValidateNamesTheFlag) {
  EXPECT_OK(Valid().Validate());
  AgentOptions o = Valid();
  o.slots = 0;
  EXPECT_THAT(o.Validate(),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("--slots")));
  o = Valid();
  o.coordinator = "";
  EXPECT_THAT(o.Validate(),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("--coordinator")));
  o = Valid();
  o.work_dir = "";
  EXPECT_THAT(o.Validate(),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("--work_dir")));
  o = Valid();
  o.lease_wait_ms = 0;
  EXPECT_THAT(o.Validate(),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("--lease_wait")));
  o = Valid();
  o.labels[std::string(300, 'k')] = "v";
  EXPECT_THAT(o.Validate(),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("--labels")));
  o = Valid();
  o.cache_max_bytes = -1;
  EXPECT_THAT(o.Validate(), StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                                HasSubstr("--cache_max_bytes")));
  o.cache_max_bytes = 0;  // no cache
  EXPECT_OK(o.Validate());
}

TEST(OptionsTest, DefaultsAddHostLabelsButKeepExplicitOnes) {
  AgentOptions o = Valid();
  o.name = "";
  o.labels["arch"] = "custom";
  const AgentOptions filled = WithDefaults(o);
  EXPECT_FALSE(filled.name.empty());
  EXPECT_EQ(filled.labels.at("os"), "linux");
  EXPECT_EQ(filled.labels.at("arch"), "custom");
  const std::string arch = HostLabels().at("arch");
  EXPECT_NE(arch, "x86_64");
  EXPECT_NE(arch, "aarch64");
  EXPECT_FALSE(arch.empty());
}

}  // namespace
}  // namespace farm::agent
