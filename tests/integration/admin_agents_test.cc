// The operators' agent commands on a real farm: `farmctl admin drain/resume/remove/label` against
// a running coordinator and agents, observed as an operator observes them (farmctl agents, get,
// events), across a coordinator restart.
#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/json_util.h"
#include "tests/integration/farm_test_base.h"

namespace farm::testing {
namespace {

using ::testing::HasSubstr;

class AdminAgentsTest : public FarmTest {
 protected:
  // A short TTL, so that a stopped agent counts as offline within the test.
  std::vector<std::string> CoordinatorFlags() const override { return {"--lease_ttl=2s"}; }

  // The agent as `farmctl agents --output=json` lists it; an empty AgentInfo when it is not.
  farm::v1::AgentInfo Agent(const std::string& name) {
    absl::StatusOr<farm::v1::ListAgentsResponse> list = farm_->ListAgents();
    EXPECT_OK(list);
    if (!list.ok()) return {};
    for (const farm::v1::AgentInfo& agent : list->agents()) {
      if (agent.name() == name) return agent;
    }
    return {};
  }

  // `farmctl ARGS...`, expected to exit with `code` (and, when it fails, to say why in one line).
  CommandResult Farmctl(std::vector<std::string> args, int code) {
    absl::StatusOr<CommandResult> r = farm_->RunFarmctl(args);
    EXPECT_OK(r);
    if (!r.ok()) return {};
    EXPECT_EQ(r->exit_code, code) << r->DebugString();
    if (code != 0) {
      EXPECT_EQ(std::count(r->err.begin(), r->err.end(), '\n'), 1) << r->DebugString();
      EXPECT_TRUE(r->out.empty()) << r->DebugString();
    }
    return *r;
  }

  // A job for pool=p whose step runs until the test creates $MARK/release.
  absl::StatusOr<std::string> SubmitBlocker() {
    return farm_->SubmitJobFile(JobFile(R"job(
name: blocker
labels: {pool: p}
env: {MARK: "@DIR@"}
steps:
  - run: while [ ! -e "$MARK/release" ]; do sleep 0.05; done
)job",
                                        {{"DIR", farm_->root()}}));
  }

  // Every event since the farm started.
  std::vector<farm::v1::Event> AllEvents() {
    CommandResult r = Farmctl({"events", "--since=1h", "--output=json"}, 0);
    farm::v1::ListEventsResponse resp;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &resp).ok()) << r.out;
    return {resp.events().begin(), resp.events().end()};
  }
};

// Drain one agent of two while it runs a job: the job finishes there, no new job goes to it,
// not even after a coordinator restart; once resumed it takes the queued job at once.
TEST_F(AdminAgentsTest, ADrainedAgentFinishesItsJobTakesNoMoreAcrossARestartUntilResumed) {
  ASSERT_OK(StartAgent("a1", {{"pool", "p"}}));
  ASSERT_OK(StartAgent("a2", {{"pool", "q"}}));
  ASSERT_OK_AND_ASSIGN(std::string blocker, SubmitBlocker());
  ASSERT_OK_AND_ASSIGN(farm::v1::Job running, farm_->WaitForJobState(blocker, farm::v1::RUNNING));
  ASSERT_EQ(running.attempts(0).agent(), "a1");

  CommandResult drained = Farmctl({"admin", "drain", "a1"}, 0);
  EXPECT_THAT(drained.out, HasSubstr("agent a1 drained"));
  EXPECT_THAT(drained.out, HasSubstr(blocker));
  CommandResult listed = Farmctl({"agents"}, 0);
  EXPECT_THAT(listed.out, HasSubstr("draining")) << listed.out;
  EXPECT_EQ(Agent("a1").state(), "draining");

  ASSERT_OK_AND_ASSIGN(std::string next,
                       farm_->SubmitJobFile("labels: {pool: p}\nsteps: [{run: 'true'}]\n"));
  ASSERT_OK(WriteFile(farm_->Path("release"), ""));
  ASSERT_OK_AND_ASSIGN(farm::v1::Job finished, farm_->WaitForJobDone(blocker));
  EXPECT_EQ(finished.state(), farm::v1::SUCCEEDED) << finished.ShortDebugString();
  // An agent that takes work gets the next job with its completion; a drained one does not.
  ASSERT_OK(
      WaitFor([&] { return Agent("a1").jobs().empty(); }, absl::Seconds(20), "a1 holds no lease"));
  ASSERT_OK_AND_ASSIGN(farm::v1::Job queued, farm_->GetJob(next));
  EXPECT_EQ(queued.state(), farm::v1::QUEUED) << queued.ShortDebugString();

  ASSERT_OK_AND_ASSIGN(int code, farm_->StopCoordinator());
  EXPECT_EQ(code, 0);
  const int64_t restarted_ms = absl::ToUnixMillis(absl::Now());
  ASSERT_OK(farm_->RestartCoordinator());
  // Still drained once a1 is back in touch with the new coordinator.
  ASSERT_OK(WaitFor([&] { return Agent("a1").last_seen_ms() > restarted_ms; }, absl::Seconds(20),
                    "a1 calls the restarted coordinator"));
  EXPECT_EQ(Agent("a1").state(), "draining");
  ASSERT_OK_AND_ASSIGN(queued, farm_->GetJob(next));
  EXPECT_EQ(queued.state(), farm::v1::QUEUED) << queued.ShortDebugString();

  CommandResult resumed = Farmctl({"admin", "resume", "a1"}, 0);
  EXPECT_THAT(resumed.out, HasSubstr("agent a1 resumed"));
  ASSERT_OK_AND_ASSIGN(farm::v1::Job ran, farm_->WaitForJobDone(next));
  EXPECT_EQ(ran.state(), farm::v1::SUCCEEDED) << ran.ShortDebugString();
  EXPECT_EQ(ran.attempts(0).agent(), "a1");

  std::vector<std::string> drains;
  for (const farm::v1::Event& e : AllEvents()) {
    if (e.kind() == farm::v1::AGENT_DRAINING || e.kind() == farm::v1::AGENT_RESUMED) {
      drains.push_back(absl::StrCat(e.agent(), ": ", e.reason()));
    }
  }
  EXPECT_EQ(drains,
            (std::vector<std::string>{"a1: drained by an operator", "a1: resumed by an operator"}));
}

// A job queued for a label no agent has runs as soon as an operator gives the label to a
// running agent, which is not restarted for it.
TEST_F(AdminAgentsTest, ALabelledAgentRunsTheQueuedJobWithoutARestart) {
  ASSERT_OK(StartAgent("a1", {{"pool", "p"}}));
  ASSERT_OK(StartAgent("a2", {{"pool", "q"}}));
  const int pid = farm_->agent("a1")->pid();
  ASSERT_OK_AND_ASSIGN(std::string gpu,
                       farm_->SubmitJobFile("labels: {gpu: 'yes'}\nsteps: [{run: 'true'}]\n"));
  ASSERT_OK_AND_ASSIGN(farm::v1::Job queued, farm_->GetJob(gpu));
  EXPECT_EQ(queued.state(), farm::v1::QUEUED);

  CommandResult labelled = Farmctl({"admin", "label", "a1", "gpu=yes"}, 0);
  // The agent's own labels (os and arch too, as it reports them) and the operator's.
  EXPECT_THAT(labelled.out, HasSubstr("agent a1 labels: "));
  EXPECT_THAT(labelled.out, HasSubstr("gpu=yes,"));
  EXPECT_THAT(labelled.out, HasSubstr("pool=p (operator: gpu=yes)\n"));
  ASSERT_OK_AND_ASSIGN(farm::v1::Job ran, farm_->WaitForJobDone(gpu));
  EXPECT_EQ(ran.state(), farm::v1::SUCCEEDED) << ran.ShortDebugString();
  EXPECT_EQ(ran.attempts(0).agent(), "a1");
  ASSERT_NE(farm_->agent("a1"), nullptr);
  EXPECT_EQ(farm_->agent("a1")->pid(), pid);
  EXPECT_THAT(Farmctl({"agents"}, 0).out, HasSubstr("pool=p (operator: gpu=yes)"));

  // Taken out again (and the agent's own pool too): jobs for them wait.
  Farmctl({"admin", "label", "a1", "--remove=gpu,pool"}, 0);
  farm::v1::AgentInfo a1 = Agent("a1");
  EXPECT_EQ(a1.labels().count("gpu") + a1.labels().count("pool"), 0u) << a1.ShortDebugString();
  EXPECT_EQ(a1.labels().at("os"), "linux");
  ASSERT_OK_AND_ASSIGN(std::string pool_p,
                       farm_->SubmitJobFile("labels: {pool: p}\nsteps: [{run: 'true'}]\n"));
  Farmctl({"admin", "label", "a2", "pool=p"}, 0);
  ASSERT_OK_AND_ASSIGN(ran, farm_->WaitForJobDone(pool_p));
  EXPECT_EQ(ran.attempts(0).agent(), "a2");
  bool recorded = false;
  for (const farm::v1::Event& e : AllEvents()) {
    recorded |= e.kind() == farm::v1::AGENT_LABELED && e.agent() == "a1" &&
                e.reason() == "set gpu=yes; by an operator";
  }
  EXPECT_TRUE(recorded);
}

// Remove is refused while the agent runs and works once it is gone; bad input to every command
// answers one line and changes nothing.
TEST_F(AdminAgentsTest, RemoveWaitsForTheAgentToBeGoneAndBadInputChangesNothing) {
  ASSERT_OK(StartAgent("a1"));
  ASSERT_OK(StartAgent("a2", {{"os", "linux"}}));
  CommandResult refused = Farmctl({"admin", "remove", "a1"}, 4);
  EXPECT_THAT(refused.err, HasSubstr("agent \"a1\" is online: stop it first"));
  EXPECT_EQ(Agent("a1").name(), "a1");
  ASSERT_OK(farm_->StopAgent("a1").status());
  ASSERT_OK(
      WaitFor([&] { return Agent("a1").state() == "offline"; }, absl::Seconds(20), "a1 offline"));
  EXPECT_EQ(Farmctl({"admin", "remove", "a1"}, 0).out, "agent a1 removed\n");
  EXPECT_EQ(Agent("a1").name(), "");

  const farm::v1::AgentInfo before = Agent("a2");
  for (const char* command : {"drain", "resume", "remove"}) {
    EXPECT_EQ(Farmctl({"admin", command, "ghost"}, 4).err, "farmctl: no agent named \"ghost\"\n");
  }
  EXPECT_EQ(Farmctl({"admin", "label", "ghost", "k=v"}, 4).err,
            "farmctl: no agent named \"ghost\"\n");
  EXPECT_THAT(Farmctl({"admin", "label", "a2", "gpu=a,b"}, 4).err, HasSubstr("without ','"));
  EXPECT_THAT(Farmctl({"admin", "label", "a2", "--remove=gpu"}, 4).err,
              HasSubstr("has no label \"gpu\""));
  // What farmctl itself refuses (usage errors): the coordinator never hears of it.
  EXPECT_THAT(Farmctl({"admin", "label", "a2", "gpu"}, 64).err, HasSubstr("key=value"));
  EXPECT_THAT(Farmctl({"admin", "label", "a2", "=x"}, 64).err, HasSubstr("key=value"));
  EXPECT_THAT(Farmctl({"admin", "label", "a2"}, 64).err, HasSubstr("needs labels"));
  EXPECT_THAT(Farmctl({"admin", "drain", ""}, 64).err, HasSubstr("NAME is empty"));
  EXPECT_THAT(Farmctl({"admin", "drain"}, 64).err, HasSubstr("missing NAME"));
  const farm::v1::AgentInfo after = Agent("a2");
  EXPECT_EQ(after.state(), before.state());
  using LabelMap = std::map<std::string, std::string>;
  EXPECT_EQ(LabelMap(after.labels().begin(), after.labels().end()),
            LabelMap(before.labels().begin(), before.labels().end()));
  EXPECT_TRUE(after.operator_labels().empty() && after.removed_labels().empty());

  // The group's help lists every command of the table's admin group.
  CommandResult help = Farmctl({"help", "admin"}, 0);
  for (const char* synopsis : {"farmctl admin drain NAME", "farmctl admin resume NAME",
                               "farmctl admin remove NAME", "farmctl admin label NAME"}) {
    EXPECT_THAT(help.out, HasSubstr(synopsis));
  }
  std::vector<std::string> removed;
  for (const farm::v1::Event& e : AllEvents()) {
    if (e.kind() == farm::v1::AGENT_REMOVED) removed.push_back(e.agent() + ": " + e.reason());
  }
  EXPECT_EQ(removed, std::vector<std::string>{"a1: removed by an operator"});
}

}  // namespace
}  // namespace farm::testing
