// The step supervisor: a step's whole process group dies with the agent, however the agent dies;
// nothing else is touched; a dead supervisor stops steps from starting unguarded.
//
// "The agent" in the crash tests is a forked child of the test that starts a supervisor and runs
// a step with a StepRunner, as the real agent does; the test then SIGKILLs that child, as a crash
// would, and looks for the step's processes.
#include "agent/step_supervisor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/step_runner.h"
#include "tests/agent/test_util.h"
#include "tests/testing/status_matchers.h"

namespace farm::agent {
namespace {

using ::farm::agent::testing::ProcessGone;
using ::farm::agent::testing::ReadFile;
using ::farm::agent::testing::TempDir;
using ::farm::agent::testing::WaitFor;
using ::testing::HasSubstr;

// The bound: a killed agent's step processes are gone within 2 s.
constexpr std::chrono::milliseconds kGoneWithin{2'000};

// The pid written to `path` by a step (0 while the file is missing or incomplete).
pid_t PidFromFile(const std::string& path) {
  int pid = 0;
  const std::string text = ReadFile(path);
  if (text.empty() || text.back() != '\n') return 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &pid)) return 0;
  return pid;
}

StepCommand Script(const std::string& dir, const std::string& script) {
  StepCommand command;
  command.argv = {"/bin/sh", "-c", script};
  command.env = {"PATH=/usr/local/bin:/usr/bin:/bin"};
  command.cwd = dir;
  command.kill_grace_ms = 10'000;
  return command;
}

// The processes of one crashed "agent".
struct Crash {
  pid_t agent = 0;
  pid_t supervisor = 0;  // 0 without one
  pid_t shell = 0;       // the step's group leader
  pid_t grandchild = 0;  // the step's background `sleep`
};

// Forks an "agent" that (with `supervised`) starts a supervisor and runs a step whose shell
// starts a background sleep and waits for it; once both pids are known, SIGKILLs the agent and
// reaps it. The child only runs the agent code and _exit()s, never back into the test.
Crash RunStepAndKillTheAgent(const std::string& dir, bool supervised) {
  Crash crash;
  const std::string script = absl::StrCat("echo $$ > ", dir, "/shell.pid; sleep 1000 & echo $! > ",
                                          dir, "/sleep.pid; wait");
  const StepCommand command = Script(dir, script);
  const std::string supervisor_file = dir + "/supervisor.pid";
  const pid_t agent = ::fork();
  if (agent < 0) {
    ADD_FAILURE() << "fork failed";
    return crash;
  }
  if (agent == 0) {
    std::unique_ptr<StepSupervisor> supervisor;
    if (supervised) {
      absl::StatusOr<std::unique_ptr<StepSupervisor>> started = StepSupervisor::Start();
      if (!started.ok()) ::_exit(3);
      supervisor = *std::move(started);
      std::ofstream(supervisor_file) << supervisor->pid() << "\n";
    }
    StepRunner runner(supervisor.get());
    runner.Run(command, [](int64_t, absl::string_view) {});
    ::_exit(0);  // not reached: the test kills us first
  }
  crash.agent = agent;
  EXPECT_TRUE(WaitFor([&] {
    crash.shell = PidFromFile(dir + "/shell.pid");
    crash.grandchild = PidFromFile(dir + "/sleep.pid");
    if (supervised) crash.supervisor = PidFromFile(supervisor_file);
    return crash.shell != 0 && crash.grandchild != 0 && (!supervised || crash.supervisor != 0);
  })) << "the step never started";
  ::kill(agent, SIGKILL);
  int status;
  while (::waitpid(agent, &status, 0) < 0 && errno == EINTR) {
  }
  return crash;
}

TEST(StepSupervisorTest, KillingTheAgentKillsTheStepsBackgroundGrandchild) {
  TempDir dir;
  const Crash crash = RunStepAndKillTheAgent(dir.path(), /*supervised=*/true);
  ASSERT_NE(crash.grandchild, 0);
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(crash.grandchild); }, kGoneWithin))
      << "the step's background sleep (pid " << crash.grandchild << ") outlived its agent";
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(crash.shell); }, kGoneWithin));
  // Its work done, the supervisor is gone too.
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(crash.supervisor); }, kGoneWithin));
  if (!ProcessGone(crash.grandchild)) ::kill(crash.grandchild, SIGKILL);
}

// The control: the same crash without a supervisor. PR_SET_PDEATHSIG takes the shell down, and
// the sleep it started runs on. This is what the test above would see if the supervisor did
// nothing, so it shows that test can fail.
TEST(StepSupervisorTest, WithoutASupervisorTheGrandchildOutlivesTheAgent) {
  TempDir dir;
  const Crash crash = RunStepAndKillTheAgent(dir.path(), /*supervised=*/false);
  ASSERT_NE(crash.grandchild, 0);
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(crash.shell); }, kGoneWithin));
  EXPECT_FALSE(ProcessGone(crash.grandchild)) << "nothing should have killed it";
  ::kill(crash.grandchild, SIGKILL);
}

// A process that leads its own group, lists it with `supervisor`, then becomes `sleep 1000`.
pid_t StartTrackedSleep(const StepSupervisor& supervisor) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    if (!supervisor.TrackSelf()) ::_exit(3);
    ::execl("/bin/sleep", "sleep", "1000", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::setpgid(pid, pid);
  // Listed once it runs sleep: the record is sent before the exec.
  EXPECT_TRUE(WaitFor([&] {
    const std::string cmdline = ReadFile(absl::StrCat("/proc/", pid, "/cmdline"));
    return cmdline.rfind("sleep", 0) == 0;
  }));
  return pid;
}

void Reap(pid_t pid) {
  int status;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

TEST(StepSupervisorTest, ClosingTheAgentsEndKillsListedGroupsOnly) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<StepSupervisor> supervisor, StepSupervisor::Start());
  const pid_t supervisor_pid = supervisor->pid();
  const pid_t listed = StartTrackedSleep(*supervisor);
  const pid_t unlisted = StartTrackedSleep(*supervisor);
  supervisor->Untrack(unlisted);
  // Closes the agent's end and reaps the supervisor, which has killed what was listed by then.
  supervisor.reset();
  EXPECT_TRUE(ProcessGone(supervisor_pid));
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(listed); }, kGoneWithin));
  EXPECT_FALSE(ProcessGone(unlisted)) << "an unlisted group was killed";
  ::kill(listed, SIGKILL);
  ::kill(unlisted, SIGKILL);
  Reap(listed);
  Reap(unlisted);
}

TEST(StepSupervisorTest, IgnoresTheSignalsAimedAtTheAgent) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<StepSupervisor> supervisor, StepSupervisor::Start());
  // SigIgn in /proc/PID/status is the mask of ignored signals (bit N-1 for signal N).
  uint64_t ignored = 0;
  ASSERT_TRUE(WaitFor([&] {
    for (absl::string_view line :
         absl::StrSplit(ReadFile(absl::StrCat("/proc/", supervisor->pid(), "/status")), '\n')) {
      if (absl::ConsumePrefix(&line, "SigIgn:")) {
        ignored = std::stoull(std::string(absl::StripAsciiWhitespace(line)), nullptr, 16);
      }
    }
    return (ignored & (uint64_t{1} << (SIGTERM - 1))) != 0;
  }));
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE}) {
    EXPECT_NE(ignored & (uint64_t{1} << (sig - 1)), 0u) << strsignal(sig) << " is not ignored";
  }
  // And it leads its own process group, so `kill -- -AGENT_PGID` does not reach it.
  EXPECT_EQ(::getpgid(supervisor->pid()), supervisor->pid());
  EXPECT_TRUE(supervisor->Alive());
}

TEST(StepSupervisorTest, NoStepStartsOnceTheSupervisorIsGone) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<StepSupervisor> supervisor, StepSupervisor::Start());
  ASSERT_EQ(::kill(supervisor->pid(), SIGKILL), 0);
  ASSERT_TRUE(WaitFor([&] { return !supervisor->Alive(); }));
  StepRunner runner(supervisor.get());
  const StepOutcome outcome =
      runner.Run(Script(dir.path(), "echo ran > ran"), [](int64_t, absl::string_view) {});
  EXPECT_EQ(outcome.kind, StepOutcome::Kind::kFailedToStart);
  EXPECT_THAT(outcome.message, HasSubstr("step supervisor"));
  EXPECT_EQ(ReadFile(dir.path() + "/ran"), "") << "the step ran unguarded";
}

}  // namespace
}  // namespace farm::agent
