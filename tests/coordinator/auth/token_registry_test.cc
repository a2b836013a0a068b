#include "coordinator/auth/token_registry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "coordinator/store/memory_store.h"
#include "tests/testing/status_matchers.h"

namespace farm::coordinator {
namespace {

using ::farm::testing::StatusIs;
using ::farm::testing::StatusIsWithMessage;
using ::testing::HasSubstr;
using ::testing::Not;

class TokenRegistryTest : public ::testing::Test {
 protected:
  MemoryStore store_;
  common::FakeClock clock_;
  TokenRegistry tokens_{&store_, &clock_};
};

TEST_F(TokenRegistryTest, ACreatedTokenAuthenticatesAsItsRoleAndName) {
  ASSERT_OK_AND_ASSIGN(TokenRegistry::Created created,
                       tokens_.Create("ci", "submitter", 0, "alice"));
  EXPECT_TRUE(absl::StartsWith(created.token, "farm_"));
  EXPECT_EQ(created.token.size(), 5u + 43u);  // 256 random bits, base64url
  EXPECT_EQ(created.info.id().size(), 12u);
  EXPECT_EQ(created.info.created_by(), "alice");
  ASSERT_OK_AND_ASSIGN(Principal who, tokens_.Authenticate(created.token));
  EXPECT_EQ(who.role, Role::kSubmitter);
  EXPECT_EQ(who.name, "ci");
}

TEST_F(TokenRegistryTest, TheTokenItselfIsNeverStored) {
  ASSERT_OK_AND_ASSIGN(TokenRegistry::Created created, tokens_.Create("ci", "viewer", 0, ""));
  const std::string secret = created.token.substr(5);
  ASSERT_OK(store_.Scan(
      Cf::kTokens, "", "",
      [&](absl::string_view key, absl::string_view value) {
        EXPECT_THAT(std::string(key), Not(HasSubstr(secret)));
        EXPECT_THAT(std::string(value), Not(HasSubstr(secret)));
        return true;
      },
      /*reverse=*/false));
  for (const farm::v1::TokenInfo& info : tokens_.List()) {
    EXPECT_THAT(info.DebugString(), Not(HasSubstr(secret)));
  }
}

TEST_F(TokenRegistryTest, AnUnknownTokenIsRefusedWithoutEchoingIt) {
  absl::StatusOr<Principal> who = tokens_.Authenticate("farm_not-a-real-token");
  EXPECT_THAT(who.status(), StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_THAT(std::string(who.status().message()), Not(HasSubstr("not-a-real-token")));
}

TEST_F(TokenRegistryTest, AnExpiredTokenIsRefusedFromItsExpiryOn) {
  ASSERT_OK_AND_ASSIGN(TokenRegistry::Created created,
                       tokens_.Create("short", "viewer", 60'000, ""));
  EXPECT_OK(tokens_.Authenticate(created.token).status());
  clock_.AdvanceMs(59'999);
  EXPECT_OK(tokens_.Authenticate(created.token).status());
  clock_.AdvanceMs(1);
  EXPECT_THAT(tokens_.Authenticate(created.token).status(),
              StatusIsWithMessage(absl::StatusCode::kUnauthenticated, HasSubstr("expired")));
}

TEST_F(TokenRegistryTest, ARevokedTokenIsRefusedOnItsNextUse) {
  ASSERT_OK_AND_ASSIGN(TokenRegistry::Created keep, tokens_.Create("keep", "viewer", 0, ""));
  ASSERT_OK_AND_ASSIGN(TokenRegistry::Created gone, tokens_.Create("gone", "admin", 0, ""));
  ASSERT_OK_AND_ASSIGN(farm::v1::TokenInfo revoked, tokens_.Revoke(gone.info.id()));
  EXPECT_EQ(revoked.name(), "gone");
  EXPECT_THAT(tokens_.Authenticate(gone.token).status(),
              StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_OK(tokens_.Authenticate(keep.token).status());
  EXPECT_THAT(tokens_.Revoke(gone.info.id()).status(), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(TokenRegistryTest, TokensAndRevocationsSurviveARestart) {
  ASSERT_OK_AND_ASSIGN(TokenRegistry::Created keep, tokens_.Create("keep", "agent", 0, ""));
  ASSERT_OK_AND_ASSIGN(TokenRegistry::Created gone, tokens_.Create("gone", "viewer", 0, ""));
  ASSERT_OK(tokens_.Revoke(gone.info.id()).status());
  TokenRegistry restarted(&store_, &clock_);
  ASSERT_OK(restarted.Load());
  ASSERT_OK_AND_ASSIGN(Principal who, restarted.Authenticate(keep.token));
  EXPECT_EQ(who.role, Role::kAgent);
  EXPECT_EQ(who.name, "keep");
  EXPECT_THAT(restarted.Authenticate(gone.token).status(),
              StatusIs(absl::StatusCode::kUnauthenticated));
  ASSERT_EQ(restarted.List().size(), 1u);
}

TEST_F(TokenRegistryTest, BadRequestsNameTheProblemAndCreateNothing) {
  EXPECT_THAT(tokens_.Create("ci", "root", 0, "").status(),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("unknown role")));
  EXPECT_THAT(tokens_.Create("", "viewer", 0, "").status(),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
  EXPECT_THAT(
      tokens_.Create("a b", "viewer", 0, "").status(),
      StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("letters, digits")));
  EXPECT_THAT(tokens_.Create("ci", "viewer", -1, "").status(),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("ttl")));
  EXPECT_THAT(tokens_.Revoke("xyz").status(),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("12 hex digits")));
  EXPECT_TRUE(tokens_.List().empty());
}

TEST_F(TokenRegistryTest, AFailedWriteCreatesNoToken) {
  store_.FailWrites(absl::UnavailableError("disk gone"));
  EXPECT_THAT(tokens_.Create("ci", "viewer", 0, "").status(),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_TRUE(tokens_.List().empty());
}

}  // namespace
}  // namespace farm::coordinator
