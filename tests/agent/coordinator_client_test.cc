// IsNotRegistered goes by the reason the coordinator attaches, never by the message text.
#include "agent/coordinator_client.h"

#include <gtest/gtest.h>

#include "absl/status/status.h"
#include "common/grpc_status.h"

namespace farm::agent {
namespace {

TEST(IsNotRegisteredTest, TheReasonSaysItAlsoAfterTheTripThroughGrpc) {
  const absl::Status sent = common::WithReason(absl::NotFoundError("agent a1: unknown session"),
                                               common::kReasonAgentNotRegistered);
  EXPECT_TRUE(IsNotRegistered(sent));
  EXPECT_TRUE(IsNotRegistered(common::FromGrpcStatus(common::ToGrpcStatus(sent))));
}

TEST(IsNotRegisteredTest, TheMessageTextAloneSaysNothing) {
  EXPECT_FALSE(IsNotRegistered(absl::NotFoundError("agent a1 not registered")));
  EXPECT_FALSE(IsNotRegistered(absl::NotFoundError("job j1 not found")));
  EXPECT_FALSE(IsNotRegistered(
      common::WithReason(absl::NotFoundError("agent a1 not registered"), "SOME_OTHER_REASON")));
  EXPECT_FALSE(IsNotRegistered(absl::OkStatus()));
}

}  // namespace
}  // namespace farm::agent
