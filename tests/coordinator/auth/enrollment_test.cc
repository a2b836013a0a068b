// Enrollment tokens in the token registry: single use (also across a restart, and under a race),
// expiry, never a credential themselves, only their hash stored; and the labels an enrolled
// agent may claim.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "coordinator/auth/token_registry.h"
#include "coordinator/store/memory_store.h"
#include "tests/testing/status_matchers.h"

namespace farm::coordinator {
namespace {

using ::farm::testing::StatusIs;
using ::farm::testing::StatusIsWithMessage;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

class EnrollmentTest : public ::testing::Test {
 protected:
  TokenRegistry::Created NewEnrollment(std::map<std::string, std::string> labels = {},
                                       int64_t ttl_ms = 0) {
    absl::StatusOr<TokenRegistry::Created> created =
        tokens_.CreateEnrollment(labels, ttl_ms, "root");
    EXPECT_OK(created);
    return created.ok() ? *created : TokenRegistry::Created{};
  }

  MemoryStore store_;
  common::FakeClock clock_;
  TokenRegistry tokens_{&store_, &clock_};
};

TEST_F(EnrollmentTest, AnEnrollmentTokenIsExchangedOnceForAnAgentCredential) {
  TokenRegistry::Created enrollment = NewEnrollment({{"pool", "x"}});
  EXPECT_EQ(enrollment.info.kind(), "enrollment");
  ASSERT_OK_AND_ASSIGN(TokenRegistry::Created credential,
                       tokens_.Enroll(enrollment.token, "b1", "req-1"));
  ASSERT_OK_AND_ASSIGN(Principal who, tokens_.Authenticate(credential.token));
  EXPECT_EQ(who.role, Role::kAgent);
  EXPECT_EQ(who.name, "b1");
  EXPECT_EQ(who.pinned_labels, (std::map<std::string, std::string>{{"pool", "x"}}));

  // A second use, by anyone, is refused, naming the token's id and who used it.
  EXPECT_THAT(tokens_.Enroll(enrollment.token, "b2", "req-2").status(),
              StatusIsWithMessage(absl::StatusCode::kPermissionDenied,
                                  AllOf(HasSubstr(enrollment.info.id()), HasSubstr("already used"),
                                        HasSubstr("b1"))));
  EXPECT_THAT(tokens_.Enroll(enrollment.token, "b1", "req-other").status(),
              StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_OK(tokens_.Authenticate(credential.token).status());
}

TEST_F(EnrollmentTest, AnEnrollmentTokenIsNeverACredential) {
  TokenRegistry::Created enrollment = NewEnrollment();
  EXPECT_THAT(tokens_.Authenticate(enrollment.token).status(),
              StatusIsWithMessage(absl::StatusCode::kUnauthenticated,
                                  HasSubstr("is an enrollment token, not a credential")));
  // Nor is a credential an enrollment token.
  ASSERT_OK_AND_ASSIGN(TokenRegistry::Created ci, tokens_.Create("ci", "admin", 0, ""));
  EXPECT_THAT(tokens_.Enroll(ci.token, "b1", "r").status(),
              StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_THAT(tokens_.Enroll("farm_made-up", "b1", "r").status(),
              StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST_F(EnrollmentTest, ItExpiresAfterItsTtlWhichIsBounded) {
  TokenRegistry::Created enrollment = NewEnrollment();
  EXPECT_EQ(enrollment.info.expires_ms() - enrollment.info.created_ms(),
            TokenRegistry::kDefaultEnrollTtlMs);
  clock_.AdvanceMs(TokenRegistry::kDefaultEnrollTtlMs);
  EXPECT_THAT(tokens_.Enroll(enrollment.token, "b1", "r").status(),
              StatusIsWithMessage(absl::StatusCode::kUnauthenticated, HasSubstr("expired")));

  TokenRegistry::Created longer = NewEnrollment({}, TokenRegistry::kMaxEnrollTtlMs);
  clock_.AdvanceMs(TokenRegistry::kMaxEnrollTtlMs - 1);
  EXPECT_OK(tokens_.Enroll(longer.token, "b1", "r").status());
  EXPECT_THAT(tokens_.CreateEnrollment({}, TokenRegistry::kMaxEnrollTtlMs + 1, "").status(),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("7 days")));
  EXPECT_THAT(tokens_.CreateEnrollment({}, -1, "").status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(EnrollmentTest, ARetryOfTheSameEnrollmentGetsAFreshCredentialInPlaceOfTheFirst) {
  TokenRegistry::Created enrollment = NewEnrollment();
  ASSERT_OK_AND_ASSIGN(TokenRegistry::Created first, tokens_.Enroll(enrollment.token, "b1", "r1"));
  ASSERT_OK_AND_ASSIGN(TokenRegistry::Created again, tokens_.Enroll(enrollment.token, "b1", "r1"));
  EXPECT_NE(first.token, again.token);
  EXPECT_THAT(tokens_.Authenticate(first.token).status(),
              StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_OK(tokens_.Authenticate(again.token).status());
  int agent_credentials = 0;
  for (const farm::v1::TokenInfo& info : tokens_.List()) {
    if (info.kind().empty()) ++agent_credentials;
  }
  EXPECT_EQ(agent_credentials, 1);
}

TEST_F(EnrollmentTest, ItStaysUsedAcrossARestart) {
  TokenRegistry::Created enrollment = NewEnrollment();
  ASSERT_OK(tokens_.Enroll(enrollment.token, "b1", "r1").status());
  TokenRegistry restarted(&store_, &clock_);
  ASSERT_OK(restarted.Load());
  EXPECT_THAT(restarted.Enroll(enrollment.token, "b2", "r2").status(),
              StatusIsWithMessage(absl::StatusCode::kPermissionDenied, HasSubstr("already used")));
  EXPECT_THAT(restarted.Authenticate(enrollment.token).status(),
              StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST_F(EnrollmentTest, AFailedWriteUsesNothing) {
  TokenRegistry::Created enrollment = NewEnrollment();
  store_.FailWrites(absl::UnavailableError("disk gone"));
  EXPECT_THAT(tokens_.Enroll(enrollment.token, "b1", "r1").status(),
              StatusIs(absl::StatusCode::kUnavailable));
  store_.FailWrites(absl::OkStatus());
  EXPECT_OK(tokens_.Enroll(enrollment.token, "b2", "r2").status());
}

TEST_F(EnrollmentTest, OfAgentsRacingWithOneTokenExactlyOneWins) {
  TokenRegistry::Created enrollment = NewEnrollment();
  std::atomic<int> won{0}, refused{0};
  std::vector<std::thread> racers;
  for (int i = 0; i < 8; ++i) {
    racers.emplace_back([&, i] {
      absl::StatusOr<TokenRegistry::Created> r =
          tokens_.Enroll(enrollment.token, absl::StrCat("racer", i), absl::StrCat("r", i));
      if (r.ok()) ++won;
      if (absl::IsPermissionDenied(r.status())) ++refused;
    });
  }
  for (std::thread& t : racers) t.join();
  EXPECT_EQ(won.load(), 1);
  EXPECT_EQ(refused.load(), 7);
}

TEST_F(EnrollmentTest, ANameThatHasACredentialAlreadyIsRefused) {
  ASSERT_OK(tokens_.Create("b1", "agent", 0, "").status());
  TokenRegistry::Created enrollment = NewEnrollment();
  EXPECT_THAT(tokens_.Enroll(enrollment.token, "b1", "r").status(),
              StatusIsWithMessage(absl::StatusCode::kAlreadyExists, HasSubstr("b1")));
  EXPECT_THAT(tokens_.Enroll(enrollment.token, "no spaces", "r").status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_OK(tokens_.Enroll(enrollment.token, "b2", "r").status());
}

TEST_F(EnrollmentTest, OnlyHashesAreStored) {
  TokenRegistry::Created enrollment = NewEnrollment();
  ASSERT_OK_AND_ASSIGN(TokenRegistry::Created credential,
                       tokens_.Enroll(enrollment.token, "b1", "r1"));
  int records = 0;
  ASSERT_OK(store_.Scan(
      Cf::kTokens, "", "",
      [&](absl::string_view key, absl::string_view value) {
        ++records;
        for (const std::string& secret : {enrollment.token, credential.token}) {
          EXPECT_THAT(std::string(key), Not(HasSubstr(secret.substr(5))));
          EXPECT_THAT(std::string(value), Not(HasSubstr(secret.substr(5))));
        }
        return true;
      },
      /*reverse=*/false));
  EXPECT_EQ(records, 2);
}

TEST(ClaimedLabelsTest, AnAgentClaimsOnlyItsPinnedLabelsAndItsMachinesOsAndArch) {
  Principal free{Role::kAgent, "a", {}};
  EXPECT_OK(CheckClaimedLabels(free, {{"gpu", "yes"}}));
  Principal pinned{Role::kAgent, "b", {{"pool", "x"}}};
  EXPECT_OK(CheckClaimedLabels(pinned, {{"pool", "x"}, {"os", "linux"}, {"arch", "amd64"}}));
  EXPECT_OK(CheckClaimedLabels(pinned, {}));
  EXPECT_THAT(CheckClaimedLabels(pinned, {{"pool", "y"}}),
              StatusIsWithMessage(absl::StatusCode::kPermissionDenied,
                                  AllOf(HasSubstr("pool=y"), HasSubstr("pins pool=x"))));
  EXPECT_THAT(CheckClaimedLabels(pinned, {{"pool", "x"}, {"gpu", "yes"}}),
              StatusIsWithMessage(absl::StatusCode::kPermissionDenied, HasSubstr("gpu=yes")));
  Principal pinned_os{Role::kAgent, "c", {{"os", "linux"}}};
  EXPECT_THAT(CheckClaimedLabels(pinned_os, {{"os", "darwin"}}),
              StatusIs(absl::StatusCode::kPermissionDenied));
}

}  // namespace
}  // namespace farm::coordinator
