// farmctl's admin agent commands: their command line (operands, --remove, usage errors), the
// admin group's help built from the command table, and how `agents` shows operators' labels.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "coordinator/cli/command_table.h"
#include "coordinator/cli/format.h"
#include "coordinator/cli/options.h"
#include "tests/coordinator/cli/usage_error.h"
#include "tests/testing/status_matchers.h"

namespace farm::cli {
namespace {

using ::testing::HasSubstr;

TEST(AdminAgentsParseTest, NameLabelsAndRemove) {
  ASSERT_OK_AND_ASSIGN(CliOptions o, ParseArgs({"admin", "drain", "a1"}, ""));
  EXPECT_EQ(o.command, Command::kAdminDrain);
  EXPECT_EQ(o.agent_name, "a1");
  ASSERT_OK_AND_ASSIGN(o, ParseArgs({"admin", "resume", "a1"}, ""));
  EXPECT_EQ(o.command, Command::kAdminResume);
  ASSERT_OK_AND_ASSIGN(o, ParseArgs({"admin", "remove", "a1", "--output=json"}, ""));
  EXPECT_EQ(o.command, Command::kAdminRemove);
  ASSERT_OK_AND_ASSIGN(
      o,
      ParseArgs({"admin", "label", "a1", "gpu=yes", "url=a=b", "empty=", "--remove=os,arch"}, ""));
  EXPECT_EQ(o.command, Command::kAdminLabel);
  EXPECT_EQ(o.agent_name, "a1");
  EXPECT_EQ(o.label_set,
            (std::map<std::string, std::string>{{"empty", ""}, {"gpu", "yes"}, {"url", "a=b"}}));
  EXPECT_EQ(o.label_remove, (std::vector<std::string>{"os", "arch"}));
  ASSERT_OK_AND_ASSIGN(o, ParseArgs({"admin", "label", "--remove", "pool", "a1"}, ""));
  EXPECT_TRUE(o.label_set.empty());
  EXPECT_EQ(o.label_remove, std::vector<std::string>{"pool"});
}

TEST(AdminAgentsParseTest, UsageErrorsNameTheProblem) {
  ExpectUsageError({"admin", "drain"}, "missing NAME");
  ExpectUsageError({"admin", "drain", ""}, "NAME is empty");
  ExpectUsageError({"admin", "drain", "a1", "a2"}, "unexpected argument 'a2'");
  ExpectUsageError({"admin", "resume", "a1", "--remove=x"}, "does not take --remove");
  ExpectUsageError({"admin", "label", "a1"}, "needs labels to set (key=value) or --remove");
  ExpectUsageError({"admin", "label", "a1", "gpu"}, "\"gpu\" is not");
  ExpectUsageError({"admin", "label", "a1", "=yes"}, "key=value");
  ExpectUsageError({"admin", "label", "a1", "k=1", "k=2"}, "\"k\" is given twice");
  ExpectUsageError({"admin", "label", "a1", "--remove="}, "--remove needs label keys");
  ExpectUsageError({"admin", "label", "a1", "--remove=a,,b"}, "label keys separated by commas");
  ExpectUsageError({"admin", "label", "a1", "--remove=a=1"}, "label keys separated by commas");
  ExpectUsageError({"admin", "label", "a1", "--remove=a,a"}, "\"a\" is given twice");
  ExpectUsageError({"admin", "label", "a1", "a=1", "--remove=a"}, "both set and removed");
  ExpectUsageError({"admin", "frobnicate"}, "unknown subcommand 'admin frobnicate'");
}

// The group's help is the command table's admin group: every command registered there shows,
// whoever registered it.
TEST(AdminAgentsHelpTest, TheAdminGroupHelpListsEveryAdminCommandOfTheTable) {
  ASSERT_OK_AND_ASSIGN(CliOptions o, ParseArgs({"help", "admin"}, ""));
  EXPECT_EQ(o.command, Command::kHelp);
  EXPECT_EQ(o.help_topic, "admin");
  const std::string help = CommandUsageText("admin");
  int admin_commands = 0;
  for (const CommandDef& def : CommandTable()) {
    if (def.name.substr(0, 6) != "admin ") continue;
    ++admin_commands;
    EXPECT_THAT(help, HasSubstr(absl::StrCat("farmctl ", def.Invocation(), "\n")));
  }
  EXPECT_EQ(admin_commands, 12);  // issue 13: drain ... status (resume serves agents and queues)
  EXPECT_THAT(help, HasSubstr("--remove=KEY[,KEY...]"));
  EXPECT_THAT(help, HasSubstr("role admin"));
  EXPECT_THAT(UsageText(), HasSubstr("admin label NAME [KEY=VALUE...]"));
  EXPECT_THAT(CommandUsageText("admin label"), HasSubstr("stay out"));
}

TEST(AdminAgentsFormatTest, AgentsShowWhatOperatorsChanged) {
  farm::v1::ListAgentsResponse response;
  farm::v1::AgentInfo* a = response.add_agents();
  a->set_name("a");
  a->set_state("draining");
  a->set_slots(1);
  (*a->mutable_labels())["os"] = "linux";
  (*a->mutable_labels())["gpu"] = "yes";
  (*a->mutable_operator_labels())["gpu"] = "yes";
  a->add_removed_labels("pool");
  EXPECT_EQ(FormatAgentLabels(*a), "gpu=yes,os=linux (operator: gpu=yes,-pool)");
  EXPECT_EQ(FormatAgentsText(response, TextContext{0, absl::UTCTimeZone()}),
            "NAME  STATE     SLOTS  LABELS                                      JOBS  SEEN  "
            "ISOLATION\n"
            "a     draining  0/1    gpu=yes,os=linux (operator: gpu=yes,-pool)  -     -     -\n");
  farm::v1::AgentInfo plain;
  EXPECT_EQ(FormatAgentLabels(plain), "-");
}

}  // namespace
}  // namespace farm::cli
