// `farmctl certs init` through RunFarmctl, as a user runs it: what it writes and prints, its
// refusals and their exit codes. What the certificates themselves say is tests/common's.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "common/certs.h"
#include "common/clock.h"
#include "coordinator/cli/commands.h"
#include "coordinator/cli/options.h"
#include "tests/coordinator/cli/usage_error.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace farm::cli {
namespace {

using ::farm::testing::FileExists;
using ::farm::testing::ReadFile;
using ::farm::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::StartsWith;

Result Farmctl(const std::vector<std::string>& args) {
  common::FakeClock clock;
  std::ostringstream out;
  std::ostringstream err;
  std::istringstream in;
  CliIo io{out, err, in, clock, absl::UTCTimeZone()};
  const int code = RunFarmctl(args, "", io);
  return {code, out.str(), err.str()};
}

const char* const kFiles[] = {"ca.crt",    "ca.key",    "coordinator.crt", "coordinator.key",
                              "admin.crt", "admin.key", "secrets.key"};

class CertsInitCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<TempDir> temp = TempDir::Create("certs-cli-test");
    ASSERT_TRUE(temp.ok()) << temp.status();
    temp_ = std::make_unique<TempDir>(*std::move(temp));
    dir_ = temp_->Join("tls");
  }

  std::map<std::string, std::string> Contents() {
    std::map<std::string, std::string> contents;
    for (const char* name : kFiles) contents[name] = ReadFile(dir_ + "/" + name).value_or("");
    return contents;
  }

  // Whether the coordinator certificate names `host` (a DNS name or an IP address).
  bool CoordinatorNames(const std::string& host) {
    const std::string pem = ReadFile(dir_ + "/coordinator.crt").value_or("");
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    const bool named =
        cert != nullptr && (X509_check_host(cert, host.c_str(), 0, 0, nullptr) == 1 ||
                            X509_check_ip_asc(cert, host.c_str(), 0) == 1);
    X509_free(cert);
    return named;
  }

  std::unique_ptr<TempDir> temp_;
  std::string dir_;
};

TEST_F(CertsInitCommandTest, WritesTheFilesAndSaysWhatEachIsFor) {
  const Result r = Farmctl({"certs", "init", "--dir", dir_});
  ASSERT_EQ(r.code, kExitSucceeded) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_THAT(r.out, StartsWith("wrote to " + dir_ + " (coordinator hosts: localhost, 127.0.0.1)"));
  for (const char* name : kFiles) {
    EXPECT_TRUE(FileExists(dir_ + "/" + name)) << name;
    EXPECT_THAT(r.out, HasSubstr(std::string("\n  ") + name + " ")) << name;
  }
  EXPECT_TRUE(CoordinatorNames("localhost"));
  EXPECT_TRUE(CoordinatorNames("127.0.0.1"));
}

TEST_F(CertsInitCommandTest, HostsAndJsonOutput) {
  const Result r =
      Farmctl({"--output=json", "--dir=" + dir_, "certs", "init", "--hosts=farm.lan,10.1.2.3"});
  ASSERT_EQ(r.code, kExitSucceeded) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"farm.lan\""));
  EXPECT_THAT(r.out, HasSubstr("\"secrets.key\""));
  EXPECT_TRUE(CoordinatorNames("farm.lan"));
  EXPECT_TRUE(CoordinatorNames("10.1.2.3"));
  EXPECT_FALSE(CoordinatorNames("localhost"));
  EXPECT_FALSE(CoordinatorNames("127.0.0.1"));
}

TEST_F(CertsInitCommandTest, ASecondRunRefusesWithExit4AndChangesNothing) {
  ASSERT_EQ(Farmctl({"certs", "init", "--dir", dir_}).code, kExitSucceeded);
  const std::map<std::string, std::string> before = Contents();
  const Result r = Farmctl({"certs", "init", "--dir", dir_, "--hosts=other.lan"});
  EXPECT_EQ(r.code, kExitError);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "farmctl: certs init: " + dir_ +
                       "/ca.crt already exists; nothing was written (certs init never "
                       "overwrites)\n");
  EXPECT_EQ(Contents(), before);
}

TEST_F(CertsInitCommandTest, UsageErrorsExit64AndWriteNothing) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"certs", "init", "--dir", dir_, "--hosts=a.lan,,b.lan"},
       "farmctl: --hosts: a host name is empty (run 'farmctl help certs init')\n"},
      {{"certs", "init", "--dir", dir_, "--hosts="},
       "farmctl: --hosts: a host name is empty (run 'farmctl help certs init')\n"},
      {{"certs", "init", "--dir", dir_, "--hosts=farm lan"},
       "farmctl: --hosts: host \"farm lan\" contains a space (run 'farmctl help certs init')\n"},
      {{"certs", "init", "--dir", dir_, "--hosts=farm\x1b.lan"},
       "farmctl: --hosts: host \"farm\\x1b.lan\" contains a control character (run 'farmctl "
       "help certs init')\n"},
      {{"certs", "init"},
       "farmctl: certs init needs --dir DIR: farmctl certs init --dir=DIR (run 'farmctl help "
       "certs init')\n"},
      {{"certs", "init", "--dir="},
       "farmctl: --dir needs a directory (run 'farmctl help certs "
       "init')\n"},
      {{"certs", "init", "--dir", dir_, "extra"},
       "farmctl: unexpected argument 'extra' for certs init (run 'farmctl help certs init')\n"},
      {{"certs"}, "farmctl: 'certs' needs a subcommand: init (run 'farmctl help certs')\n"},
      {{"certs", "make"},
       "farmctl: unknown subcommand 'certs make' (expected init) (run 'farmctl help certs')\n"},
      {{"get", "1", "--dir", dir_},
       "farmctl: 'get' does not take --dir (run 'farmctl help get')\n"},
  };
  for (const auto& [args, message] : cases) {
    const Result r = Farmctl(args);
    EXPECT_EQ(r.code, kExitUsage) << ::testing::PrintToString(args);
    EXPECT_EQ(r.err, message) << ::testing::PrintToString(args);
  }
  EXPECT_FALSE(FileExists(dir_));
}

TEST(CertsUsageTest, HelpAndTheOverviewShowTheCommand) {
  EXPECT_THAT(UsageText(), HasSubstr("\n  certs init --dir=DIR [--hosts=NAMES]  make a CA"));
  const Result help = Farmctl({"help", "certs"});
  EXPECT_EQ(help.code, kExitSucceeded);
  EXPECT_THAT(help.out, HasSubstr("farmctl certs init --dir=DIR [--hosts=NAMES]"));
  EXPECT_THAT(help.out, HasSubstr("--hosts=NAMES"));
  const Result one = Farmctl({"certs", "init", "--help"});
  EXPECT_THAT(one.out, HasSubstr("never overwrites"));
  EXPECT_THAT(one.out, HasSubstr("--dir=DIR"));
  // The cas group's usage is unchanged by the groups becoming general.
  EXPECT_THAT(CommandUsageText("cas"), HasSubstr("farmctl cas get HASH/SIZE -o FILE"));
  EXPECT_THAT(CommandUsageText("cas"), HasSubstr("-o DIR|FILE"));
  EXPECT_THAT(CommandUsageText("cas"), ::testing::Not(HasSubstr("--hosts")));
}

}  // namespace
}  // namespace farm::cli
