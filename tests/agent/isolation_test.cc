// Step isolation (agent/isolation.h, agent/cgroup.h) with real processes: the setsid escape is
// killed when the step has a cgroup, the step user cannot read the agent's credentials, the
// resource limits hold, and the bubblewrap sandbox keeps the step in its workspace, off the
// host's /tmp and (network: false) off the network. Tests that need what this machine lacks
// (root, a writable cgroup v2, bubblewrap) skip and say why.
#include "agent/isolation.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "agent/step_runner.h"
#include "agent/step_supervisor.h"
#include "tests/agent/test_util.h"
#include "tests/testing/status_matchers.h"

namespace farm::agent {
namespace {

using ::farm::agent::testing::TempDir;
using ::farm::agent::testing::WaitFor;
using ::farm::testing::IsOkAndHolds;
using ::farm::testing::StatusIsWithMessage;
using ::testing::HasSubstr;
using ::testing::Not;

// Processes whose command line contains `marker` (from /proc/*/cmdline; zombies have none).
std::vector<pid_t> ProcessesWith(const std::string& marker) {
  std::vector<pid_t> found;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename();
    if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
    std::string cmdline = testing::ReadFile(entry.path().string() + "/cmdline");
    for (char& c : cmdline) {
      if (c == '\0') c = ' ';
    }
    if (cmdline.find(marker) != std::string::npos) found.push_back(std::stoi(name));
  }
  return found;
}

// A number nobody else runs `sleep` with: "300.<random digits>".
std::string UniqueSleep() {
  std::random_device rd;
  return absl::StrCat("300.", 100000 + rd() % 800000);
}

class IsolationOutput {
 public:
  StepRunner::OutputSink Sink() {
    return [this](int64_t, absl::string_view data) {
      absl::MutexLock lock(&mu_);
      all_.append(data.data(), data.size());
    };
  }
  std::string all() const {
    absl::MutexLock lock(&mu_);
    return all_;
  }
  bool WaitForText(const std::string& text) {
    absl::MutexLock lock(&mu_);
    auto has = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return all_.find(text) != std::string::npos;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&has), absl::Seconds(10));
  }

 private:
  mutable absl::Mutex mu_;
  std::string all_ ABSL_GUARDED_BY(mu_);
};

StepCommand Script(const std::string& cwd, const std::string& script) {
  StepCommand command;
  command.argv = {"/bin/sh", "-c", script};
  command.env = {"PATH=/usr/local/bin:/usr/bin:/bin"};
  command.cwd = cwd;
  command.kill_grace_ms = 300;
  return command;
}

// A work dir the step user can reach: mkdtemp makes 0700 directories.
class IsolationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    ::chmod(dir_.path().c_str(), 0755);
    work_dir_ = dir_.path() + "/work";
    ASSERT_EQ(::mkdir(work_dir_.c_str(), 0755), 0);
    workspace_ = work_dir_ + "/job-1-0-abcd";
    ASSERT_EQ(::mkdir(workspace_.c_str(), 0755), 0);
  }

  // The user steps run as in these tests: nobody when we are root, else ourselves.
  static std::string StepUserName() { return ::geteuid() == 0 ? "nobody" : ""; }

  TempDir dir_;
  std::string work_dir_;
  std::string workspace_;
};

// --- flags ------------------------------------------------------------------------------------

TEST(StepRlimitsTest, Parses) {
  absl::StatusOr<std::vector<StepRlimit>> limits =
      ParseStepRlimits("nofile=1024, nproc=512,as=4G,core=0,cpu=unlimited");
  ASSERT_OK(limits.status());
  ASSERT_EQ(limits->size(), 5u);
  EXPECT_EQ((*limits)[0].resource, RLIMIT_NOFILE);
  EXPECT_EQ((*limits)[0].value, 1024u);
  EXPECT_EQ((*limits)[2].value, rlim_t{4} << 30);
  EXPECT_EQ((*limits)[4].value, RLIM_INFINITY);
  EXPECT_THAT(ParseStepRlimits(""), IsOkAndHolds(::testing::IsEmpty()));
}

TEST(StepRlimitsTest, RefusesBadEntriesNamingThem) {
  EXPECT_THAT(ParseStepRlimits("nofile"),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                  HasSubstr("\"nofile\" is not NAME=")));
  EXPECT_THAT(ParseStepRlimits("files=3"),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument,
                                  HasSubstr("unknown limit \"files\"")));
  EXPECT_THAT(ParseStepRlimits("nofile=-1"),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("\"nofile=-1\"")));
  EXPECT_THAT(
      ParseStepRlimits("nofile=1K"),  // a count takes no unit
      StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("expected a number")));
  EXPECT_THAT(
      ParseStepRlimits("as=1G,as=2G"),
      StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("\"as\" given twice")));
}

TEST(SandboxFlagTest, Parses) {
  EXPECT_THAT(ParseSandbox("none"), IsOkAndHolds(SandboxKind::kNone));
  EXPECT_THAT(ParseSandbox("bwrap"), IsOkAndHolds(SandboxKind::kBwrap));
  EXPECT_THAT(ParseSandbox("docker"),
              StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("--sandbox")));
}

TEST_F(IsolationTest, UnknownUserIsRefused) {
  IsolationOptions options;
  options.run_as = "no-such-user-farm";
  EXPECT_THAT(
      Isolation::Create(options, work_dir_),
      StatusIsWithMessage(absl::StatusCode::kInvalidArgument, HasSubstr("--run_as: no user")));
}

TEST_F(IsolationTest, MissingBwrapRefusesToStart) {
  IsolationOptions options;
  options.sandbox = SandboxKind::kBwrap;
  options.bwrap = "/nonexistent/bwrap";
  options.cgroups = false;
  EXPECT_THAT(Isolation::Create(options, work_dir_),
              StatusIsWithMessage(absl::StatusCode::kFailedPrecondition,
                                  HasSubstr("bubblewrap (/nonexistent/bwrap) is not installed")));
}

// --- the setsid escape --------------------------------------------------------------------------

// A step that leaves a process in a session of its own, then is stopped by `stop`; returns
// the sleep marker that process runs with.
std::string RunEscapingStep(const Isolation& isolation, const std::string& cwd, bool cancel,
                            StepOutcome* outcome) {
  const std::string marker = UniqueSleep();
  StepRunner runner(nullptr, &isolation);
  StepCommand command =
      Script(cwd, absl::StrCat("setsid sh -c 'sleep ", marker, "' & echo started; sleep 300"));
  if (!cancel) command.timeout_ms = 1'000;
  IsolationOutput output;
  std::thread stopper([&] {
    if (output.WaitForText("started") &&
        WaitFor([&] { return ProcessesWith(marker).size() >= 2; }) && cancel) {
      runner.Cancel();
    }
  });
  *outcome = runner.Run(command, output.Sink());
  stopper.join();
  return marker;
}

TEST_F(IsolationTest, CancelKillsWhatLeftTheProcessGroup) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Isolation> isolation,
                       Isolation::Create(IsolationOptions(), work_dir_));
  if (isolation->kill_mechanism() != std::string("cgroup-v2")) {
    GTEST_SKIP() << "no usable cgroup v2 here, so steps fall back to process groups, which a "
                    "setsid() escapes: "
                 << isolation->kill_fallback_reason();
  }
  StepOutcome outcome;
  const std::string marker = RunEscapingStep(*isolation, workspace_, /*cancel=*/true, &outcome);
  EXPECT_EQ(outcome.kind, StepOutcome::Kind::kCancelled);
  EXPECT_TRUE(WaitFor([&] { return ProcessesWith(marker).empty(); }))
      << "left running: " << ProcessesWith(marker).size() << " process(es) with " << marker;
}

TEST_F(IsolationTest, TimeoutKillsWhatLeftTheProcessGroup) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Isolation> isolation,
                       Isolation::Create(IsolationOptions(), work_dir_));
  if (isolation->kill_mechanism() != std::string("cgroup-v2")) {
    GTEST_SKIP() << "no usable cgroup v2 here: " << isolation->kill_fallback_reason();
  }
  StepOutcome outcome;
  const std::string marker = RunEscapingStep(*isolation, workspace_, /*cancel=*/false, &outcome);
  EXPECT_EQ(outcome.kind, StepOutcome::Kind::kTimedOut);
  EXPECT_TRUE(WaitFor([&] { return ProcessesWith(marker).empty(); }))
      << "left running: " << ProcessesWith(marker).size() << " process(es) with " << marker;
}

TEST_F(IsolationTest, StepEndKillsWhatLeftTheProcessGroup) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Isolation> isolation,
                       Isolation::Create(IsolationOptions(), work_dir_));
  if (isolation->kill_mechanism() != std::string("cgroup-v2")) {
    GTEST_SKIP() << "no usable cgroup v2 here: " << isolation->kill_fallback_reason();
  }
  const std::string marker = UniqueSleep();
  StepRunner runner(nullptr, isolation.get());
  IsolationOutput output;
  const StepOutcome outcome = runner.Run(
      Script(workspace_, absl::StrCat("setsid sh -c 'sleep ", marker, "' >/dev/null 2>&1 &")),
      output.Sink());
  EXPECT_TRUE(outcome.ok()) << outcome.message;
  EXPECT_TRUE(WaitFor([&] { return ProcessesWith(marker).empty(); }));
}

// The agent dies (kill -9) while its step hides a process with setsid: the step supervisor,
// which holds the agent's cgroup tree, kills that process too.
TEST_F(IsolationTest, AgentDeathKillsWhatLeftTheProcessGroup) {
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Isolation> probe,
                         Isolation::Create(IsolationOptions(), work_dir_));
    if (probe->kill_mechanism() != std::string("cgroup-v2")) {
      GTEST_SKIP() << "no usable cgroup v2 here: " << probe->kill_fallback_reason();
    }
  }
  const std::string marker = UniqueSleep();
  const StepCommand command =
      Script(workspace_, absl::StrCat("setsid sh -c 'sleep ", marker, "' & sleep 300"));
  const pid_t agent = ::fork();
  ASSERT_GE(agent, 0);
  if (agent == 0) {  // the "agent": runs the step until the test kills it; never returns
    absl::StatusOr<std::unique_ptr<StepSupervisor>> supervisor = StepSupervisor::Start();
    absl::StatusOr<std::unique_ptr<Isolation>> isolation =
        Isolation::Create(IsolationOptions(), work_dir_);
    if (!supervisor.ok() || !isolation.ok() ||
        !(*supervisor)->GuardCgroup((*isolation)->cgroup_tree_fd())) {
      ::_exit(3);
    }
    StepRunner runner(supervisor->get(), isolation->get());
    runner.Run(command, [](int64_t, absl::string_view) {});
    ::_exit(0);
  }
  const bool started = WaitFor([&] { return ProcessesWith(marker).size() >= 2; });
  ::kill(agent, SIGKILL);
  int status;
  while (::waitpid(agent, &status, 0) < 0 && errno == EINTR) {
  }
  ASSERT_TRUE(started) << "the step never started";
  EXPECT_TRUE(WaitFor([&] { return ProcessesWith(marker).empty(); }))
      << "left running after the agent died: " << ProcessesWith(marker).size() << " process(es)";
  for (pid_t pid : ProcessesWith(marker)) ::kill(pid, SIGKILL);
}

// The control: with process groups only (the fallback), the same escape survives the cancel.
// This is what the cgroup is for, and it proves the checks above can fail.
TEST_F(IsolationTest, ProcessGroupFallbackMissesTheSetsidEscape) {
  IsolationOptions options;
  options.cgroups = false;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Isolation> isolation, Isolation::Create(options, work_dir_));
  EXPECT_STREQ(isolation->kill_mechanism(), "process-group");
  StepOutcome outcome;
  const std::string marker = RunEscapingStep(*isolation, workspace_, /*cancel=*/true, &outcome);
  EXPECT_EQ(outcome.kind, StepOutcome::Kind::kCancelled);
  const std::vector<pid_t> left = ProcessesWith(marker);
  EXPECT_FALSE(left.empty()) << "the escape was killed without a cgroup: the control is broken";
  for (pid_t pid : left) ::kill(pid, SIGKILL);
}

// --- the step user ------------------------------------------------------------------------------

TEST_F(IsolationTest, StepCannotReadTheAgentsCredentials) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: the step user is another user than ours";
  // The enrolled credential in the work dir, and a --token_file elsewhere, both 0600 root's.
  const std::string credential = work_dir_ + "/credential";
  const std::string token_file = dir_.path() + "/agent.token";
  for (const std::string& file : {credential, token_file}) {
    std::ofstream(file) << "SECRET-TOKEN-farm-42\n";
    ::chmod(file.c_str(), 0600);
  }
  IsolationOptions options;
  options.run_as = "nobody";
  options.secret_files = {token_file};
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Isolation> isolation, Isolation::Create(options, work_dir_));
  ASSERT_OK(isolation->SecureWorkDir({"cache"}));
  ASSERT_OK(isolation->HandOver(workspace_));
  StepRunner runner(nullptr, isolation.get());
  IsolationOutput output;
  const StepOutcome outcome = runner.Run(
      Script(workspace_, absl::StrCat("cat ", credential, " ", token_file, "; ls ", work_dir_,
                                      "; ls ", work_dir_, "/cache; id -un; echo made > mine")),
      output.Sink());
  EXPECT_EQ(outcome.kind, StepOutcome::Kind::kExited) << outcome.message;
  EXPECT_THAT(output.all(), Not(HasSubstr("SECRET-TOKEN")));
  EXPECT_THAT(output.all(), HasSubstr(absl::StrCat("cat: ", credential, ": Permission denied")));
  EXPECT_THAT(output.all(), HasSubstr(absl::StrCat("cat: ", token_file, ": Permission denied")));
  EXPECT_THAT(output.all(), HasSubstr("nobody"));
  EXPECT_EQ(testing::ReadFile(workspace_ + "/mine"), "made\n");  // its own workspace is writable
}

TEST_F(IsolationTest, ReadableTokenFileRefusesToStart) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: the step user is another user than ours";
  const std::string token_file = dir_.path() + "/agent.token";
  std::ofstream(token_file) << "SECRET\n";
  ::chmod(token_file.c_str(), 0644);
  IsolationOptions options;
  options.run_as = "nobody";
  options.secret_files = {token_file};
  options.cgroups = false;
  EXPECT_THAT(
      Isolation::Create(options, work_dir_),
      StatusIsWithMessage(absl::StatusCode::kFailedPrecondition,
                          HasSubstr(absl::StrCat(token_file, " holds the agent's credential"))));
}

TEST_F(IsolationTest, UnreachableWorkDirRefusesToStart) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: the step user is another user than ours";
  ::chmod(dir_.path().c_str(), 0700);
  IsolationOptions options;
  options.run_as = "nobody";
  options.cgroups = false;
  EXPECT_THAT(
      Isolation::Create(options, work_dir_),
      StatusIsWithMessage(absl::StatusCode::kFailedPrecondition, HasSubstr("cannot reach it")));
}

TEST_F(IsolationTest, ResourceLimitsApply) {
  IsolationOptions options;
  options.cgroups = false;
  ASSERT_OK_AND_ASSIGN(options.rlimits, ParseStepRlimits("nofile=77,fsize=1M"));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Isolation> isolation, Isolation::Create(options, work_dir_));
  StepRunner runner(nullptr, isolation.get());
  IsolationOutput output;
  const StepOutcome outcome =
      runner.Run(Script(workspace_, "ulimit -n; ulimit -Hn; ulimit -f"), output.Sink());
  EXPECT_TRUE(outcome.ok()) << outcome.message;
  EXPECT_EQ(output.all(), "77\n77\n2048\n");  // ulimit -f counts 512-byte blocks
}

// --- the bubblewrap sandbox ---------------------------------------------------------------------

class SandboxTest : public IsolationTest {
 protected:
  void SetUp() override {
    IsolationTest::SetUp();
    credential_ = work_dir_ + "/credential";
    std::ofstream(credential_) << "SECRET-TOKEN-farm-42\n";
    ::chmod(credential_.c_str(), 0600);
    IsolationOptions options;
    options.run_as = StepUserName();
    options.sandbox = SandboxKind::kBwrap;
    options.cgroups = false;
    absl::StatusOr<std::unique_ptr<Isolation>> isolation = Isolation::Create(options, work_dir_);
    if (!isolation.ok()) {
      GTEST_SKIP() << "no bubblewrap sandbox here (tests/run.sh installs bubblewrap): "
                   << isolation.status();
    }
    isolation_ = *std::move(isolation);
    ASSERT_OK(isolation_->HandOver(workspace_));
  }

  StepOutcome RunSandboxed(const std::string& script, bool network, IsolationOutput* output) {
    StepCommand command = Script(workspace_, script);
    command.argv = isolation_->Wrap(std::move(command.argv), workspace_, network);
    StepRunner runner(nullptr, isolation_.get());
    return runner.Run(command, output->Sink());
  }

  std::string credential_;
  std::unique_ptr<Isolation> isolation_;
};

TEST_F(SandboxTest, WritesOnlyItsWorkspace) {
  // A directory of the host that anyone may write to: only the sandbox stands in the way.
  const std::string outside = absl::StrCat("/var/tmp/farm-sandbox-", UniqueSleep());
  ASSERT_EQ(::mkdir(outside.c_str(), 0777), 0);
  ::chmod(outside.c_str(), 0777);
  IsolationOutput output;
  const StepOutcome outcome = RunSandboxed(
      absl::StrCat("echo in > inside && echo ok-inside; echo x > ", outside,
                   "/x || echo refused-outside; echo x > /usr/farm-x || echo refused-usr; ls ",
                   work_dir_, "; cat ", credential_, " || echo no-credential"),
      true, &output);
  const bool wrote_outside = std::filesystem::exists(outside + "/x");
  std::filesystem::remove_all(outside);
  EXPECT_EQ(outcome.kind, StepOutcome::Kind::kExited) << outcome.message;
  EXPECT_THAT(output.all(), HasSubstr("ok-inside"));
  EXPECT_THAT(output.all(), HasSubstr("refused-outside"));
  EXPECT_THAT(output.all(), HasSubstr("refused-usr"));
  EXPECT_THAT(output.all(), HasSubstr("no-credential"));
  EXPECT_THAT(output.all(), Not(HasSubstr("SECRET-TOKEN")));
  EXPECT_THAT(output.all(), Not(HasSubstr("\ncredential\n")));  // the work dir's listing
  EXPECT_EQ(testing::ReadFile(workspace_ + "/inside"), "in\n");
  EXPECT_FALSE(wrote_outside);
}

TEST_F(SandboxTest, HasAPrivateTmp) {
  const std::string host_file = absl::StrCat("/tmp/farm-sandbox-host-", UniqueSleep());
  std::ofstream(host_file) << "host\n";
  const std::string step_file = absl::StrCat("/tmp/farm-sandbox-step-", UniqueSleep());
  IsolationOutput output;
  const StepOutcome outcome = RunSandboxed(
      absl::StrCat("test -e ", host_file, " && echo sees-host || echo private; echo s > ",
                   step_file, " && echo wrote-tmp"),
      true, &output);
  std::filesystem::remove(host_file);
  EXPECT_TRUE(outcome.ok()) << outcome.message << output.all();
  EXPECT_THAT(output.all(), HasSubstr("private"));
  EXPECT_THAT(output.all(), HasSubstr("wrote-tmp"));
  EXPECT_FALSE(std::filesystem::exists(step_file));
}

TEST_F(SandboxTest, NetworkOffCannotReachALoopbackServer) {
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(listener, 8), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const std::string script =
      absl::StrCat("bash -c 'exec 3<>/dev/tcp/127.0.0.1/", ntohs(addr.sin_port),
                   "' && echo connected || echo no-connection");
  IsolationOutput on;
  EXPECT_TRUE(RunSandboxed(script, /*network=*/true, &on).ok());
  EXPECT_THAT(on.all(), HasSubstr("connected"));  // the control: the server is reachable
  IsolationOutput off;
  EXPECT_TRUE(RunSandboxed(script, /*network=*/false, &off).ok());
  EXPECT_THAT(off.all(), HasSubstr("no-connection"));
  ::close(listener);
}

}  // namespace
}  // namespace farm::agent
