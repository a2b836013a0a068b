// The scheduler's state machine against the in-memory store and a fake clock.
#include "coordinator/scheduler/scheduler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "coordinator/logs/log_reader.h"
#include "tests/coordinator/scheduler_fixture.h"
#include "tests/testing/status_matchers.h"

namespace farm::coordinator {
namespace {

using farm::testing::IsOkAndHolds;
using farm::testing::StatusIs;
using ::testing::HasSubstr;

TEST_F(SchedulerTest, HigherPriorityFirstThenSubmitOrder) {
  const std::string low = Submit(Spec("low", -1));
  const std::string a = Submit(Spec("a", 5));
  const std::string b = Submit(Spec("b", 5));
  const std::string mid = Submit(Spec("mid", 0));
  Register("agent");
  std::vector<std::string> order;
  for (int i = 0; i < 4; ++i) {
    ASSERT_OK_AND_ASSIGN(auto lease, Lease("agent"));
    ASSERT_TRUE(lease.has_job());
    order.push_back(lease.job().id());
  }
  EXPECT_EQ(order, (std::vector<std::string>{a, b, mid, low}));
  ASSERT_OK_AND_ASSIGN(auto none, Lease("agent"));
  EXPECT_FALSE(none.has_job());
}

TEST_F(SchedulerTest, OrderHoldsAcrossWindowRefillsAndRestarts) {
  Shutdown();
  Boot(/*window=*/2);
  std::vector<std::string> want_high, want_low;
  for (int i = 0; i < 7; ++i) want_low.push_back(Submit(Spec("low", 0)));
  for (int i = 0; i < 5; ++i) want_high.push_back(Submit(Spec("high", 3)));
  Restart(/*window=*/2);
  Register("agent");
  std::vector<std::string> got;
  for (int i = 0; i < 12; ++i) {
    ASSERT_OK_AND_ASSIGN(auto lease, Lease("agent"));
    ASSERT_TRUE(lease.has_job()) << i;
    got.push_back(lease.job().id());
  }
  std::vector<std::string> want = want_high;
  want.insert(want.end(), want_low.begin(), want_low.end());
  EXPECT_EQ(got, want);
}

// Refills scan from the last leased key (not over the tombstones of everything leased before),
// so a job that sorts before that point must still be found: a higher priority, and the first
// job of an emptied set.
TEST_F(SchedulerTest, AJobQueuedAheadOfWhatWasLeasedIsStillFirstAfterRefills) {
  Shutdown();
  Boot(/*window=*/2);
  for (int i = 0; i < 7; ++i) Submit(Spec("low", 0));
  Register("agent");
  for (int i = 0; i < 5; ++i) {
    ASSERT_OK_AND_ASSIGN(auto lease, Lease("agent"));
    ASSERT_TRUE(lease.has_job()) << i;
  }
  Submit(Spec("high", 9));
  std::vector<std::string> got;
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(auto lease, Lease("agent"));
    ASSERT_TRUE(lease.has_job()) << i;
    got.push_back(lease.job().spec().name());
  }
  EXPECT_EQ(got, (std::vector<std::string>{"high", "low", "low"}));
  ASSERT_OK_AND_ASSIGN(auto none, Lease("agent"));
  EXPECT_FALSE(none.has_job());
  // The set is empty now; what comes next, at any priority, is found.
  const std::string later = Submit(Spec("later", -5));
  ASSERT_OK_AND_ASSIGN(auto lease, Lease("agent"));
  ASSERT_TRUE(lease.has_job());
  EXPECT_EQ(lease.job().id(), later);
}

TEST_F(SchedulerTest, TheLastStepsResultMayComeWithTheCompletion) {
  farm::v1::RegisterRequest reg;
  reg.set_name("agent");
  reg.set_slots(1);
  reg.set_session_id("s1");
  ASSERT_OK_AND_ASSIGN(
      farm::v1::RegisterResponse registered,
      Await<farm::v1::RegisterResponse>([&](auto cb) { scheduler_->Register(reg, cb); }));
  EXPECT_THAT(registered.features(), ::testing::Contains("complete_job.last_step"));

  const std::string id = Submit(Spec("two", 0, {}, /*steps=*/2));
  ASSERT_OK_AND_ASSIGN(auto lease, Lease("agent"));
  ASSERT_TRUE(lease.has_job());
  farm::v1::StepFinishedRequest first;
  *first.mutable_lease() = lease.lease();
  first.set_step_index(0);
  first.mutable_result()->set_state(farm::v1::STEP_SUCCEEDED);
  ASSERT_OK(Await<farm::v1::Ack>([&](auto cb) { scheduler_->StepFinished(first, cb); }));

  farm::v1::CompleteJobRequest req;
  *req.mutable_lease() = lease.lease();
  req.set_outcome(farm::v1::ATTEMPT_FAILED);
  req.set_reason("step s1 exited with 3");
  req.mutable_last_step()->set_step_index(1);
  req.mutable_last_step()->mutable_result()->set_state(farm::v1::STEP_FAILED);
  req.mutable_last_step()->mutable_result()->set_exit_code(3);
  ASSERT_OK(
      Await<farm::v1::CompleteJobResponse>([&](auto cb) { scheduler_->CompleteJob(req, cb); }));
  // A retry after a lost reply is accepted and changes nothing.
  ASSERT_OK(
      Await<farm::v1::CompleteJobResponse>([&](auto cb) { scheduler_->CompleteJob(req, cb); }));

  Restart();  // what was recorded is durable
  const farm::v1::Job job = Job(id);
  EXPECT_EQ(job.state(), farm::v1::FAILED);
  ASSERT_EQ(job.attempts_size(), 1);
  ASSERT_EQ(job.attempts(0).steps_size(), 2);
  EXPECT_EQ(job.attempts(0).steps(0).state(), farm::v1::STEP_SUCCEEDED);
  EXPECT_EQ(job.attempts(0).steps(1).state(), farm::v1::STEP_FAILED);
  EXPECT_EQ(job.attempts(0).steps(1).exit_code(), 3);
  EXPECT_EQ(job.attempts(0).steps(1).name(), "s1");
}

absl::StatusOr<farm::v1::CompleteJobResponse> CompleteAndLeaseNext(
    Scheduler& scheduler, const farm::v1::LeaseRef& ref, const std::string& agent,
    const std::string& session = "s1") {
  farm::v1::CompleteJobRequest req;
  *req.mutable_lease() = ref;
  req.set_outcome(farm::v1::ATTEMPT_SUCCEEDED);
  req.set_lease_next(true);
  req.set_agent(agent);
  req.set_session_id(session);
  return Await<farm::v1::CompleteJobResponse>([&](auto cb) { scheduler.CompleteJob(req, cb); });
}

TEST_F(SchedulerTest, ACompletionCarriesTheAgentsNextLeaseWhenItAsks) {
  Register("agent");
  const std::string first = Submit(Spec("first"));
  const std::string second = Submit(Spec("second"));
  ASSERT_OK_AND_ASSIGN(auto lease, Lease("agent"));
  ASSERT_EQ(lease.job().id(), first);
  ASSERT_OK_AND_ASSIGN(auto done, CompleteAndLeaseNext(*scheduler_, lease.lease(), "agent"));
  ASSERT_TRUE(done.has_next());
  EXPECT_EQ(done.next().lease().job_id(), second);
  EXPECT_GT(done.next().lease().epoch(), lease.lease().epoch());
  EXPECT_EQ(Job(first).state(), farm::v1::SUCCEEDED);
  EXPECT_EQ(Job(second).state(), farm::v1::RUNNING);
  EXPECT_EQ(Job(second).attempts(0).agent(), "agent");
  // A retry of that completion (its answer was lost) gets the same lease again.
  ASSERT_OK_AND_ASSIGN(auto again, CompleteAndLeaseNext(*scheduler_, lease.lease(), "agent"));
  ASSERT_TRUE(again.has_next());
  EXPECT_EQ(again.next().lease().epoch(), done.next().lease().epoch());
  // Also when the coordinator restarted in between.
  Restart();
  ASSERT_OK_AND_ASSIGN(auto after, CompleteAndLeaseNext(*scheduler_, lease.lease(), "agent"));
  ASSERT_TRUE(after.has_next());
  EXPECT_EQ(after.next().lease().epoch(), done.next().lease().epoch());
  EXPECT_EQ(after.next().job().attempts(0).follows_epoch(), lease.lease().epoch());
  // Nothing more is queued: the next completion carries no lease.
  ASSERT_OK_AND_ASSIGN(auto last, CompleteAndLeaseNext(*scheduler_, done.next().lease(), "agent"));
  EXPECT_FALSE(last.has_next());
  EXPECT_EQ(Job(second).state(), farm::v1::SUCCEEDED);
}

TEST_F(SchedulerTest, NoNextLeaseForAnotherAgentAnOldSessionOrADrainingAgent) {
  Register("agent");
  Register("other");
  std::vector<farm::v1::LeaseRef> leases;
  for (int i = 0; i < 3; ++i) {
    Submit(Spec(absl::StrCat("job", i)));
    ASSERT_OK_AND_ASSIGN(auto lease, Lease("agent"));
    leases.push_back(lease.lease());
  }
  const std::string waiting = Submit(Spec("waiting"));
  // Each completion is accepted; none hands the queued job out.
  ASSERT_OK_AND_ASSIGN(auto by_other, CompleteAndLeaseNext(*scheduler_, leases[0], "other"));
  EXPECT_FALSE(by_other.has_next());
  ASSERT_OK_AND_ASSIGN(auto old, CompleteAndLeaseNext(*scheduler_, leases[1], "agent", "s0"));
  EXPECT_FALSE(old.has_next());
  ASSERT_OK(Await<farm::v1::Ack>([&](auto cb) { scheduler_->SetAgentDrain("agent", true, cb); }));
  ASSERT_OK_AND_ASSIGN(auto draining, CompleteAndLeaseNext(*scheduler_, leases[2], "agent"));
  EXPECT_FALSE(draining.has_next());
  for (const farm::v1::LeaseRef& ref : leases) {
    EXPECT_EQ(Job(ref.job_id()).state(), farm::v1::SUCCEEDED);
  }
  EXPECT_EQ(Job(waiting).state(), farm::v1::QUEUED);
}

TEST_F(SchedulerTest, ACompletionWithABadLastStepChangesNothing) {
  Register("agent");
  const std::string id = Submit(Spec("one", 0));
  ASSERT_OK_AND_ASSIGN(auto lease, Lease("agent"));
  farm::v1::CompleteJobRequest req;
  *req.mutable_lease() = lease.lease();
  req.set_outcome(farm::v1::ATTEMPT_SUCCEEDED);
  req.mutable_last_step()->set_step_index(7);
  req.mutable_last_step()->mutable_result()->set_state(farm::v1::STEP_SUCCEEDED);
  EXPECT_THAT(
      Await<farm::v1::CompleteJobResponse>([&](auto cb) { scheduler_->CompleteJob(req, cb); }),
      StatusIs(absl::StatusCode::kInvalidArgument));
  req.mutable_last_step()->set_step_index(0);
  req.mutable_last_step()->mutable_result()->set_state(farm::v1::STEP_RUNNING);
  EXPECT_THAT(
      Await<farm::v1::CompleteJobResponse>([&](auto cb) { scheduler_->CompleteJob(req, cb); }),
      StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(Job(id).state(), farm::v1::RUNNING);
}

TEST_F(SchedulerTest, AJobRunsOnlyOnAnAgentWithAllItsLabels) {
  const std::string gpu = Submit(Spec("gpu", 0, {{"gpu", "yes"}, {"os", "linux"}}));
  const std::string any = Submit(Spec("any", 0));
  Register("plain", {{"os", "linux"}});
  Register("big", {{"os", "linux"}, {"gpu", "yes"}, {"extra", "1"}});
  ASSERT_OK_AND_ASSIGN(auto p1, Lease("plain"));
  ASSERT_TRUE(p1.has_job());
  EXPECT_EQ(p1.job().id(), any);
  ASSERT_OK_AND_ASSIGN(auto p2, Lease("plain"));
  EXPECT_FALSE(p2.has_job());
  ASSERT_OK_AND_ASSIGN(auto b, Lease("big"));
  ASSERT_TRUE(b.has_job());
  EXPECT_EQ(b.job().id(), gpu);
}

TEST_F(SchedulerTest, AParkedLeaseGetsWorkTheMomentItIsSubmitted) {
  Register("agent", {{"os", "linux"}});
  Pending<farm::v1::LeaseResponse> parked;
  farm::v1::LeaseRequest req;
  req.set_agent("agent");
  req.set_session_id("s1");
  scheduler_->Lease(req, /*wait_ms=*/60'000, scheduler_->NewCallId(), parked.Callback());
  // Not for this agent: stays parked.
  Submit(Spec("mac", 0, {{"os", "mac"}}));
  EXPECT_FALSE(parked.Ready());
  const std::string id = Submit(Spec("linux", 0, {{"os", "linux"}}));
  ASSERT_OK_AND_ASSIGN(auto lease, parked.Get());
  ASSERT_TRUE(lease.has_job());
  EXPECT_EQ(lease.job().id(), id);
  EXPECT_EQ(Job(id).state(), farm::v1::RUNNING);
}

TEST_F(SchedulerTest, AParkedLeaseAnswersEmptyAfterItsWait) {
  Register("agent");
  Pending<farm::v1::LeaseResponse> parked;
  farm::v1::LeaseRequest req;
  req.set_agent("agent");
  req.set_session_id("s1");
  scheduler_->Lease(req, 500, scheduler_->NewCallId(), parked.Callback());
  // A round trip through the engine: the lease is parked once this returns.
  ASSERT_OK(Await<farm::v1::ListAgentsResponse>([&](auto cb) { scheduler_->ListAgents(cb); }));
  EXPECT_FALSE(parked.Ready());
  clock_.AdvanceMs(501);
  ASSERT_OK(Await<farm::v1::ListAgentsResponse>([&](auto cb) { scheduler_->ListAgents(cb); }));
  ASSERT_OK_AND_ASSIGN(auto lease, parked.Get());
  EXPECT_FALSE(lease.has_job());
}

TEST_F(SchedulerTest, UnknownAgentIsNotFoundAndOldSessionIsRefused) {
  EXPECT_THAT(Lease("ghost"), StatusIs(absl::StatusCode::kNotFound));
  Register("agent", {}, "s1");
  Register("agent", {}, "s2");
  EXPECT_THAT(Lease("agent", 0, "s1"), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_OK(Lease("agent", 0, "s2"));
}

TEST_F(SchedulerTest, EpochsIncreaseAndStaleCallsChangeNothing) {
  const std::string id = Submit(Spec("j", 0, {}, 2));
  Register("agent");
  ASSERT_OK_AND_ASSIGN(auto first, Lease("agent"));
  farm::v1::LeaseRef stale = first.lease();
  stale.set_epoch(stale.epoch() + 100);
  EXPECT_THAT(Append(stale, 0, 0, "x"), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(Complete(stale, farm::v1::ATTEMPT_SUCCEEDED),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(Job(id).state(), farm::v1::RUNNING);

  const std::string id2 = Submit(Spec("j2"));
  ASSERT_OK_AND_ASSIGN(auto second, Lease("agent"));
  EXPECT_GT(second.lease().epoch(), first.lease().epoch());

  ASSERT_OK(Complete(first.lease(), farm::v1::ATTEMPT_SUCCEEDED));
  // A retried completion with the same result is accepted once more, and changes nothing.
  EXPECT_OK(Complete(first.lease(), farm::v1::ATTEMPT_SUCCEEDED));
  EXPECT_THAT(Complete(first.lease(), farm::v1::ATTEMPT_FAILED),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  farm::v1::Job done = Job(id);
  EXPECT_EQ(done.state(), farm::v1::SUCCEEDED);
  ASSERT_EQ(done.attempts_size(), 1);
  // Steps never reported are skipped.
  EXPECT_EQ(done.attempts(0).steps(1).state(), farm::v1::STEP_SKIPPED);
  // After the end, the lease is stale for everything else.
  EXPECT_THAT(Append(first.lease(), 0, 0, "late"), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(SchedulerTest, LogAppendsDeduplicateByOffsetAndRefuseGaps) {
  Submit(Spec("j", 0, {}, 2));
  Register("agent");
  ASSERT_OK_AND_ASSIGN(auto lease, Lease("agent"));
  EXPECT_THAT(Append(lease.lease(), 0, 0, "hello "), IsOkAndHolds(6));
  EXPECT_THAT(Append(lease.lease(), 0, 0, "hello "), IsOkAndHolds(6));     // resent
  EXPECT_THAT(Append(lease.lease(), 0, 3, "lo world"), IsOkAndHolds(11));  // overlap
  EXPECT_THAT(Append(lease.lease(), 0, 20, "gap"), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(Append(lease.lease(), 5, 0, "x"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Append(lease.lease(), 1, 0, "second"), IsOkAndHolds(6));
  ASSERT_OK_AND_ASSIGN(auto len, CommittedLogLength(&store_, 1, 1, 0));
  EXPECT_EQ(len, 11);
  // A restart recovers the committed offsets.
  Restart();
  EXPECT_THAT(Append(lease.lease(), 0, 11, "!"), IsOkAndHolds(12));
}

TEST_F(SchedulerTest, OutputPastTheJobLimitIsDroppedBehindAMarker) {
  Submit(Spec("j"));
  Register("agent");
  ASSERT_OK_AND_ASSIGN(auto lease, Lease("agent"));
  const std::string big(900, 'a');
  EXPECT_THAT(Append(lease.lease(), 0, 0, big), IsOkAndHolds(900));
  EXPECT_THAT(Append(lease.lease(), 0, 900, big), IsOkAndHolds(1800));
  EXPECT_THAT(Append(lease.lease(), 0, 1800, big), IsOkAndHolds(2700));
  auto len = CommittedLogLength(&store_, 1, 1, 0);
  ASSERT_OK(len);
  EXPECT_LT(*len, 1200);
  auto tail = store_.Get(Cf::kLogs, keys::LogKey(1, 1, 0, 900));
  ASSERT_OK(tail);
  ASSERT_TRUE(tail->has_value());
  EXPECT_THAT(**tail, HasSubstr("output truncated"));
}

TEST_F(SchedulerTest, SubmitWithTheSameRequestIdMakesOneJob) {
  const std::string a = Submit(Spec("j"), "req-1");
  const std::string b = Submit(Spec("j"), "req-1");
  const std::string c = Submit(Spec("j"), "req-2");
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  Restart();
  EXPECT_EQ(Submit(Spec("j"), "req-1"), a);
  auto list = scheduler_->ListJobs({});
  ASSERT_OK(list);
  EXPECT_EQ(list->jobs_size(), 2);
}

TEST_F(SchedulerTest, RequestIdsExpireAfterTheirRetention) {
  const std::string a = Submit(Spec("j"), "req-1");
  clock_.AdvanceMs(23 * 3600'000);
  ExpireLeases();                            // runs the sweep
  EXPECT_EQ(Submit(Spec("j"), "req-1"), a);  // still deduplicated after 23 h
  clock_.AdvanceMs(2 * 3600'000);
  ExpireLeases();
  ExpireLeases();
  const std::string b = Submit(Spec("j"), "req-1");
  EXPECT_NE(b, a);  // forgotten after 24 h: a new job
  auto left = Await<farm::v1::ListAgentsResponse>([&](auto cb) { scheduler_->ListAgents(cb); });
  ASSERT_OK(left);
  // Only the new id's two records remain.
  int records = 0;
  ASSERT_OK(store_.Scan(
      Cf::kRequests, "", "",
      [&](absl::string_view, absl::string_view) {
        ++records;
        return true;
      },
      /*reverse=*/false));
  EXPECT_EQ(records, 2);
}

TEST_F(SchedulerTest, InvalidSpecsAreRejectedWithTheReason) {
  farm::v1::JobSpec empty;
  EXPECT_THAT(
      Await<farm::v1::SubmitJobResponse>([&](auto cb) { scheduler_->Submit(empty, "", cb); }),
      StatusIs(absl::StatusCode::kInvalidArgument));
  farm::v1::JobSpec prio = Spec("p", 5000);
  auto r = Await<farm::v1::SubmitJobResponse>([&](auto cb) { scheduler_->Submit(prio, "", cb); });
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("priority"));
}

TEST_F(SchedulerTest, CancelQueuedJobRemovesItFromTheQueue) {
  const std::string id = Submit(Spec("j"));
  ASSERT_OK_AND_ASSIGN(auto job,
                       Await<farm::v1::Job>([&](auto cb) { scheduler_->Cancel(id, cb); }));
  EXPECT_EQ(job.state(), farm::v1::CANCELLED);
  Register("agent");
  ASSERT_OK_AND_ASSIGN(auto lease, Lease("agent"));
  EXPECT_FALSE(lease.has_job());
  EXPECT_THAT(Await<farm::v1::Job>([&](auto cb) { scheduler_->Cancel("999", cb); }),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(SchedulerTest, CancelRunningJobWakesTheAgentsParkedHeartbeat) {
  const std::string id = Submit(Spec("j"));
  Register("agent");
  ASSERT_OK_AND_ASSIGN(auto lease, Lease("agent"));
  farm::v1::HeartbeatRequest hb;
  hb.set_agent("agent");
  hb.set_session_id("s1");
  *hb.add_leases() = lease.lease();
  Pending<farm::v1::HeartbeatResponse> parked;
  scheduler_->Heartbeat(hb, 60'000, scheduler_->NewCallId(), parked.Callback());
  ASSERT_OK(Await<farm::v1::ListAgentsResponse>([&](auto cb) { scheduler_->ListAgents(cb); }));
  EXPECT_FALSE(parked.Ready());
  ASSERT_OK(Await<farm::v1::Job>([&](auto cb) { scheduler_->Cancel(id, cb); }));
  ASSERT_OK_AND_ASSIGN(auto resp, parked.Get());
  ASSERT_EQ(resp.leases_size(), 1);
  EXPECT_TRUE(resp.leases(0).valid());
  EXPECT_TRUE(resp.leases(0).cancel());
  ASSERT_OK(Complete(lease.lease(), farm::v1::ATTEMPT_CANCELLED));
  EXPECT_EQ(Job(id).state(), farm::v1::CANCELLED);
}

TEST_F(SchedulerTest, StaleLeaseInHeartbeatIsReportedInvalidAtOnce) {
  Register("agent");
  farm::v1::HeartbeatRequest hb;
  hb.set_agent("agent");
  hb.set_session_id("s1");
  auto* ref = hb.add_leases();
  ref->set_job_id("1");
  ref->set_attempt(1);
  ref->set_epoch(77);
  ASSERT_OK_AND_ASSIGN(auto resp, Await<farm::v1::HeartbeatResponse>([&](auto cb) {
                         scheduler_->Heartbeat(hb, 60'000, scheduler_->NewCallId(), cb);
                       }));
  ASSERT_EQ(resp.leases_size(), 1);
  EXPECT_FALSE(resp.leases(0).valid());
}

TEST_F(SchedulerTest, AnExpiredLeaseIsRequeuedInFrontThenFailsAsAgentLost) {
  const std::string id = Submit(Spec("j"));
  const std::string other = Submit(Spec("other"));
  Register("agent");
  ASSERT_OK_AND_ASSIGN(auto first, Lease("agent"));
  ASSERT_EQ(first.job().id(), id);
  ExpireLeases();
  farm::v1::Job j = Job(id);
  EXPECT_EQ(j.state(), farm::v1::QUEUED);
  EXPECT_EQ(j.attempts(0).outcome(), farm::v1::ATTEMPT_LOST);
  // Requeued in front of `other`, which was submitted later but never ran.
  ASSERT_OK_AND_ASSIGN(auto second, Lease("agent"));
  EXPECT_EQ(second.job().id(), id);
  EXPECT_GT(second.lease().epoch(), first.lease().epoch());
  EXPECT_THAT(Complete(first.lease(), farm::v1::ATTEMPT_SUCCEEDED),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  ExpireLeases();  // second loss: retries (1) exhausted
  j = Job(id);
  EXPECT_EQ(j.state(), farm::v1::FAILED);
  EXPECT_THAT(j.reason(), HasSubstr("agent_lost"));
  ASSERT_OK_AND_ASSIGN(auto third, Lease("agent"));
  EXPECT_EQ(third.job().id(), other);
}

TEST_F(SchedulerTest, AWaiterWhoseWaitIsOverGetsNoWorkAfterAPause) {
  const std::string id = Submit(Spec("j"));
  Register("holder");
  Register("waiter");
  ASSERT_OK_AND_ASSIGN(auto held, Lease("holder"));
  ASSERT_EQ(held.job().id(), id);
  Pending<farm::v1::LeaseResponse> parked;
  farm::v1::LeaseRequest req;
  req.set_agent("waiter");
  req.set_session_id("s1");
  scheduler_->Lease(req, 5000, scheduler_->NewCallId(), parked.Callback());
  ASSERT_OK(Await<farm::v1::ListAgentsResponse>([&](auto cb) { scheduler_->ListAgents(cb); }));
  // As if the coordinator were paused: the lease expires and the waiter's wait is over in the
  // same moment. The expiry sweep runs first and requeues the job, which must not go to a
  // caller that has stopped waiting.
  clock_.AdvanceMs(6000);
  ASSERT_OK(Await<farm::v1::ListAgentsResponse>([&](auto cb) { scheduler_->ListAgents(cb); }));
  ASSERT_OK_AND_ASSIGN(auto answer, parked.Get());
  EXPECT_FALSE(answer.has_job());
  // "No work" needs no write, so it may come before the requeue is durable; one more round
  // trip through the engine passes that group's commit.
  ASSERT_OK(Await<farm::v1::ListAgentsResponse>([&](auto cb) { scheduler_->ListAgents(cb); }));
  EXPECT_EQ(Job(id).state(), farm::v1::QUEUED);
}

TEST_F(SchedulerTest, ArtifactsOfTheCompletionAreRecordedAfterTheCheck) {
  std::vector<std::string> checked;
  bool missing = true;
  Shutdown();
  SchedulerOptions opts;
  opts.lease_ttl_ms = 3000;
  scheduler_ = std::make_unique<Scheduler>(&store_, &clock_, &hub_, opts);
  // Answers from another thread, as the CAS's pool does.
  std::vector<std::thread> checkers;
  scheduler_->SetArtifactCheck([&](const auto& artifacts, std::function<void(absl::Status)> done) {
    for (const auto& a : artifacts) checked.push_back(a.path());
    const absl::Status result =
        missing ? absl::NotFoundError("blob of out/app is not in the CAS") : absl::OkStatus();
    checkers.emplace_back([done, result] { done(result); });
  });
  ASSERT_OK(scheduler_->Init());
  scheduler_->Start();
  const std::string id = Submit(Spec("j"));
  Register("agent");
  ASSERT_OK_AND_ASSIGN(auto lease, Lease("agent"));
  farm::v1::CompleteJobRequest req;
  *req.mutable_lease() = lease.lease();
  req.set_outcome(farm::v1::ATTEMPT_SUCCEEDED);
  farm::v1::Artifact* a = req.add_artifacts();
  a->set_path("out/app");
  a->set_hash(std::string(64, 'a'));
  a->set_size(3);
  a->set_executable(true);
  auto complete = [&] {
    return Await<farm::v1::CompleteJobResponse>([&](auto cb) { scheduler_->CompleteJob(req, cb); })
        .status();
  };
  EXPECT_THAT(complete(), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(Job(id).state(), farm::v1::RUNNING);  // nothing changed
  missing = false;
  ASSERT_OK(complete());
  farm::v1::Job job = Job(id);
  EXPECT_EQ(job.state(), farm::v1::SUCCEEDED);
  ASSERT_EQ(job.artifacts_size(), 1);
  EXPECT_EQ(job.artifacts(0).path(), "out/app");
  EXPECT_TRUE(job.artifacts(0).executable());
  ASSERT_EQ(job.attempts(0).artifacts_size(), 1);
  EXPECT_EQ(checked, (std::vector<std::string>{"out/app", "out/app"}));
  for (std::thread& t : checkers) t.join();
}

TEST_F(SchedulerTest, MalformedArtifactsAreRefused) {
  Submit(Spec("j"));
  Register("agent");
  ASSERT_OK_AND_ASSIGN(auto lease, Lease("agent"));
  for (const std::string path : {"../escape", "/abs", "a//b", "", "a/./b"}) {
    farm::v1::CompleteJobRequest req;
    *req.mutable_lease() = lease.lease();
    req.set_outcome(farm::v1::ATTEMPT_SUCCEEDED);
    auto* a = req.add_artifacts();
    a->set_path(path);
    a->set_hash(std::string(64, 'b'));
    EXPECT_THAT(
        Await<farm::v1::CompleteJobResponse>([&](auto cb) { scheduler_->CompleteJob(req, cb); }),
        StatusIs(absl::StatusCode::kInvalidArgument))
        << path;
  }
  farm::v1::CompleteJobRequest req;
  *req.mutable_lease() = lease.lease();
  req.set_outcome(farm::v1::ATTEMPT_SUCCEEDED);
  auto* a = req.add_artifacts();
  a->set_path("ok");
  a->set_hash("XYZ");
  EXPECT_THAT(
      Await<farm::v1::CompleteJobResponse>([&](auto cb) { scheduler_->CompleteJob(req, cb); }),
      StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(SchedulerTest, RunningLeasesSurviveARestart) {
  const std::string id = Submit(Spec("j"));
  Register("agent");
  ASSERT_OK_AND_ASSIGN(auto lease, Lease("agent"));
  Restart();
  // The registry is persisted: the new process knows the agent's session, and its lease is
  // kept (also when the agent registers again with the same session).
  ASSERT_OK_AND_ASSIGN(auto none, Lease("agent"));
  EXPECT_FALSE(none.has_job());
  Register("agent");
  ASSERT_OK(Complete(lease.lease(), farm::v1::ATTEMPT_SUCCEEDED));
  EXPECT_EQ(Job(id).state(), farm::v1::SUCCEEDED);
  // Epochs continue after the restart.
  Submit(Spec("k"));
  ASSERT_OK_AND_ASSIGN(auto next, Lease("agent"));
  EXPECT_GT(next.lease().epoch(), lease.lease().epoch());
}

TEST_F(SchedulerTest, AnAgentThatRestartsReleasesItsLeasesAtOnce) {
  const std::string id = Submit(Spec("j"));
  Register("agent", {}, "s1");
  ASSERT_OK(Lease("agent", 0, "s1"));
  Register("agent", {}, "s2");
  farm::v1::Job j = Job(id);
  EXPECT_EQ(j.state(), farm::v1::QUEUED);
  EXPECT_EQ(j.attempts(0).outcome(), farm::v1::ATTEMPT_LOST);
}

TEST_F(SchedulerTest, AFailedWriteLeavesNothingVisibleAndTheSchedulerRecovers) {
  Register("agent");
  store_.FailWrites(absl::ResourceExhaustedError("disk full"));
  auto r =
      Await<farm::v1::SubmitJobResponse>([&](auto cb) { scheduler_->Submit(Spec("j"), "", cb); });
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kResourceExhausted));
  store_.FailWrites(absl::OkStatus());
  ASSERT_OK_AND_ASSIGN(auto none, Lease("agent"));
  EXPECT_FALSE(none.has_job());
  const std::string id = Submit(Spec("k"));
  EXPECT_EQ(id, "1");  // the failed submit's id was never acknowledged, so it is reused
  ASSERT_OK_AND_ASSIGN(auto lease, Lease("agent"));
  EXPECT_EQ(lease.job().id(), id);
}

// An agent acts only on the attempts leased to its own identity: another agent's calls about
// that lease, even with the right epoch, are refused and change nothing.
TEST_F(SchedulerTest, AnotherAgentCannotActOnALeaseItDoesNotHold) {
  Register("a1");
  Register("intruder");
  const std::string id = Submit(Spec("j"));
  ASSERT_OK_AND_ASSIGN(farm::v1::LeaseResponse leased, Lease("a1"));
  const farm::v1::LeaseRef ref = leased.lease();

  farm::v1::StepStartedRequest started;
  *started.mutable_lease() = ref;
  EXPECT_THAT(
      Await<farm::v1::Ack>([&](auto cb) { scheduler_->StepStarted(started, cb, "intruder"); }),
      StatusIs(absl::StatusCode::kPermissionDenied));
  farm::v1::StepFinishedRequest finished;
  *finished.mutable_lease() = ref;
  finished.mutable_result()->set_state(farm::v1::STEP_SUCCEEDED);
  EXPECT_THAT(
      Await<farm::v1::Ack>([&](auto cb) { scheduler_->StepFinished(finished, cb, "intruder"); }),
      StatusIs(absl::StatusCode::kPermissionDenied));
  farm::v1::LogUploadChunk chunk;
  *chunk.mutable_lease() = ref;
  chunk.set_data("forged output\n");
  EXPECT_THAT(Await<int64_t>([&](auto cb) { scheduler_->AppendLog(chunk, cb, "intruder"); }),
              StatusIs(absl::StatusCode::kPermissionDenied));
  farm::v1::CompleteJobRequest complete;
  *complete.mutable_lease() = ref;
  complete.set_outcome(farm::v1::ATTEMPT_FAILED);
  EXPECT_THAT(Await<farm::v1::CompleteJobResponse>(
                  [&](auto cb) { scheduler_->CompleteJob(complete, cb, "intruder"); }),
              StatusIs(absl::StatusCode::kPermissionDenied));

  // Nothing changed: the job still runs its first attempt, its step pending, no output.
  farm::v1::Job job = Job(id);
  EXPECT_EQ(job.state(), farm::v1::RUNNING);
  ASSERT_EQ(job.attempts_size(), 1);
  EXPECT_EQ(job.attempts(0).steps(0).state(), farm::v1::STEP_PENDING);
  EXPECT_THAT(Append(ref, 0, 0, ""), IsOkAndHolds(0));

  // The holder itself is served.
  EXPECT_OK(Await<farm::v1::Ack>([&](auto cb) { scheduler_->StepStarted(started, cb, "a1"); }));
  EXPECT_OK(Await<farm::v1::CompleteJobResponse>([&](auto cb) {
    complete.set_outcome(farm::v1::ATTEMPT_SUCCEEDED);
    scheduler_->CompleteJob(complete, cb, "a1");
  }));
  EXPECT_EQ(Job(id).state(), farm::v1::SUCCEEDED);
}

TEST_F(SchedulerTest, ListIsNewestFirstWithStateFilterAndPages) {
  for (int i = 0; i < 5; ++i) Submit(Spec("j" + std::to_string(i)));
  ASSERT_OK(Await<farm::v1::Job>([&](auto cb) { scheduler_->Cancel("2", cb); }));
  farm::v1::ListJobsRequest req;
  req.set_limit(2);
  ASSERT_OK_AND_ASSIGN(auto page1, scheduler_->ListJobs(req));
  ASSERT_EQ(page1.jobs_size(), 2);
  EXPECT_EQ(page1.jobs(0).id(), "5");
  EXPECT_EQ(page1.jobs(1).id(), "4");
  req.set_page_token(page1.next_page_token());
  ASSERT_OK_AND_ASSIGN(auto page2, scheduler_->ListJobs(req));
  EXPECT_EQ(page2.jobs(0).id(), "3");
  farm::v1::ListJobsRequest cancelled;
  cancelled.set_state(farm::v1::CANCELLED);
  ASSERT_OK_AND_ASSIGN(auto c, scheduler_->ListJobs(cancelled));
  ASSERT_EQ(c.jobs_size(), 1);
  EXPECT_EQ(c.jobs(0).id(), "2");
  farm::v1::ListJobsRequest bad;
  bad.set_limit(5000);
  EXPECT_THAT(scheduler_->ListJobs(bad), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(SchedulerTest, PagesOfBigJobsStayUnderTheMessageLimit) {
  // Five jobs of ~3 MiB each: a page holds what fits in 8 MiB, and every job comes back once.
  for (int i = 0; i < 5; ++i) {
    farm::v1::JobSpec spec = Spec("big" + std::to_string(i));
    spec.mutable_steps(0)->set_run("# " + std::string(200 << 10, 'x'));
    for (int s = 1; s < 15; ++s) {
      *spec.add_steps() = spec.steps(0);
      spec.mutable_steps(s)->set_name("s" + std::to_string(s));
    }
    Submit(spec);
  }
  std::vector<std::string> ids;
  farm::v1::ListJobsRequest req;
  req.set_limit(1000);
  for (int pages = 0; pages < 10; ++pages) {
    ASSERT_OK_AND_ASSIGN(auto page, scheduler_->ListJobs(req));
    EXPECT_LE(page.ByteSizeLong(), size_t{8 << 20} + (1 << 10));
    EXPECT_GE(page.jobs_size(), 1);
    for (const auto& job : page.jobs()) ids.push_back(job.id());
    if (page.next_page_token().empty()) break;
    req.set_page_token(page.next_page_token());
  }
  EXPECT_THAT(ids, ::testing::ElementsAre("5", "4", "3", "2", "1"));
}

}  // namespace
}  // namespace farm::coordinator
