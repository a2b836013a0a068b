// The event history: what the recorder appends and what the reader pages through.
#include <gtest/gtest.h>

#include "coordinator/events/event_reader.h"
#include "coordinator/scheduler/event_recorder.h"
#include "tests/coordinator/scheduler/part_test_util.h"

namespace farm::coordinator {
namespace {

using testing::StatusIs;

class EventHistoryTest : public PartTest {
 protected:
  void AppendFor(Txn& txn, uint64_t job, farm::v1::EventKind kind) {
    farm::v1::Job j = NewJob(job, 0, {{"pool", "p"}});
    recorder_.Append(txn, recorder_.ForJob(txn, j, kind));
  }
  std::vector<uint64_t> Seqs(const farm::v1::ListEventsResponse& resp) {
    std::vector<uint64_t> out;
    for (const auto& e : resp.events()) out.push_back(e.seq());
    return out;
  }

  LabelSets sets_;
  FollowerHub hub_;
  EventRecorder recorder_{&clock_, &sets_, &hub_, /*retention_ms=*/3600'000};
  EventReader reader_{&store_};
};

TEST_F(EventHistoryTest, EventsComeBackInOrderInPagesAndPerJob) {
  Txn txn(&store_);
  for (uint64_t i = 1; i <= 5; ++i) AppendFor(txn, i % 2 + 1, farm::v1::JOB_QUEUED);
  Commit(txn);
  farm::v1::ListEventsRequest req;
  req.set_limit(2);
  ASSERT_OK_AND_ASSIGN(auto page1, reader_.List(req));
  EXPECT_EQ(Seqs(page1), (std::vector<uint64_t>{1, 2}));
  req.set_page_token(page1.next_page_token());
  ASSERT_OK_AND_ASSIGN(auto page2, reader_.List(req));
  EXPECT_EQ(Seqs(page2), (std::vector<uint64_t>{3, 4}));
  EXPECT_EQ(page2.events(0).labels().at("pool"), "p");
  farm::v1::ListEventsRequest job;
  job.set_job_id("2");
  ASSERT_OK_AND_ASSIGN(auto of_job, reader_.List(job));
  EXPECT_EQ(Seqs(of_job), (std::vector<uint64_t>{1, 3, 5}));
}

TEST_F(EventHistoryTest, AJobHasOneIndexEntryPerGroupAndItsPagesSplitThem) {
  Txn first(&store_);
  AppendFor(first, 7, farm::v1::JOB_SUBMITTED);
  AppendFor(first, 8, farm::v1::JOB_SUBMITTED);
  AppendFor(first, 7, farm::v1::JOB_QUEUED);
  AppendFor(first, 7, farm::v1::JOB_LEASED);
  Commit(first);
  Txn second(&store_);
  AppendFor(second, 7, farm::v1::JOB_ENDED);
  Commit(second);
  EXPECT_EQ(Count(Cf::kJobEvents), 3);  // job 7 twice, job 8 once
  farm::v1::ListEventsRequest req;
  req.set_job_id("7");
  ASSERT_OK_AND_ASSIGN(auto all, reader_.List(req));
  EXPECT_EQ(Seqs(all), (std::vector<uint64_t>{1, 3, 4, 5}));
  // Pages of one event start inside the first entry and cross into the next.
  req.set_limit(1);
  std::vector<uint64_t> paged;
  for (int i = 0; i < 6; ++i) {
    ASSERT_OK_AND_ASSIGN(auto page, reader_.List(req));
    for (const auto& e : page.events()) paged.push_back(e.seq());
    req.set_page_token(page.next_page_token());
  }
  EXPECT_EQ(paged, (std::vector<uint64_t>{1, 3, 4, 5}));
  // An unsealed group writes no index: the engine seals every group before writing it.
  Txn unsealed(&store_);
  AppendFor(unsealed, 9, farm::v1::JOB_SUBMITTED);
  EXPECT_EQ(unsealed.batch().ops().size(), 1u);
  unsealed.Seal();
  EXPECT_EQ(unsealed.batch().ops().size(), 2u);
}

TEST_F(EventHistoryTest, AFollowerGoingOnWithItsTokenMissesNothing) {
  Txn txn(&store_);
  AppendFor(txn, 1, farm::v1::JOB_SUBMITTED);
  Commit(txn);
  farm::v1::ListEventsRequest req;
  ASSERT_OK_AND_ASSIGN(auto first, reader_.List(req));
  ASSERT_EQ(first.events_size(), 1);
  // The clock steps back: the next event still sorts after the last one.
  clock_.AdvanceMs(-5000);
  Txn later(&store_);
  AppendFor(later, 1, farm::v1::JOB_ENDED);
  Commit(later);
  req.set_page_token(first.next_page_token());
  ASSERT_OK_AND_ASSIGN(auto next, reader_.List(req));
  ASSERT_EQ(next.events_size(), 1);
  EXPECT_EQ(next.events(0).kind(), farm::v1::JOB_ENDED);
  EXPECT_GE(next.events(0).time_ms(), first.events(0).time_ms());
  // At the live end the token stays where it was.
  req.set_page_token(next.next_page_token());
  ASSERT_OK_AND_ASSIGN(auto empty, reader_.List(req));
  EXPECT_EQ(empty.events_size(), 0);
  EXPECT_EQ(empty.next_page_token(), next.next_page_token());
}

TEST_F(EventHistoryTest, AnEventKeepsTheInstantItsRecordCarriesButNeverGoesBack) {
  const int64_t finished = clock_.NowMs();
  clock_.AdvanceMs(3);  // the transition read the clock a moment before the append
  Txn txn(&store_);
  farm::v1::Event ended = recorder_.ForJob(txn, NewJob(1, 0, {}), farm::v1::JOB_ENDED);
  ended.set_time_ms(finished);
  recorder_.Append(txn, ended);
  AppendFor(txn, 2, farm::v1::JOB_QUEUED);  // no time given: now
  farm::v1::Event earlier = recorder_.ForJob(txn, NewJob(3, 0, {}), farm::v1::JOB_ENDED);
  earlier.set_time_ms(finished - 10);  // before the last event: it still sorts after it
  recorder_.Append(txn, earlier);
  Commit(txn);
  ASSERT_OK_AND_ASSIGN(auto all, reader_.List(farm::v1::ListEventsRequest()));
  ASSERT_EQ(all.events_size(), 3);
  EXPECT_EQ(all.events(0).time_ms(), finished);
  EXPECT_EQ(all.events(1).time_ms(), finished + 3);
  EXPECT_EQ(all.events(2).time_ms(), finished + 3);
}

TEST_F(EventHistoryTest, SinceAndUntilBoundTheRange) {
  const int64_t t0 = clock_.NowMs();
  for (int i = 0; i < 3; ++i) {
    Txn txn(&store_);
    AppendFor(txn, 1, farm::v1::JOB_QUEUED);
    Commit(txn);
    clock_.AdvanceMs(1000);
  }
  farm::v1::ListEventsRequest req;
  req.set_since_ms(t0 + 500);
  req.set_until_ms(t0 + 1500);
  ASSERT_OK_AND_ASSIGN(auto resp, reader_.List(req));
  EXPECT_EQ(Seqs(resp), (std::vector<uint64_t>{2}));
  EXPECT_EQ(resp.next_page_token(), "");  // the range is done
}

TEST_F(EventHistoryTest, RetentionDeletesOldEventsAndTheirIndexAndSeqsKeepGrowing) {
  Txn txn(&store_);
  AppendFor(txn, 1, farm::v1::JOB_QUEUED);
  AppendFor(txn, 1, farm::v1::JOB_ENDED);
  Commit(txn);
  clock_.AdvanceMs(3600'001);
  Txn sweep(&store_);
  ASSERT_OK(recorder_.Sweep(sweep));
  Commit(sweep);
  ASSERT_OK_AND_ASSIGN(auto all, reader_.List({}));
  EXPECT_EQ(all.events_size(), 0);
  EXPECT_EQ(Count(Cf::kJobEvents), 0);
  EventRecorder restarted(&clock_, &sets_, &hub_, 3600'000);
  ASSERT_OK(restarted.Recover(&store_));
  EXPECT_EQ(restarted.last_seq(), 2u);
}

TEST_F(EventHistoryTest, BadRequestsNameTheField) {
  farm::v1::ListEventsRequest req;
  req.set_limit(10'001);
  EXPECT_THAT(reader_.List(req), StatusIs(absl::StatusCode::kInvalidArgument));
  req = {};
  req.set_page_token("nonsense");
  EXPECT_THAT(reader_.List(req), StatusIs(absl::StatusCode::kInvalidArgument));
  req = {};
  req.set_job_id("p1");
  EXPECT_THAT(reader_.List(req), StatusIs(absl::StatusCode::kInvalidArgument));
  req = {};
  req.set_since_ms(10);
  req.set_until_ms(5);
  EXPECT_THAT(reader_.List(req), StatusIs(absl::StatusCode::kInvalidArgument));
  req = {};
  req.set_wait_ms(61'000);
  EXPECT_THAT(EventReader::Validate(req), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace farm::coordinator
