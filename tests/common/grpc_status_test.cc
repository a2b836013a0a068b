#include "common/grpc_status.h"

#include <gtest/gtest.h>

namespace farm::common {
namespace {

TEST(GrpcStatusTest, CodeAndMessageSurviveTheRoundTrip) {
  const absl::Status in = absl::FailedPreconditionError("lease is stale");
  const absl::Status out = FromGrpcStatus(ToGrpcStatus(in));
  EXPECT_EQ(out.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(out.message(), "lease is stale");
  EXPECT_EQ(ReasonOf(out), "");
}

TEST(GrpcStatusTest, AReasonTravelsInTheStatusDetails) {
  const absl::Status in =
      WithReason(absl::NotFoundError("agent a1 unknown"), kReasonAgentNotRegistered);
  EXPECT_EQ(ReasonOf(in), kReasonAgentNotRegistered);
  const grpc::Status wire = ToGrpcStatus(in);
  EXPECT_EQ(wire.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_FALSE(wire.error_details().empty());
  const absl::Status out = FromGrpcStatus(wire);
  EXPECT_EQ(out.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(out.message(), "agent a1 unknown");
  EXPECT_EQ(ReasonOf(out), kReasonAgentNotRegistered);
}

TEST(GrpcStatusTest, TheSameMessageWithoutTheReasonIsNotThatReason) {
  // A client must not infer the reason from the text.
  EXPECT_EQ(ReasonOf(FromGrpcStatus(ToGrpcStatus(absl::NotFoundError("agent a1 not registered")))),
            "");
}

TEST(GrpcStatusTest, GarbageDetailsAreIgnored) {
  const absl::Status out =
      FromGrpcStatus(grpc::Status(grpc::StatusCode::NOT_FOUND, "x", std::string("\xff\xff", 2)));
  EXPECT_EQ(out.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ReasonOf(out), "");
}

TEST(GrpcStatusTest, OkStaysOkWithAReason) {
  EXPECT_TRUE(WithReason(absl::OkStatus(), kReasonAgentNotRegistered).ok());
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
}

}  // namespace
}  // namespace farm::common
