#include "coordinator/scheduler/request_ids.h"

#include <gtest/gtest.h>

#include "tests/coordinator/scheduler/part_test_util.h"

namespace farm::coordinator {
namespace {

using testing::StatusIs;

class RequestIdsTest : public PartTest {};

TEST_F(RequestIdsTest, AnIdFindsWhatItCreatedJobsAndPipelinesApart) {
  RequestIds ids(&clock_, 1000);
  Txn txn(&store_);
  ids.Remember(txn, RequestIds::Kind::kJob, "r1", 5, clock_.NowMs());
  ids.Remember(txn, RequestIds::Kind::kPipeline, "r2", 3, clock_.NowMs());
  ids.Remember(txn, RequestIds::Kind::kJob, "", 6, clock_.NowMs());
  Commit(txn);
  Txn read(&store_);
  EXPECT_THAT(ids.Find(read, RequestIds::Kind::kJob, "r1"), testing::IsOkAndHolds(5u));
  EXPECT_THAT(ids.Find(read, RequestIds::Kind::kPipeline, "r1"),
              testing::IsOkAndHolds(std::nullopt));
  EXPECT_THAT(ids.Find(read, RequestIds::Kind::kPipeline, "r2"), testing::IsOkAndHolds(3u));
  EXPECT_THAT(ids.Find(read, RequestIds::Kind::kJob, ""), testing::IsOkAndHolds(std::nullopt));
}

TEST_F(RequestIdsTest, IdsAreForgottenAfterTheirRetention) {
  RequestIds ids(&clock_, 1000);
  Txn txn(&store_);
  ids.Remember(txn, RequestIds::Kind::kJob, "old", 1, clock_.NowMs());
  Commit(txn);
  clock_.AdvanceMs(600);
  Txn txn2(&store_);
  ids.Remember(txn2, RequestIds::Kind::kJob, "new", 2, clock_.NowMs());
  Commit(txn2);
  clock_.AdvanceMs(600);
  Txn sweep(&store_);
  ASSERT_OK(ids.Sweep(sweep));
  Commit(sweep);
  Txn read(&store_);
  EXPECT_THAT(ids.Find(read, RequestIds::Kind::kJob, "old"), testing::IsOkAndHolds(std::nullopt));
  EXPECT_THAT(ids.Find(read, RequestIds::Kind::kJob, "new"), testing::IsOkAndHolds(2u));
}

TEST_F(RequestIdsTest, ControlCharactersAndLongIdsAreRefused) {
  EXPECT_OK(RequestIds::Validate("ci-123/attempt 2"));
  EXPECT_THAT(RequestIds::Validate(std::string("a\x01", 2)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(RequestIds::Validate(std::string(257, 'x')),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace farm::coordinator
