#include "agent/step_runner.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "tests/agent/test_util.h"

extern char** environ;

namespace farm::agent {
namespace {

using ::farm::agent::testing::ProcessGone;
using ::farm::agent::testing::ReadFile;
using ::farm::agent::testing::TempDir;
using ::farm::agent::testing::WaitFor;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

struct Chunk {
  int64_t offset;
  std::string data;
};

// Collects what the runner delivers; thread-safe so that a test can watch it while the step
// runs.
class Output {
 public:
  StepRunner::OutputSink Sink() {
    return [this](int64_t offset, absl::string_view data) {
      absl::MutexLock lock(&mu_);
      chunks_.push_back({offset, std::string(data)});
      all_.append(data.data(), data.size());
    };
  }
  std::string all() const {
    absl::MutexLock lock(&mu_);
    return all_;
  }
  std::vector<Chunk> chunks() const {
    absl::MutexLock lock(&mu_);
    return chunks_;
  }
  // Waits until the output contains `text`.
  bool WaitForText(const std::string& text, absl::Duration timeout = absl::Seconds(10)) {
    absl::MutexLock lock(&mu_);
    auto has = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return all_.find(text) != std::string::npos;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&has), timeout);
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<Chunk> chunks_ ABSL_GUARDED_BY(mu_);
  std::string all_ ABSL_GUARDED_BY(mu_);
};

class StepRunnerTest : public ::testing::Test {
 protected:
  StepCommand Script(const std::string& script) {
    StepCommand command;
    command.argv = {"/bin/sh", "-e", "-c", script};
    command.env = {"PATH=/usr/local/bin:/usr/bin:/bin"};
    command.cwd = dir_.path();
    command.kill_grace_ms = 10'000;
    return command;
  }

  TempDir dir_;
  StepRunner runner_;
  Output output_;
};

TEST_F(StepRunnerTest, CapturesInterleavedStdoutAndStderrInOrder) {
  // sleep between writes so that a reordering of the two streams would show.
  const StepOutcome outcome = runner_.Run(
      Script("echo out1; echo err1 >&2; echo out2; sleep 0.01; echo err2 >&2; printf tail"),
      output_.Sink());
  ASSERT_EQ(outcome.kind, StepOutcome::Kind::kExited);
  EXPECT_EQ(outcome.exit_code, 0);
  EXPECT_TRUE(outcome.ok());
  EXPECT_EQ(output_.all(), "out1\nerr1\nout2\nerr2\ntail");
  EXPECT_EQ(outcome.output_bytes, static_cast<int64_t>(output_.all().size()));
  int64_t expected_offset = 0;
  for (const Chunk& chunk : output_.chunks()) {
    EXPECT_EQ(chunk.offset, expected_offset);
    expected_offset += static_cast<int64_t>(chunk.data.size());
  }
  EXPECT_GT(outcome.pid, 0);
}

TEST_F(StepRunnerTest, ReportsExitCode) {
  const StepOutcome outcome = runner_.Run(Script("echo failing; exit 3"), output_.Sink());
  EXPECT_EQ(outcome.kind, StepOutcome::Kind::kExited);
  EXPECT_EQ(outcome.exit_code, 3);
  EXPECT_FALSE(outcome.ok());
  EXPECT_EQ(output_.all(), "failing\n");
}

TEST_F(StepRunnerTest, ShellDashEStopsAtTheFirstFailingCommand) {
  const StepOutcome outcome = runner_.Run(Script("false; echo not reached"), output_.Sink());
  EXPECT_EQ(outcome.exit_code, 1);
  EXPECT_EQ(output_.all(), "");
}

TEST_F(StepRunnerTest, ReportsSignal) {
  const StepOutcome outcome = runner_.Run(Script("kill -9 $$"), output_.Sink());
  EXPECT_EQ(outcome.kind, StepOutcome::Kind::kSignaled);
  EXPECT_EQ(outcome.signal, SIGKILL);
  EXPECT_FALSE(outcome.ok());
}

TEST_F(StepRunnerTest, SetsEnvironmentAndWorkingDirectory) {
  StepCommand command = Script("echo \"$GREETING $FARM_STEP\"; pwd; test ! -t 0 && cat");
  command.env.push_back("GREETING=hello");
  command.env.push_back("FARM_STEP=greet");
  const StepOutcome outcome = runner_.Run(command, output_.Sink());
  EXPECT_TRUE(outcome.ok()) << output_.all();
  // stdin is /dev/null: `cat` ends at once with nothing.
  EXPECT_EQ(output_.all(), absl::StrCat("hello greet\n", dir_.path(), "\n"));
}

TEST_F(StepRunnerTest, StepsRunAsProcessGroupLeaders) {
  const StepOutcome outcome = runner_.Run(Script("cut -d' ' -f5 /proc/$$/stat"), output_.Sink());
  ASSERT_TRUE(outcome.ok()) << output_.all();
  int pgid = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(output_.all()), &pgid)) << output_.all();
  EXPECT_EQ(pgid, outcome.pid);
}

TEST_F(StepRunnerTest, UsesTheGivenShell) {
  StepCommand command = Script("");
  command.argv = {"sh", "-c", "echo \"$0\" via-path"};
  const StepOutcome outcome = runner_.Run(command, output_.Sink());
  EXPECT_TRUE(outcome.ok());
  EXPECT_EQ(output_.all(), "sh via-path\n");
}

TEST_F(StepRunnerTest, MissingShellFailsToStart) {
  StepCommand command = Script("true");
  command.argv = {"/nonexistent/shell", "-c", "true"};
  const StepOutcome outcome = runner_.Run(command, output_.Sink());
  EXPECT_EQ(outcome.kind, StepOutcome::Kind::kFailedToStart);
  EXPECT_THAT(outcome.message, HasSubstr("cannot execute /nonexistent/shell"));
  EXPECT_FALSE(outcome.ok());

  command.argv = {"no-such-shell-anywhere", "-c", "true"};
  EXPECT_THAT(runner_.Run(command, output_.Sink()).message, HasSubstr("command not found"));
}

TEST_F(StepRunnerTest, MissingWorkingDirectoryFailsToStart) {
  StepCommand command = Script("true");
  command.cwd = dir_.path() + "/missing";
  const StepOutcome outcome = runner_.Run(command, output_.Sink());
  EXPECT_EQ(outcome.kind, StepOutcome::Kind::kFailedToStart);
  EXPECT_THAT(outcome.message, HasSubstr("cannot enter"));
}

TEST_F(StepRunnerTest, TimeoutSendsSigtermToTheGroup) {
  StepCommand command = Script("sleep 1000");
  command.timeout_ms = 200;
  command.kill_grace_ms = 60'000;  // the test would hang if TERM were not sent first
  const StepOutcome outcome = runner_.Run(command, output_.Sink());
  EXPECT_EQ(outcome.kind, StepOutcome::Kind::kTimedOut);
  EXPECT_EQ(outcome.signal, SIGTERM);
  EXPECT_FALSE(outcome.ok());
}

TEST_F(StepRunnerTest, TimeoutEscalatesToSigkillForTheWholeGroup) {
  // The shell and its background child ignore SIGTERM; both must still die.
  StepCommand command =
      Script("trap '' TERM; sleep 1000 & echo $! > grandchild.pid; echo ready; sleep 1000");
  command.timeout_ms = 300;
  command.kill_grace_ms = 300;
  const StepOutcome outcome = runner_.Run(command, output_.Sink());
  EXPECT_EQ(outcome.kind, StepOutcome::Kind::kTimedOut);
  EXPECT_EQ(outcome.signal, SIGKILL);
  EXPECT_EQ(output_.all(), "ready\n");
  int grandchild = 0;
  ASSERT_TRUE(absl::SimpleAtoi(
      absl::StripAsciiWhitespace(ReadFile(dir_.path() + "/grandchild.pid")), &grandchild));
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(grandchild); })) << "pid " << grandchild;
  EXPECT_TRUE(ProcessGone(outcome.pid));
}

TEST_F(StepRunnerTest, CancelKillsARunningSleep) {
  StepCommand command = Script("echo started; sleep 1000");
  command.kill_grace_ms = 60'000;
  StepOutcome outcome;
  std::thread run([&] { outcome = runner_.Run(command, output_.Sink()); });
  ASSERT_TRUE(output_.WaitForText("started\n"));
  runner_.Cancel();
  run.join();
  EXPECT_EQ(outcome.kind, StepOutcome::Kind::kCancelled);
  EXPECT_EQ(outcome.signal, SIGTERM);  // not the SIGKILL a minute later
  EXPECT_LT(outcome.duration_ms, command.kill_grace_ms);
  EXPECT_TRUE(ProcessGone(outcome.pid));
  EXPECT_TRUE(runner_.cancelled());
}

TEST_F(StepRunnerTest, CancelBeforeRunStartsNothing) {
  runner_.Cancel();
  const StepOutcome outcome = runner_.Run(Script("touch ran"), output_.Sink());
  EXPECT_EQ(outcome.kind, StepOutcome::Kind::kCancelled);
  EXPECT_EQ(outcome.pid, 0);
  EXPECT_FALSE(std::filesystem::exists(dir_.path() + "/ran"));
}

TEST_F(StepRunnerTest, BackgroundProcessHoldingThePipeDoesNotHangTheStep) {
  StepCommand command = Script("sleep 1000 & echo $! > bg.pid; echo done");
  command.kill_grace_ms = 60'000;
  const StepOutcome outcome = runner_.Run(command, output_.Sink());
  EXPECT_TRUE(outcome.ok());
  EXPECT_EQ(output_.all(), "done\n");
  int bg = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFile(dir_.path() + "/bg.pid")), &bg));
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(bg); }));
}

TEST_F(StepRunnerTest, BackgroundProcessesDoNotOutliveTheStep) {
  const StepOutcome outcome =
      runner_.Run(Script("sleep 1000 >/dev/null 2>&1 & echo $! > bg.pid"), output_.Sink());
  EXPECT_TRUE(outcome.ok());
  int bg = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFile(dir_.path() + "/bg.pid")), &bg));
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(bg); }));
}

TEST_F(StepRunnerTest, ManySmallWritesWithin100msArriveAsOneChunk) {
  const StepOutcome outcome = runner_.Run(
      Script("i=0; while [ $i -lt 50 ]; do echo line$i; i=$((i+1)); done"), output_.Sink());
  ASSERT_TRUE(outcome.ok());
  const std::vector<Chunk> chunks = output_.chunks();
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0].offset, 0);
  EXPECT_THAT(chunks[0].data, HasSubstr("line0\nline1\n"));
  EXPECT_THAT(chunks[0].data, HasSubstr("line49\n"));
}

TEST_F(StepRunnerTest, OutputIsSentAfter100msWithoutWaitingForMore) {
  // The first line must be delivered while the step still runs.
  StepCommand command = Script("echo first; sleep 1000");
  command.kill_grace_ms = 60'000;
  StepOutcome outcome;
  std::thread run([&] { outcome = runner_.Run(command, output_.Sink()); });
  EXPECT_TRUE(output_.WaitForText("first\n"));
  runner_.Cancel();
  run.join();
  const std::vector<Chunk> chunks = output_.chunks();
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0].data, "first\n");
}

TEST_F(StepRunnerTest, BurstIsCutAt64KiB) {
  const StepOutcome outcome = runner_.Run(Script("head -c 204800 /dev/zero"), output_.Sink());
  ASSERT_TRUE(outcome.ok());
  const std::vector<Chunk> chunks = output_.chunks();
  std::vector<int64_t> offsets, sizes;
  for (const Chunk& c : chunks) {
    offsets.push_back(c.offset);
    sizes.push_back(static_cast<int64_t>(c.data.size()));
  }
  EXPECT_THAT(sizes, ElementsAre(65536, 65536, 65536, 8192));
  EXPECT_THAT(offsets, ElementsAre(0, 65536, 131072, 196608));
  EXPECT_EQ(outcome.output_bytes, 204800);
}

TEST_F(StepRunnerTest, StepDoesNotInheritBlockedSignals) {
  // The agent blocks SIGTERM in its threads; a step must still be killable by it.
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, &old);
  StepCommand command = Script("kill -TERM $$; sleep 5");
  const StepOutcome outcome = runner_.Run(command, output_.Sink());
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  EXPECT_EQ(outcome.kind, StepOutcome::Kind::kSignaled);
  EXPECT_EQ(outcome.signal, SIGTERM);
}

}  // namespace
}  // namespace farm::agent
