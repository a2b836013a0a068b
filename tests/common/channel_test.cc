#include "common/channel.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace farm::common {
namespace {

using ::farm::testing::StatusIsWithMessage;
using ::testing::HasSubstr;

constexpr char kPem[] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

class LoadClientSecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(testing::WriteFile(dir_.Join("ca.crt"), kPem));
    ASSERT_OK(testing::WriteFile(dir_.Join("not.pem"), "hello"));
    ASSERT_OK(testing::WriteFile(dir_.Join("token"), "farm_abc123\n"));
    ASSERT_OK(testing::WriteFile(dir_.Join("blank"), " \n"));
    ASSERT_OK(testing::WriteFile(dir_.Join("spaced"), "farm_a b\n"));
  }
  absl::StatusOr<ClientSecurity> Load(const ClientSecurityFlags& flags) {
    return LoadClientSecurity(flags, [this](const char* name) -> const char* {
      auto it = env_.find(name);
      return it == env_.end() ? nullptr : it->second.c_str();
    });
  }

  testing::TempDir dir_ = *testing::TempDir::Create("channel-test");
  std::map<std::string, std::string> env_;
};

TEST_F(LoadClientSecurityTest, TlsNeedsACaAndSaysHowToGetOne) {
  EXPECT_THAT(Load({}), StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                            HasSubstr("--tls_ca (or FARM_TLS_CA)")));
  ASSERT_OK_AND_ASSIGN(ClientSecurity s, Load({.tls_ca = dir_.Join("ca.crt")}));
  EXPECT_FALSE(s.insecure);
  EXPECT_EQ(s.ca_pem, kPem);
  EXPECT_TRUE(s.token.empty());
}

TEST_F(LoadClientSecurityTest, TheEnvironmentStandsInForMissingFlags) {
  env_["FARM_TLS_CA"] = dir_.Join("ca.crt");
  env_["FARM_TOKEN"] = "farm_fromenv";
  ASSERT_OK_AND_ASSIGN(ClientSecurity s, Load({}));
  EXPECT_EQ(s.ca_pem, kPem);
  EXPECT_EQ(s.token, "farm_fromenv");
  // A flag wins over the environment.
  ASSERT_OK_AND_ASSIGN(s, Load({.token_file = dir_.Join("token")}));
  EXPECT_EQ(s.token, "farm_abc123");
}

TEST_F(LoadClientSecurityTest, InsecureTakesNoTlsFlagsButIgnoresTheEnvironment) {
  env_["FARM_TOKEN"] = "farm_fromenv";
  ASSERT_OK_AND_ASSIGN(ClientSecurity s, Load({.insecure = true}));
  EXPECT_TRUE(s.insecure);
  EXPECT_TRUE(s.token.empty());
  EXPECT_THAT(
      Load({.insecure = true, .tls_ca = dir_.Join("ca.crt")}),
      StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("cannot be combined")));
}

TEST_F(LoadClientSecurityTest, BadFilesAreNamed) {
  EXPECT_THAT(
      Load({.tls_ca = dir_.Join("missing.crt")}),
      StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("--tls_ca: cannot read")));
  EXPECT_THAT(Load({.tls_ca = dir_.Join("not.pem")}),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("not a PEM")));
  EXPECT_THAT(Load({.tls_ca = dir_.Join("ca.crt"), .tls_cert = dir_.Join("ca.crt")}),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("go together")));
  EXPECT_THAT(Load({.tls_ca = dir_.Join("ca.crt"), .token_file = dir_.Join("blank")}),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
  EXPECT_THAT(Load({.tls_ca = dir_.Join("ca.crt"), .token_file = dir_.Join("spaced")}),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("whitespace")));
}

}  // namespace
}  // namespace farm::common
