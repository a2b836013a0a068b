#include "coordinator/cli/options.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "tests/coordinator/cli/usage_error.h"
#include "tests/testing/status_matchers.h"

namespace farm::cli {
namespace {

using ::farm::testing::StatusIsWithMessage;
using ::testing::HasSubstr;

absl::StatusOr<CliOptions> Parse(std::vector<std::string> args, absl::string_view env = "") {
  return ParseArgs(args, env);
}

TEST(ParseArgsTest, SubmitWithFlagsAfterTheFile) {
  ASSERT_OK_AND_ASSIGN(CliOptions o, Parse({"submit", "job.yaml", "--wait", "--follow"}));
  EXPECT_EQ(o.command, Command::kSubmit);
  EXPECT_EQ(o.file, "job.yaml");
  EXPECT_TRUE(o.wait);
  EXPECT_TRUE(o.follow);
  EXPECT_EQ(o.output, OutputFormat::kText);
}

TEST(ParseArgsTest, GlobalFlagsBeforeTheCommand) {
  ASSERT_OK_AND_ASSIGN(CliOptions o,
                       Parse({"--coordinator=farm:9000", "-output", "json", "get", "17"}));
  EXPECT_EQ(o.command, Command::kGet);
  EXPECT_EQ(o.job_id, "17");
  EXPECT_EQ(o.coordinator, "farm:9000");
  EXPECT_EQ(o.output, OutputFormat::kJson);
}

TEST(ParseArgsTest, CoordinatorComesFromTheFlagThenTheEnvironmentThenTheDefault) {
  EXPECT_EQ(Parse({"agents"})->coordinator, "127.0.0.1:7070");
  EXPECT_EQ(Parse({"agents"}, "env:1")->coordinator, "env:1");
  EXPECT_EQ(Parse({"agents", "--coordinator", "flag:2"}, "env:1")->coordinator, "flag:2");
}

TEST(ParseArgsTest, ListFlags) {
  ASSERT_OK_AND_ASSIGN(CliOptions o, Parse({"list", "--state=running", "--limit", "20"}));
  EXPECT_EQ(o.command, Command::kList);
  EXPECT_EQ(o.state, farm::v1::RUNNING);
  EXPECT_EQ(o.limit, 20);
  ASSERT_OK_AND_ASSIGN(CliOptions all, Parse({"list"}));
  EXPECT_EQ(all.state, farm::v1::JOB_STATE_UNSPECIFIED);
  EXPECT_EQ(all.limit, 0);
}

TEST(ParseArgsTest, LogsFlags) {
  ASSERT_OK_AND_ASSIGN(CliOptions o, Parse({"logs", "3", "--follow", "--step=build"}));
  EXPECT_EQ(o.command, Command::kLogs);
  EXPECT_EQ(o.job_id, "3");
  EXPECT_TRUE(o.follow);
  EXPECT_EQ(o.step, "build");
}

TEST(ParseArgsTest, WaitTimeoutTakesDurationsAndBareSeconds) {
  EXPECT_EQ(Parse({"wait", "3", "--timeout=90s"})->timeout_ms, 90'000);
  EXPECT_EQ(Parse({"wait", "3", "--timeout=1h30m"})->timeout_ms, 5'400'000);
  EXPECT_EQ(Parse({"wait", "3", "--timeout", "5"})->timeout_ms, 5'000);
  EXPECT_FALSE(Parse({"wait", "3"})->timeout_ms.has_value());
}

TEST(ParseArgsTest, BooleanFlagsTakeExplicitValues) {
  EXPECT_FALSE(Parse({"submit", "f", "--wait=false"})->wait);
  EXPECT_TRUE(Parse({"submit", "f", "--wait=true"})->wait);
}

TEST(ParseArgsTest, CancelAndAgents) {
  EXPECT_EQ(Parse({"cancel", "9"})->command, Command::kCancel);
  EXPECT_EQ(Parse({"cancel", "9"})->job_id, "9");
  EXPECT_EQ(Parse({"agents"})->command, Command::kAgents);
}

TEST(ParseArgsTest, DoubleDashEndsFlagsAndDashIsStdin) {
  EXPECT_EQ(Parse({"get", "--", "-5"})->job_id, "-5");
  EXPECT_EQ(Parse({"submit", "-"})->file, "-");
}

TEST(ParseArgsTest, HelpForms) {
  ASSERT_OK_AND_ASSIGN(CliOptions o, Parse({"help"}));
  EXPECT_EQ(o.command, Command::kHelp);
  EXPECT_EQ(o.help_topic, "");
  EXPECT_EQ(Parse({"help", "logs"})->help_topic, "logs");
  EXPECT_EQ(Parse({"logs", "--help"})->help_topic, "logs");
  EXPECT_EQ(Parse({"-h"})->command, Command::kHelp);
}
TEST(ParseArgsTest, PipelinesAndTheNewStates) {
  ASSERT_OK_AND_ASSIGN(CliOptions o, Parse({"list", "--pipelines", "--limit=3"}));
  EXPECT_TRUE(o.pipelines);
  EXPECT_EQ(o.limit, 3);
  EXPECT_FALSE(Parse({"list"})->pipelines);
  EXPECT_EQ(Parse({"list", "--state=waiting"})->state, farm::v1::WAITING);
  EXPECT_EQ(Parse({"list", "--state=SKIPPED"})->state, farm::v1::SKIPPED);
  for (const char* command : {"get", "wait", "cancel"}) {
    ASSERT_OK_AND_ASSIGN(CliOptions p, Parse({command, "p3"}));
    EXPECT_EQ(p.job_id, "p3") << command;
    EXPECT_TRUE(IsPipelineId(p.job_id));
  }
  EXPECT_FALSE(IsPipelineId("17"));
  EXPECT_FALSE(IsPipelineId(""));
}

TEST(ParseArgsTest, JobOnlyCommandsRefuseAPipeline) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"logs", "p3"},
                                             {"logs", "p3", "--follow"},
                                             {"artifacts", "p3"},
                                             {"download", "p3"},
                                             {"events", "--job=p3"}}) {
    EXPECT_THAT(Parse(args),
                StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                    "p3 is a pipeline; use `farmctl get p3` to see its jobs' ids"))
        << args[0];
  }
}

TEST(ParseArgsTest, UsageErrors) {
  ExpectUsageError({}, "no command given");
  ExpectUsageError({"frob"}, "unknown command 'frob'");
  ExpectUsageError({"get", "1", "--frob"}, "unknown flag --frob (run 'farmctl help get')");
  ExpectUsageError({"get", "1", "--wait"}, "'get' does not take --wait");
  ExpectUsageError({"list", "--follow"}, "'list' does not take --follow");
  ExpectUsageError({"agents", "--step=x"}, "'agents' does not take --step");
  ExpectUsageError({"get"}, "missing JOB");
  ExpectUsageError({"submit"}, "missing FILE");
  ExpectUsageError({"get", "1", "2"}, "unexpected argument '2'");
  ExpectUsageError({"agents", "x"}, "unexpected argument 'x'");
  ExpectUsageError({"get", "1", "--output=yaml"}, "--output takes text or json");
  ExpectUsageError({"list", "--state=done"}, "--state takes queued, waiting, running");
  ExpectUsageError({"list", "--pipelines", "--state=failed"}, "does not go with --pipelines");
  ExpectUsageError({"get", "p1", "--pipelines"}, "'get' does not take --pipelines");
  ExpectUsageError({"list", "--state=job_state_unspecified"}, "--state takes");
  ExpectUsageError({"list", "--limit=0"}, "--limit takes a number from 1 to 1000");
  ExpectUsageError({"list", "--limit=many"}, "--limit takes a number");
  ExpectUsageError({"list", "--limit"}, "--limit needs a value");
  ExpectUsageError({"wait", "1", "--timeout=soon"}, "--timeout: expected a duration");
  ExpectUsageError({"submit", "f", "--wait=maybe"}, "--wait takes true or false");
  ExpectUsageError({"get", "1", "--coordinator="}, "--coordinator needs HOST:PORT");
  ExpectUsageError({"help", "frob"}, "unknown command 'frob'");
}

TEST(ParseArgsTest, EventsFlags) {
  ASSERT_OK_AND_ASSIGN(CliOptions o,
                       Parse({"events", "--job=7", "--since=1h", "--until=2023-11-14T00:00:00Z",
                              "--follow", "--limit", "5000"}));
  EXPECT_EQ(o.command, Command::kEvents);
  EXPECT_EQ(o.job_id, "7");
  ASSERT_TRUE(o.since.has_value());
  EXPECT_TRUE(o.since->ago);
  EXPECT_EQ(o.since->ms, 3'600'000);
  EXPECT_EQ(o.since->Resolve(10'000'000), 6'400'000);
  ASSERT_TRUE(o.until.has_value());
  EXPECT_FALSE(o.until->ago);
  EXPECT_EQ(o.until->Resolve(0), 1'699'920'000'000);
  EXPECT_TRUE(o.follow);
  EXPECT_EQ(o.limit, 5000);

  ASSERT_OK_AND_ASSIGN(CliOptions all, Parse({"events"}));
  EXPECT_EQ(all.job_id, "");
  EXPECT_FALSE(all.since.has_value());
  EXPECT_FALSE(all.until.has_value());
  EXPECT_FALSE(all.follow);
  EXPECT_EQ(all.limit, 0);
}

TEST(ParseArgsTest, EventsUsageErrors) {
  ExpectUsageError({"events", "--since=soon"},
                   "--since takes a duration back from now (1h, 30m) or a time");
  ExpectUsageError({"events", "--until=yesterday"}, "--until takes a duration");
  ExpectUsageError({"events", "--limit=0"}, "--limit takes a number from 1 to 1000000");
  ExpectUsageError({"events", "--job="}, "--job needs a job id");
  ExpectUsageError({"events", "--job"}, "--job needs a value");
  ExpectUsageError({"events", "7"}, "unexpected argument '7' for events");
  ExpectUsageError({"events", "--step=x"}, "'events' does not take --step");
  ExpectUsageError({"list", "--job=1"}, "'list' does not take --job");
  ExpectUsageError({"list", "--limit=5000"}, "--limit takes a number from 1 to 1000,");
}

// Forms CLI11 does not take itself, kept from farmctl's own parser (see NormalizeArgs).
TEST(ParseArgsTest, OneDashLongFlagsAndACommandsFlagsBeforeIt) {
  EXPECT_EQ(Parse({"-state=failed", "list"})->state, farm::v1::FAILED);
  EXPECT_EQ(Parse({"--limit", "7", "list"})->limit, 7);
  EXPECT_TRUE(Parse({"-follow", "logs", "3"})->follow);
  EXPECT_EQ(Parse({"--job", "9", "events"})->job_id, "9");
  EXPECT_EQ(Parse({"-o", "x.bin", "cas", "get", std::string(64, 'a') + "/1"})->output_path,
            "x.bin");
  EXPECT_EQ(Parse({"download", "17", "-o=dir"})->output_path, "dir");
  ExpectUsageError({"--follow", "get", "1"}, "'get' does not take --follow");
}

TEST(ParseArgsTest, ArtifactsAndDownload) {
  ASSERT_OK_AND_ASSIGN(CliOptions a, Parse({"artifacts", "17", "--output=json"}));
  EXPECT_EQ(a.command, Command::kArtifacts);
  EXPECT_EQ(a.job_id, "17");
  EXPECT_EQ(a.output, OutputFormat::kJson);

  ASSERT_OK_AND_ASSIGN(CliOptions d, Parse({"download", "17"}));
  EXPECT_EQ(d.command, Command::kDownload);
  EXPECT_EQ(d.job_id, "17");
  EXPECT_TRUE(d.paths.empty());
  EXPECT_EQ(d.output_path, "");

  ASSERT_OK_AND_ASSIGN(d, Parse({"download", "17", "out/a.txt", "-o", "dl", "dist"}));
  EXPECT_THAT(d.paths, ::testing::ElementsAre("out/a.txt", "dist"));
  EXPECT_EQ(d.output_path, "dl");
  ASSERT_OK_AND_ASSIGN(d, Parse({"-o=dir", "download", "17"}));
  EXPECT_EQ(d.output_path, "dir");
}

TEST(ParseArgsTest, CasSubcommands) {
  const std::string key = std::string(64, 'a') + "/12";
  ASSERT_OK_AND_ASSIGN(CliOptions put, Parse({"cas", "put", "file.bin"}));
  EXPECT_EQ(put.command, Command::kCasPut);
  EXPECT_EQ(put.file, "file.bin");
  ASSERT_OK_AND_ASSIGN(CliOptions get, Parse({"cas", "get", key, "-o", "out.bin"}));
  EXPECT_EQ(get.command, Command::kCasGet);
  EXPECT_EQ(get.digest, key);
  EXPECT_EQ(get.output_path, "out.bin");
  ASSERT_OK_AND_ASSIGN(CliOptions stat, Parse({"cas", "stat", key}));
  EXPECT_EQ(stat.command, Command::kCasStat);
  EXPECT_EQ(stat.digest, key);
}

TEST(ParseArgsTest, ArtifactUsageErrors) {
  const std::string key = std::string(64, 'a') + "/12";
  ExpectUsageError({"cas"}, "'cas' needs a subcommand: put, get or stat");
  ExpectUsageError({"cas", "copy", "x"}, "unknown subcommand 'cas copy'");
  ExpectUsageError({"cas", "put"}, "missing FILE");
  ExpectUsageError({"cas", "stat", "abc/1"}, "HASH/SIZE");
  ExpectUsageError({"cas", "stat", std::string(64, 'A') + "/1"}, "HASH/SIZE");
  ExpectUsageError({"cas", "stat", key, "extra"}, "unexpected argument 'extra'");
  ExpectUsageError({"cas", "get", key}, "cas get needs -o FILE");
  ExpectUsageError({"cas", "stat", key, "-o", "x"}, "'cas stat' does not take -o");
  ExpectUsageError({"get", "1", "-o", "x"}, "'get' does not take -o");
  ExpectUsageError({"download", "1", "-o"}, "-o needs a value");
  ExpectUsageError({"download", "1", "-o", "-"}, "-o -");
  ExpectUsageError({"download"}, "missing JOB");
  ExpectUsageError({"download", "1", ""}, "PATH is empty");
  ExpectUsageError({"artifacts", "1", "2"}, "unexpected argument '2'");
}

TEST(ParseArgsTest, HelpForCas) {
  ASSERT_OK_AND_ASSIGN(CliOptions o, Parse({"help", "cas"}));
  EXPECT_EQ(o.command, Command::kHelp);
  EXPECT_EQ(o.help_topic, "cas");
  ASSERT_OK_AND_ASSIGN(o, Parse({"help", "cas", "get"}));
  EXPECT_EQ(o.help_topic, "cas get");
  ASSERT_OK_AND_ASSIGN(o, Parse({"cas", "put", "--help"}));
  EXPECT_EQ(o.help_topic, "cas put");
  ASSERT_OK_AND_ASSIGN(o, Parse({"cas", "--help"}));
  EXPECT_EQ(o.help_topic, "cas");
  EXPECT_THAT(CommandUsageText("cas"), HasSubstr("farmctl cas get HASH/SIZE -o FILE"));
  EXPECT_THAT(CommandUsageText("cas stat"), HasSubstr("exit 0 present, 1 missing"));
  EXPECT_THAT(CommandUsageText("download"), HasSubstr("-o DIR|FILE"));
}

TEST(ParseArgsTest, AgentEnrollToken) {
  ASSERT_OK_AND_ASSIGN(CliOptions o,
                       Parse({"agent", "enroll-token", "--labels=pool=x, gpu = yes", "--ttl=1h"}));
  EXPECT_EQ(o.command, Command::kAgentEnrollToken);
  EXPECT_EQ(o.labels, (std::map<std::string, std::string>{{"gpu", "yes"}, {"pool", "x"}}));
  EXPECT_EQ(o.token_ttl_ms, 3'600'000);
  ASSERT_OK_AND_ASSIGN(o, Parse({"agent", "enroll-token"}));
  EXPECT_TRUE(o.labels.empty());
  EXPECT_EQ(o.token_ttl_ms, 0);  // the coordinator's default
  ExpectUsageError({"agent", "enroll-token", "--labels=pool"}, "\"pool\" is not");
  ExpectUsageError({"agent", "enroll-token", "--labels==x"}, "key=value");
  ExpectUsageError({"agent", "enroll-token", "--labels=a=1,a=2"}, "\"a\" given twice");
  EXPECT_THAT(UsageText(), HasSubstr("agent enroll-token [--labels=k=v,...] [--ttl=15m]"));
  EXPECT_THAT(CommandUsageText("agent enroll-token"), HasSubstr("--enroll_token_file=FILE"));
}

TEST(UsageTextTest, ListsEveryCommandAndTheExitCodes) {
  const std::string usage = UsageText();
  for (const char* command :
       {"submit FILE [--wait] [--follow]", "get JOB|PIPELINE",
        "list [--state=S] [--limit=N] [--pipelines]", "logs JOB [--follow] [--step=NAME]",
        "wait JOB|PIPELINE [--timeout=D]", "cancel JOB|PIPELINE", "agents", "artifacts JOB",
        "download JOB [PATH...] [-o DIR]", "cas put FILE", "cas get HASH/SIZE -o FILE",
        "cas stat HASH/SIZE", "events [--job=ID] [--since=T] [--until=T] [--follow]",
        "--output=text|json", "--coordinator=HOST:PORT", "FARM_COORDINATOR"}) {
    EXPECT_THAT(usage, HasSubstr(command));
  }
  EXPECT_THAT(usage, HasSubstr("64  a usage error"));
  EXPECT_THAT(usage, HasSubstr("3   wait --timeout"));
  EXPECT_THAT(CommandUsageText("wait"), HasSubstr("--timeout=D"));
  EXPECT_THAT(CommandUsageText("wait"), ::testing::Not(HasSubstr("  --follow ")));
  EXPECT_THAT(CommandUsageText("logs"), HasSubstr("  --follow "));
  EXPECT_THAT(usage, HasSubstr("Pipelines: a file with a top-level `jobs:`"));
  EXPECT_THAT(usage, HasSubstr("1   the job (or pipeline) FAILED, or the job was SKIPPED"));
  EXPECT_THAT(CommandUsageText("submit"), HasSubstr("prints the pipeline's id"));
  EXPECT_THAT(CommandUsageText("submit"), HasSubstr("done/total bar"));
  EXPECT_THAT(CommandUsageText("list"), HasSubstr("--pipelines"));
  EXPECT_THAT(CommandUsageText("logs"), HasSubstr("`farmctl get pN` shows the ids"));
}

}  // namespace
}  // namespace farm::cli
