#include "common/config_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

// The settings of a pretend binary.
ABSL_FLAG(std::string, cfgtest_name, "dflt", "a string");
ABSL_FLAG(int32_t, cfgtest_slots, 1, "an int32");
ABSL_FLAG(int64_t, cfgtest_bytes, 100, "an int64");
ABSL_FLAG(bool, cfgtest_on, false, "a bool");
ABSL_FLAG(std::vector<std::string>, cfgtest_list, {}, "a list");
ABSL_FLAG(std::string, cfgtest_token, "", "a secret");
ABSL_FLAG(std::string, cfgtest_config, "", "the config file itself");

namespace farm::common {
namespace {

using ::farm::testing::StatusIs;
using ::farm::testing::StatusIsWithMessage;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

class ConfigFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::make_unique<farm::testing::TempDir>(*farm::testing::TempDir::Create());
  }

  // A config file holding `text`, and a ConfigFile over it.
  ConfigFile Make(const std::string& text, absl::flat_hash_set<std::string> command_line = {}) {
    path_ = dir_->Join("farm.yaml");
    std::ofstream(path_, std::ios::trunc) << text;
    ConfigFileOptions options;
    options.command_line = std::move(command_line);
    options.command_line_only = {"cfgtest_config"};
    options.secret = {{"cfgtest_token", "cfgtest_token_file"}};
    return ConfigFile(path_, options);
  }
  void Rewrite(const std::string& text) { std::ofstream(path_, std::ios::trunc) << text; }

  absl::FlagSaver saver_;  // every test leaves the flags as it found them
  std::unique_ptr<farm::testing::TempDir> dir_;
  std::string path_;
};

TEST_F(ConfigFileTest, LoadSetsTheFlagsTheFileNames) {
  ConfigFile config = Make(
      "# a comment\n"
      "cfgtest_name: build-7\n"
      "cfgtest_slots: 4\n"
      "cfgtest_bytes: 10737418240\n"
      "cfgtest_on: true\n"
      "cfgtest_list: [a, b]\n");
  ASSERT_OK(config.Load());
  EXPECT_EQ(absl::GetFlag(FLAGS_cfgtest_name), "build-7");
  EXPECT_EQ(absl::GetFlag(FLAGS_cfgtest_slots), 4);
  EXPECT_EQ(absl::GetFlag(FLAGS_cfgtest_bytes), int64_t{10} << 30);
  EXPECT_TRUE(absl::GetFlag(FLAGS_cfgtest_on));
  EXPECT_THAT(absl::GetFlag(FLAGS_cfgtest_list), ElementsAre("a", "b"));
}

TEST_F(ConfigFileTest, TheCommandLineWins) {
  absl::SetFlag(&FLAGS_cfgtest_slots, 9);  // as ParseCommandLine would have
  ConfigFile config = Make("cfgtest_slots: lots\ncfgtest_name: x\n", {"cfgtest_slots"});
  ASSERT_OK(config.Load());
  EXPECT_EQ(absl::GetFlag(FLAGS_cfgtest_slots), 9);
  EXPECT_EQ(absl::GetFlag(FLAGS_cfgtest_name), "x");
}

TEST_F(ConfigFileTest, AnEmptyOrCommentedFileKeepsTheDefaults) {
  ASSERT_OK(Make("").Load());
  ASSERT_OK(Make("# cfgtest_slots: 4\n").Load());
  EXPECT_EQ(absl::GetFlag(FLAGS_cfgtest_slots), 1);
}

TEST_F(ConfigFileTest, ErrorsNameTheFileTheLineAndTheKey) {
  struct Case {
    std::string text;
    std::string message;  // after "PATH:"
  };
  const std::vector<Case> cases = {
      {"cfgtest_name: a\n\ncfgtest_nope: 1\n", "3: key 'cfgtest_nope': unknown setting"},
      {"cfgtest_slots: many\n", "1: key 'cfgtest_slots': expected a 32-bit integer, not \"many\""},
      {"cfgtest_slots: 99999999999\n",
       "1: key 'cfgtest_slots': expected a 32-bit integer, not \"99999999999\""},
      {"cfgtest_on: maybe\n", "1: key 'cfgtest_on': expected true or false, not \"maybe\""},
      {"cfgtest_bytes: 1.5\n", "1: key 'cfgtest_bytes': expected a 64-bit integer, not \"1.5\""},
      {"cfgtest_name:\n  a: 1\n", "2: key 'cfgtest_name': expected a value, not a mapping"},
      {"cfgtest_name: [a, b]\n", "1: key 'cfgtest_name': expected one value, not a list"},
      {"cfgtest_list: [a, 'b,c']\n",
       "1: key 'cfgtest_list': a list holds plain values (without commas)"},
      {"cfgtest_name:\n", "1: key 'cfgtest_name': has no value"},
      {"cfgtest_name: a\ncfgtest_name: b\n",
       "2: key 'cfgtest_name': given twice (first on line 1)"},
      {"cfgtest_config: other.yaml\n",
       "1: key 'cfgtest_config': can be given on the command line only"},
      {"cfgtest_token: s3cret\n",
       "1: key 'cfgtest_token': a secret is never written in a config file: use "
       "cfgtest_token_file (a file that holds it)"},
      {"flagfile: /etc/x\n", "1: key 'flagfile': unknown setting"},
  };
  for (const Case& c : cases) {
    ConfigFile config = Make(c.text);
    EXPECT_THAT(config.Load(),
                StatusIsWithMessage(absl::StatusCode::kInvalidArgument, path_ + ":" + c.message))
        << c.text;
  }
}

TEST_F(ConfigFileTest, AFileThatIsNoMappingIsRefused) {
  EXPECT_THAT(Make("cfgtest_name: [\n").Load(),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("malformed YAML")));
  EXPECT_THAT(Make("- a\n- b\n").Load(),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                  HasSubstr(":1: a config file is a mapping of settings")));
  ConfigFile missing(dir_->Join("missing.yaml"), {});
  EXPECT_THAT(missing.Load(),
              StatusIsWithMessage(absl::StatusCode::kNotFound, HasSubstr("missing.yaml")));
}

TEST_F(ConfigFileTest, AFailedLoadChangesNoFlag) {
  ConfigFile config = Make("cfgtest_name: changed\ncfgtest_slots: x\n");
  EXPECT_THAT(config.Load(), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(absl::GetFlag(FLAGS_cfgtest_name), "dflt");
}

TEST_F(ConfigFileTest, ReloadReportsChangesAndRestoresRemovedSettingsToTheirDefault) {
  ConfigFile config = Make("cfgtest_name: one\ncfgtest_slots: 4\n");
  ASSERT_OK(config.Load());
  Rewrite("cfgtest_name: two\ncfgtest_on: true\n");
  ASSERT_OK_AND_ASSIGN(std::vector<FlagChange> changes, config.Reload());
  std::vector<std::string> described;
  for (const FlagChange& c : changes) {
    described.push_back(c.name + ":" + c.old_value + "->" + c.new_value);
  }
  EXPECT_THAT(described, UnorderedElementsAre("cfgtest_name:one->two", "cfgtest_slots:4->1",
                                              "cfgtest_on:false->true"));
  EXPECT_EQ(absl::GetFlag(FLAGS_cfgtest_slots), 1);
  for (const FlagChange& c : changes) {
    if (c.name == "cfgtest_on") config.Revert(c);
  }
  EXPECT_FALSE(absl::GetFlag(FLAGS_cfgtest_on));
  EXPECT_EQ(absl::GetFlag(FLAGS_cfgtest_name), "two");
}

TEST_F(ConfigFileTest, ABadReloadChangesNothing) {
  ConfigFile config = Make("cfgtest_name: one\n");
  ASSERT_OK(config.Load());
  Rewrite("cfgtest_name: two\ncfgtest_slots: lots\n");
  EXPECT_THAT(config.Reload(),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                  HasSubstr(":2: key 'cfgtest_slots': expected a 32-bit integer")));
  EXPECT_EQ(absl::GetFlag(FLAGS_cfgtest_name), "one");
}

TEST_F(ConfigFileTest, ReloadLeavesCommandLineFlagsAlone) {
  absl::SetFlag(&FLAGS_cfgtest_slots, 9);
  ConfigFile config = Make("cfgtest_slots: 4\n", {"cfgtest_slots"});
  ASSERT_OK(config.Load());
  Rewrite("cfgtest_slots: 5\n");
  ASSERT_OK_AND_ASSIGN(std::vector<FlagChange> changes, config.Reload());
  EXPECT_TRUE(changes.empty());
  EXPECT_EQ(absl::GetFlag(FLAGS_cfgtest_slots), 9);
}

TEST_F(ConfigFileTest, AttributeNamesTheLineOfTheFlagAnOptionErrorIsAbout) {
  ConfigFile config = Make("cfgtest_on: true\ncfgtest_name: bad\n");
  ASSERT_OK(config.Load());
  EXPECT_EQ(
      config.Attribute(absl::InvalidArgumentError("--cfgtest_name: not a duration")).message(),
      path_ + ":2: key 'cfgtest_name': not a duration");
  EXPECT_EQ(config.Attribute(absl::InvalidArgumentError("--cfgtest_name must be short")).message(),
            path_ + ":2: key 'cfgtest_name': must be short");
  // Not from the file: unchanged.
  EXPECT_EQ(config.Attribute(absl::InvalidArgumentError("--cfgtest_slots: x")).message(),
            "--cfgtest_slots: x");
  EXPECT_EQ(config.Attribute(absl::InvalidArgumentError("other")).message(), "other");
}

TEST(CommandLineFlagNamesTest, TakesEveryFormAbseilParses) {
  std::vector<std::string> args = {
      "prog", "--cfgtest_name=x", "-cfgtest_slots", "3", "--nocfgtest_on",
      "--",   "--cfgtest_bytes=1"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  EXPECT_THAT(CommandLineFlagNames(static_cast<int>(argv.size()), argv.data()),
              UnorderedElementsAre("cfgtest_name", "cfgtest_slots", "cfgtest_on"));
}

}  // namespace
}  // namespace farm::common
