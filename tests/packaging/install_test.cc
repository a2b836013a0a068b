// The packages on three "machines": installs the built farm-coordinator, farm-agent and farmctl
// with dpkg -i, then runs the coordinator in one network namespace and two agents in two
// others, joined by a bridge (in a fourth namespace, so that this machine's firewall does not
// see their traffic). TLS from `farmctl certs init`, each agent enrolled with its own enrollment
// token, the quickstart pipeline (deploy/examples/release.yaml) run across them; it must succeed
// with jobs on both agents. Everything runs from the INSTALLED files: /usr/bin's binaries, with
// the command lines of the installed units (ExecStart= with /etc/default/NAME expanded), as
// their User=/Group=, NoNewPrivileges= and CapabilityBoundingSet= say (setpriv), in the
// directories StateDirectory= names (made here as systemd would make them). systemd is not
// PID 1 on the CI machine, so the services themselves are not started.
//
// Each agent machine has its own host name (the agent's name), /var/lib/farm-agent and
// /etc/farm/enroll.token (bind mounts in a mount namespace of its own), as separate machines
// would. At the end the packages are purged and what the test made is removed: the users the
// packages made too, when they did not exist before.
//
// Needs root (dpkg, users, namespaces); skips with the reason otherwise, and when the packages
// or their directories are on this machine already (it would replace and purge them).
#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "farm/v1/farm.pb.h"
#include "google/protobuf/util/json_util.h"
#include "tests/packaging/packages.h"
#include "tests/testing/mini_farm.h"
#include "tests/testing/netns.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"

namespace farm::packaging {
namespace {

using farm::testing::FileExists;
using farm::testing::FindIp;
using farm::testing::Ip;
using farm::testing::ReadFile;
using farm::testing::ReadFileOrEmpty;
using farm::testing::RemoveStaleNamespaces;
using farm::testing::Subprocess;
using farm::testing::SubprocessOptions;
using farm::testing::TailLines;
using farm::testing::TempDir;
using farm::testing::WaitFor;
using farm::testing::WriteFile;

// A /24 that exists only inside the test's namespaces (nothing routes to it from here).
constexpr char kSubnet[] = "10.231.7.";
// What the packaged /etc/default/farm-coordinator listens on (0.0.0.0:7070).
constexpr int kPort = 7070;
constexpr char kCerts[] = "/etc/farm/certs";
constexpr char kUnitDir[] = "/lib/systemd/system/";
// Namespace prefixes (followed by this process's pid): the switch, the coordinator, agents.
constexpr const char* kPrefixes[] = {"farmpkgs", "farmpkgc", "farmpkga", "farmpkgb"};

template <typename Message>
absl::StatusOr<Message> ParseJson(const std::string& json) {
  Message message;
  auto status = google::protobuf::util::JsonStringToMessage(json, &message);
  if (!status.ok()) return absl::InternalError(absl::StrCat(status.ToString(), ": ", json));
  return message;
}

// One machine of the farm: a network namespace with an address on the bridge.
struct Machine {
  std::string host_name;  // for agents: their name
  std::string netns;
  std::string address;
  std::string log;  // the process's stdout and stderr, as the journal would have them
  std::unique_ptr<Subprocess> process;
};

class InstalledPackagesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) {
      GTEST_SKIP() << "needs root: dpkg -i, system users and network namespaces";
    }
    ip_ = FindIp();
    for (const char* tool : {"dpkg", "dpkg-query", "setpriv", "unshare", "mount", "userdel"}) {
      if (FindTool(tool).empty()) GTEST_SKIP() << "needs " << tool << " (util-linux, dpkg, passwd)";
    }
    if (ip_.empty()) GTEST_SKIP() << "needs iproute2's `ip`";
    ASSERT_OK_AND_ASSIGN(scratch_, TempDir::Create("farm-install"));
    for (const char* name : kPackages) {
      ASSERT_OK_AND_ASSIGN(Output status, Tool("dpkg-query", {"-W", "-f=${Status}", name}));
      if (absl::StrContains(status.out, "ok installed")) {
        GTEST_SKIP() << name
                     << " is installed on this machine; the test would replace and purge it";
      }
    }
    for (const char* path : {"/etc/farm", "/var/lib/farm", "/var/lib/farm-agent"}) {
      if (FileExists(path)) GTEST_SKIP() << path << " exists; the test would remove it";
    }
    had_user_farm_ = getpwnam("farm") != nullptr;
    had_user_build_ = getpwnam("farm-build") != nullptr;
    ASSERT_NO_FATAL_FAILURE(MakeNetwork());
    if (IsSkipped()) return;
    ASSERT_NO_FATAL_FAILURE(Install());
  }

  void TearDown() override {
    for (Machine* m : {&agents_[0], &agents_[1], &coordinator_}) {
      if (m->process != nullptr) (void)m->process->Kill9();
      if (HasFailure() && !m->log.empty()) {
        std::cerr << "--- " << m->host_name << " (" << m->log << "):\n"
                  << TailLines(ReadFileOrEmpty(m->log), 40) << std::endl;
      }
    }
    if (!scratch_.has_value()) return;
    for (const std::string& ns : namespaces_) {
      EXPECT_OK(Ip(ip_, scratch_->path(), {"netns", "del", ns}));  // the veths and bridge go too
    }
    if (installed_) {
      std::vector<std::string> purge = {"--purge"};
      purge.insert(purge.end(), std::begin(kPackages), std::end(kPackages));
      absl::StatusOr<Output> out = Tool("dpkg", purge, absl::Minutes(2));
      EXPECT_TRUE(out.ok() && out->exit_code == 0) << (out.ok() ? out->DebugString() : "");
    }
    // What the test made as an operator (and systemd) would have: certificates, the enrollment
    // token's mount point, the state directories the packages' postrm left.
    std::error_code ec;
    for (const char* path : {"/etc/farm", "/var/lib/farm", "/var/lib/farm-agent"}) {
      std::filesystem::remove_all(path, ec);
    }
    if (installed_ && !had_user_farm_) EXPECT_OK(RemoveUser("farm"));
    if (installed_ && !had_user_build_) EXPECT_OK(RemoveUser("farm-build"));
  }

  absl::StatusOr<Output> Tool(const std::string& name, std::vector<std::string> args,
                              absl::Duration timeout = absl::Seconds(60)) {
    return RunCommand(FindTool(name), std::move(args), scratch_->path(), timeout);
  }

  absl::Status RemoveUser(const std::string& user) {
    FARM_ASSIGN_OR_RETURN(Output out, Tool("userdel", {user}));
    if (out.exit_code != 0) return absl::InternalError("userdel " + user + ": " + out.err);
    if (getgrnam(user.c_str()) != nullptr) {  // a group of the same name, left behind
      FARM_ASSIGN_OR_RETURN(out, Tool("groupdel", {user}));
    }
    return absl::OkStatus();
  }

  void Install() {
    std::vector<std::string> args = {"-i"};
    for (const char* name : kPackages) {
      ASSERT_OK_AND_ASSIGN(std::string deb, FindPackage(name));
      args.push_back(deb);
    }
    installed_ = true;  // from here on, purge at the end whatever happened
    ASSERT_OK_AND_ASSIGN(Output out, Tool("dpkg", args, absl::Minutes(2)));
    ASSERT_EQ(out.exit_code, 0) << "dpkg -i: " << out.DebugString();
  }

  // A bridge in a namespace of its own, and a veth from it to each machine's namespace.
  void MakeNetwork() {
    const std::string pid = absl::StrCat(getpid());
    for (const char* prefix : kPrefixes) RemoveStaleNamespaces(ip_, scratch_->path(), prefix);
    const std::string lan = kPrefixes[0] + pid;
    absl::Status added = Ip(ip_, scratch_->path(), {"netns", "add", lan});
    if (absl::IsPermissionDenied(added)) {
      GTEST_SKIP() << "network namespaces are not permitted here: " << added.message();
    }
    ASSERT_OK(added);
    namespaces_.push_back(lan);
    ASSERT_OK(Ip(ip_, scratch_->path(), {"-n", lan, "link", "add", "br0", "type", "bridge"}));
    ASSERT_OK(Ip(ip_, scratch_->path(), {"-n", lan, "link", "set", "br0", "up"}));
    Machine* machines[] = {&coordinator_, &agents_[0], &agents_[1]};
    const char* host_names[] = {"coordinator", "builder-a", "builder-b"};
    for (int i = 0; i < 3; ++i) {
      Machine& m = *machines[i];
      m.host_name = host_names[i];
      m.netns = kPrefixes[i + 1] + pid;
      m.address = absl::StrCat(kSubnet, i + 1);
      m.log = scratch_->Join(m.host_name + ".log");
      const std::string inside = absl::StrCat("fpk", i, "i", pid);
      const std::string port = absl::StrCat("fpk", i, "p", pid);
      ASSERT_OK(Ip(ip_, scratch_->path(), {"netns", "add", m.netns}));
      namespaces_.push_back(m.netns);
      for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
               {"link", "add", inside, "type", "veth", "peer", "name", port},
               {"link", "set", inside, "netns", m.netns},
               {"link", "set", port, "netns", lan},
               {"-n", lan, "link", "set", port, "master", "br0", "up"},
               {"-n", m.netns, "addr", "add", m.address + "/24", "dev", inside},
               {"-n", m.netns, "link", "set", inside, "up"},
               {"-n", m.netns, "link", "set", "lo", "up"}}) {
        ASSERT_OK(Ip(ip_, scratch_->path(), args));
      }
    }
  }

  // The installed unit's command line, run as the unit says: setpriv with its User=, Group=,
  // NoNewPrivileges= and CapabilityBoundingSet=, then ExecStart= with the variables of its
  // EnvironmentFile= expanded.
  absl::StatusOr<std::vector<std::string>> UnitCommand(const std::string& unit_name) {
    FARM_ASSIGN_OR_RETURN(std::string text, ReadFile(kUnitDir + unit_name + ".service"));
    const UnitFile unit = ParseUnit(text);
    const std::string env_setting = UnitValue(unit, "Service", "EnvironmentFile");
    absl::string_view env_view = env_setting;
    const bool optional = absl::ConsumePrefix(&env_view, "-");
    const std::string env_file(env_view);
    std::map<std::string, std::string> env;
    if (!env_file.empty()) {
      absl::StatusOr<std::string> env_text = ReadFile(env_file);
      if (!env_text.ok() && !optional) return env_text.status();
      env = ParseEnvironmentFile(env_text.value_or(""));
    }
    std::vector<std::string> command = {FindTool("setpriv")};
    const std::string user = UnitValue(unit, "Service", "User");
    const std::string group = UnitValue(unit, "Service", "Group");
    if (!user.empty()) command.insert(command.end(), {"--reuid=" + user, "--init-groups"});
    if (!group.empty()) command.push_back("--regid=" + group);
    if (UnitValue(unit, "Service", "NoNewPrivileges") == "yes") command.push_back("--no-new-privs");
    const auto& service = unit.at("Service");
    if (service.count("CapabilityBoundingSet") > 0) {
      std::string caps = "-all";
      for (absl::string_view cap : absl::StrSplit(
               UnitValue(unit, "Service", "CapabilityBoundingSet"), ' ', absl::SkipWhitespace())) {
        absl::ConsumePrefix(&cap, "CAP_");
        absl::StrAppend(&caps, ",+", absl::AsciiStrToLower(cap));
      }
      command.push_back("--bounding-set=" + caps);
    }
    command.push_back("--");
    FARM_ASSIGN_OR_RETURN(std::vector<std::string> exec,
                          ExpandExecStart(UnitValue(unit, "Service", "ExecStart"), env));
    command.insert(command.end(), exec.begin(), exec.end());
    return command;
  }

  // Runs `command` in `machine`'s namespace (and, with `prelude`, first the shell commands of
  // `prelude` in a mount and UTS namespace of its own).
  absl::Status Launch(Machine& machine, std::vector<std::string> command,
                      const std::vector<std::string>& prelude = {}) {
    SubprocessOptions options;
    options.binary = ip_;
    options.args = {"netns", "exec", machine.netns};
    if (!prelude.empty()) {
      options.args.insert(
          options.args.end(),
          {FindTool("unshare"), "--mount", "--uts", "--propagation=private", "--", "/bin/sh", "-c",
           absl::StrCat(absl::StrJoin(prelude, " && "), " && exec \"$@\""), machine.host_name});
    }
    options.args.insert(options.args.end(), command.begin(), command.end());
    options.stdout_path = machine.log;
    options.stderr_path = machine.log + ".stderr";
    std::cout << machine.host_name << ": " << absl::StrJoin(options.args, " ") << std::endl;
    FARM_ASSIGN_OR_RETURN(machine.process, Subprocess::Start(options));
    machine.log = options.stderr_path;  // where the binaries log
    return absl::OkStatus();
  }

  // farmctl on the coordinator's machine, as its admin (the admin certificate of certs init).
  absl::StatusOr<Output> Farmctl(std::vector<std::string> args,
                                 absl::Duration timeout = absl::Seconds(60)) {
    std::vector<std::string> argv = {"netns",
                                     "exec",
                                     coordinator_.netns,
                                     "/usr/bin/farmctl",
                                     absl::StrCat("--tls_cert=", kCerts, "/admin.crt"),
                                     absl::StrCat("--tls_key=", kCerts, "/admin.key")};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(ip_, std::move(argv), scratch_->path(), timeout,
                      {{"FARM_COORDINATOR", absl::StrCat(coordinator_.address, ":", kPort)},
                       {"FARM_TLS_CA", absl::StrCat(kCerts, "/ca.crt")}});
  }

  void StartCoordinator();
  void StartAgent(Machine& agent);
  void RunPipeline();

  std::string ip_;
  std::optional<TempDir> scratch_;
  std::vector<std::string> namespaces_;
  Machine coordinator_;
  Machine agents_[2];
  bool installed_ = false;
  bool had_user_farm_ = false;
  bool had_user_build_ = false;
};

// As README says: certs init, the service's keys given to its user, the state directory made
// (by systemd: StateDirectory=farm), then the unit's command line.
void InstalledPackagesTest::StartCoordinator() {
  ASSERT_OK_AND_ASSIGN(Output certs,
                       Tool("farmctl", {"certs", "init", absl::StrCat("--dir=", kCerts),
                                        "--hosts=" + coordinator_.address}));
  ASSERT_EQ(certs.exit_code, 0) << certs.DebugString();
  struct passwd* farm = getpwnam("farm");
  ASSERT_NE(farm, nullptr) << "the package did not make the user farm";
  for (const char* key : {"coordinator.key", "secrets.key"}) {
    const std::string path = absl::StrCat(kCerts, "/", key);
    ASSERT_EQ(chown(path.c_str(), farm->pw_uid, farm->pw_gid), 0) << path;
  }
  ASSERT_EQ(chown(kCerts, 0, farm->pw_gid), 0);
  ASSERT_EQ(chmod(kCerts, 0750), 0);
  ASSERT_EQ(mkdir("/var/lib/farm", 0750), 0);
  ASSERT_EQ(chown("/var/lib/farm", farm->pw_uid, farm->pw_gid), 0);

  ASSERT_OK_AND_ASSIGN(std::vector<std::string> command, UnitCommand("farm-coordinator"));
  ASSERT_OK(Launch(coordinator_, command));
  ASSERT_OK(WaitFor(
      [&] {
        if (!coordinator_.process->IsRunning()) return true;
        absl::StatusOr<Output> out = Farmctl({"token", "list"}, absl::Seconds(10));
        return out.ok() && out->exit_code == 0;
      },
      absl::Seconds(60), "the coordinator to serve", absl::Milliseconds(200)));
  ASSERT_TRUE(coordinator_.process->IsRunning())
      << "the coordinator exited: " << ReadFileOrEmpty(coordinator_.log);
}

// The agent's machine: its enrollment token in /etc/farm/enroll.token and its state directory
// (StateDirectory=farm-agent, root's, mode 0711) as /var/lib/farm-agent, both its own.
void InstalledPackagesTest::StartAgent(Machine& agent) {
  ASSERT_OK_AND_ASSIGN(Output enroll, Farmctl({"agent", "enroll-token", "--ttl=15m"}));
  ASSERT_EQ(enroll.exit_code, 0) << enroll.DebugString();
  const std::string token = scratch_->Join(agent.host_name + ".enroll-token");
  ASSERT_OK(WriteFile(token, std::string(absl::StripAsciiWhitespace(enroll.out)) + "\n"));
  ASSERT_EQ(chmod(token.c_str(), 0600), 0);
  const std::string state = scratch_->Join(agent.host_name + ".state");
  ASSERT_EQ(mkdir(state.c_str(), 0711), 0);
  // The mount points, on this machine.
  std::error_code ec;
  std::filesystem::create_directory("/var/lib/farm-agent", ec);
  ASSERT_EQ(chmod("/var/lib/farm-agent", 0711), 0);
  if (!FileExists("/etc/farm/enroll.token")) ASSERT_OK(WriteFile("/etc/farm/enroll.token", ""));
  ASSERT_EQ(chmod("/etc/farm/enroll.token", 0600), 0);

  ASSERT_OK_AND_ASSIGN(std::vector<std::string> command, UnitCommand("farm-agent"));
  ASSERT_OK(Launch(agent, command,
                   {"hostname " + agent.host_name, "mount --bind " + state + " /var/lib/farm-agent",
                    "mount --bind " + token + " /etc/farm/enroll.token"}));
}

// release.yaml across the two agents: it succeeds, and each agent ran some of its jobs.
void InstalledPackagesTest::RunPipeline() {
  ASSERT_OK_AND_ASSIGN(
      Output submit,
      Farmctl({"submit", FARM_SOURCE_DIR "/deploy/examples/release.yaml", "--follow"},
              absl::Minutes(3)));
  std::cout << submit.out << std::endl;
  ASSERT_EQ(submit.exit_code, 0) << "the pipeline did not succeed: " << submit.DebugString();
  const std::string pipeline_id(
      absl::StripAsciiWhitespace(submit.out.substr(0, submit.out.find('\n'))));
  ASSERT_OK_AND_ASSIGN(Output get, Farmctl({"get", pipeline_id, "--output=json"}));
  ASSERT_EQ(get.exit_code, 0) << get.DebugString();
  ASSERT_OK_AND_ASSIGN(farm::v1::Pipeline pipeline, ParseJson<farm::v1::Pipeline>(get.out));
  EXPECT_EQ(pipeline.state(), farm::v1::SUCCEEDED) << pipeline.ShortDebugString();
  ASSERT_EQ(pipeline.jobs_size(), 4) << pipeline.ShortDebugString();  // 2 builds, test, package
  std::set<std::string> ran_on;
  for (const farm::v1::PipelineJob& pipeline_job : pipeline.jobs()) {
    ASSERT_OK_AND_ASSIGN(Output job_json, Farmctl({"get", pipeline_job.job_id(), "--output=json"}));
    ASSERT_OK_AND_ASSIGN(farm::v1::Job job, ParseJson<farm::v1::Job>(job_json.out));
    for (const farm::v1::Attempt& attempt : job.attempts()) {
      if (attempt.outcome() == farm::v1::ATTEMPT_SUCCEEDED) ran_on.insert(attempt.agent());
    }
    std::cout << pipeline_job.name() << ": " << farm::v1::JobState_Name(job.state()) << " on "
              << (job.attempts().empty() ? "-" : job.attempts().rbegin()->agent()) << std::endl;
  }
  EXPECT_EQ(ran_on, (std::set<std::string>{"builder-a", "builder-b"}))
      << "the pipeline's jobs did not run on both agents";
}

TEST_F(InstalledPackagesTest, ACoordinatorAndTwoAgentsFromThePackagesRunThePipeline) {
  // The users the maintainer scripts make.
  ASSERT_NE(getpwnam("farm"), nullptr);
  ASSERT_NE(getpwnam("farm-build"), nullptr);
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());

  // As an operator would: the coordinator's address added to the agent's flags (the last
  // --coordinator wins, over the packaged placeholder and any config file).
  ASSERT_OK_AND_ASSIGN(std::string defaults, ReadFile("/etc/default/farm-agent"));
  const std::map<std::string, std::string> env = ParseEnvironmentFile(defaults);
  auto flags = env.find("FARM_AGENT_FLAGS");
  ASSERT_OK(WriteFile(
      "/etc/default/farm-agent",
      absl::StrCat(defaults, "FARM_AGENT_FLAGS=\"", flags == env.end() ? "" : flags->second,
                   " --coordinator=", coordinator_.address, ":", kPort, "\"\n")));
  for (Machine& agent : agents_) ASSERT_NO_FATAL_FAILURE(StartAgent(agent));

  // Both enrolled, registered, and running steps as farm-build.
  farm::v1::ListAgentsResponse listed;
  ASSERT_OK(WaitFor(
      [&] {
        absl::StatusOr<Output> out = Farmctl({"agents", "--output=json"}, absl::Seconds(10));
        if (!out.ok() || out->exit_code != 0) return false;
        absl::StatusOr<farm::v1::ListAgentsResponse> parsed =
            ParseJson<farm::v1::ListAgentsResponse>(out->out);
        if (!parsed.ok()) return false;
        listed = *parsed;
        return listed.agents_size() == 2;
      },
      absl::Seconds(60), "both agents to register", absl::Milliseconds(250)));
  for (const farm::v1::AgentInfo& agent : listed.agents()) {
    std::cout << agent.ShortDebugString() << std::endl;
    EXPECT_EQ(agent.isolation().run_as(), "farm-build") << agent.ShortDebugString();
  }
  ASSERT_NO_FATAL_FAILURE(RunPipeline());

  // SIGTERM, as systemctl stop sends: both drain and exit cleanly, then the coordinator.
  for (Machine* m : {&agents_[0], &agents_[1], &coordinator_}) {
    absl::StatusOr<int> code = m->process->Terminate(absl::Seconds(60));
    EXPECT_TRUE(code.ok() && *code == 0) << m->host_name << ": " << code.status()
                                         << (code.ok() ? absl::StrCat(" exit ", *code) : "");
  }
}

}  // namespace
}  // namespace farm::packaging
