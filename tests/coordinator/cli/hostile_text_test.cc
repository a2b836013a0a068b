// farmctl against hostile text, end to end over real gRPC against the in-process FakeFarm: what
// agents and users named things (job names, labels, step names, agent names) and what jobs
// printed cannot drive the user's terminal, and farmctl refuses to send strings the coordinator
// would refuse, saying which field and why.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/clock.h"
#include "coordinator/cli/commands.h"
#include "coordinator/cli/options.h"
#include "tests/coordinator/cli/fake_farm.h"
#include "tests/coordinator/cli/usage_error.h"

namespace farm::cli {
namespace {

using ::farm::testing::FakeFarm;
using ::testing::HasSubstr;
using ::testing::Not;

// A pseudo-terminal's two ends: farmctl is told its stdout is the terminal side, while what it
// writes is captured from its stream as usual.
class Pty {
 public:
  Pty() {
    master_ = ::posix_openpt(O_RDWR | O_NOCTTY);
    if (master_ < 0 || ::grantpt(master_) != 0 || ::unlockpt(master_) != 0) return;
    const char* name = ::ptsname(master_);
    if (name != nullptr) terminal_ = ::open(name, O_RDWR | O_NOCTTY);
  }
  ~Pty() {
    if (terminal_ >= 0) ::close(terminal_);
    if (master_ >= 0) ::close(master_);
  }
  int terminal() const { return terminal_; }

 private:
  int master_ = -1;
  int terminal_ = -1;
};

class HostileTextTest : public ::testing::Test {
 protected:
  // Runs farmctl with `args`; `out_fd` is what its stdout is (-1: not a terminal).
  Result Run(const std::vector<std::string>& args, int out_fd = -1) {
    static common::FakeClock clock;
    std::ostringstream out;
    std::ostringstream err;
    std::istringstream in;
    CliIo io{out, err, in, clock, absl::UTCTimeZone()};
    io.out_fd = out_fd;
    absl::StatusOr<CliOptions> options = ParseArgs(args, farm_.address());
    if (!options.ok()) return {kExitUsage, "", std::string(options.status().message())};
    options->security.insecure = true;  // the test's coordinator serves plaintext on loopback
    const int code = RunCommand(*options, io);
    return {code, out.str(), err.str()};
  }

  // A job with one step whose output is `output` (in two chunks, cut at `cut`).
  std::string AddJobWithOutput(const std::string& output, size_t cut) {
    farm::v1::Job job;
    job.set_state(farm::v1::SUCCEEDED);
    job.mutable_spec()->add_steps()->set_name("build");
    const std::string id = farm_.AddJob(job);
    farm_.AppendLog(id, 1, 0, "build", output.substr(0, cut));
    farm_.AppendLog(id, 1, 0, "build", output.substr(cut));
    return id;
  }

  FakeFarm farm_;
};

// What a hostile job printed: a screen clear, a window-title change with a bell, a C1 CSI, a
// colour, and a UTF-8 character cut between the two chunks.
const std::string kHostileOutput =
    "\x1b[2J\x1b]0;pwned\x07\xc2\x9b"
    "31mred\tcaf\xc3\xa9\r\n";
constexpr size_t kCut = 27;  // inside "\xc3\xa9"

TEST_F(HostileTextTest, LogsOnATerminalShowsControlsEscaped) {
  Pty pty;
  ASSERT_GE(pty.terminal(), 0) << "no pseudo-terminal";
  ASSERT_EQ(kHostileOutput.substr(kCut - 1, 2), "\xc3\xa9");
  const std::string id = AddJobWithOutput(kHostileOutput, kCut);
  const Result r = Run({"logs", id}, pty.terminal());
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "\\x1b[2J\\x1b]0;pwned\\x07\\u009b31mred\tcaf\xc3\xa9\r\n");
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos);
}

TEST_F(HostileTextTest, LogsKeepsTheBytesWithRawOrWhenNotATerminal) {
  Pty pty;
  ASSERT_GE(pty.terminal(), 0) << "no pseudo-terminal";
  const std::string id = AddJobWithOutput(kHostileOutput, kCut);
  Result r = Run({"logs", id, "--raw"}, pty.terminal());
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, kHostileOutput);
  r = Run({"logs", id});  // a pipe or a file: the job's bytes, exactly
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, kHostileOutput);
}

TEST_F(HostileTextTest, GetListAndAgentsShowControlsInNamesAndLabelsEscaped) {
  farm::v1::Job job;
  job.set_state(farm::v1::FAILED);
  job.set_reason("step \x1b[8mhidden exited with 1");
  job.mutable_spec()->set_name("evil\x1b]0;title\x07");
  (*job.mutable_spec()->mutable_labels())["os\x1b[2J"] = "linux\xc2\x9b";  // C1 CSI
  job.mutable_spec()->add_steps()->set_name("st\x1b[1mep");
  const std::string id = farm_.AddJob(job);
  farm::v1::ListAgentsResponse agents;
  farm::v1::AgentInfo* agent = agents.add_agents();
  agent->set_name("agent\x1b[2J");
  agent->set_state("idle");
  (*agent->mutable_labels())["pool\x07"] = "x\x1b";
  farm_.SetAgents(agents);

  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"get", id}, {"list"}, {"agents"}}) {
    const Result r = Run(args);
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << args[0] << ":\n" << r.out;
    EXPECT_EQ(r.out.find('\x07'), std::string::npos) << args[0] << ":\n" << r.out;
    EXPECT_THAT(r.out, HasSubstr("\\x1b")) << args[0];
  }
  const Result get = Run({"get", id});
  EXPECT_THAT(get.out, HasSubstr("evil\\x1b]0;title\\x07"));
  EXPECT_THAT(get.out, HasSubstr("os\\x1b[2J=linux\\u009b"));
  EXPECT_THAT(get.out, HasSubstr("step \\x1b[8mhidden exited with 1"));
  EXPECT_THAT(get.out, HasSubstr("st\\x1b[1mep"));
  const Result list = Run({"agents"});
  EXPECT_THAT(list.out, HasSubstr("agent\\x1b[2J"));
  EXPECT_THAT(list.out, HasSubstr("pool\\x07=x\\x1b"));
}

TEST_F(HostileTextTest, StringsTheCoordinatorWouldRefuseAreNotSent) {
  const int calls = farm_.calls();
  Result r = Run({"get", "1\xff"});
  EXPECT_EQ(r.code, kExitError);
  EXPECT_EQ(r.err, "farmctl: job_id \"1\\xff\": is not valid UTF-8\n");
  EXPECT_THAT(r.err, Not(HasSubstr("libprotobuf")));
  EXPECT_THAT(r.err, Not(HasSubstr("older version")));
  r = Run({"cancel", std::string("7\0", 2)});
  EXPECT_EQ(r.code, kExitError);
  EXPECT_EQ(r.err, "farmctl: job_id \"7\\x00\": contains a NUL byte\n");
  EXPECT_EQ(farm_.calls(), calls);

  char dir_template[] = "/tmp/farmctl-hostile-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const std::string path = std::string(dir_template) + "/job.yaml";
  std::ofstream(path) << "labels: {\"os\\x1b\": linux}\nsteps: [{run: make}]\n";
  r = Run({"submit", path});
  EXPECT_EQ(r.code, kExitError);
  EXPECT_THAT(r.err, HasSubstr("labels key \"os\\x1b\": contains a control character"));
  EXPECT_TRUE(farm_.submit_requests().empty());
  ::unlink(path.c_str());
  ::rmdir(dir_template);
}

}  // namespace
}  // namespace farm::cli
