// MiniFarm: a whole farm on this machine for integration tests. It runs the real binaries
// (farm-coordinator, farm-agent, farmctl) as subprocesses in a private temp directory, on
// 127.0.0.1 with kernel-chosen ports, and lets a test kill, stop and restart them.
//
//   ASSERT_OK_AND_ASSIGN(auto farm, MiniFarm::Create());
//   ASSERT_OK(farm->StartCoordinator());
//   ASSERT_OK(farm->StartAgent(AgentOptions{"a1", {{"pool", "x"}}}));
//   ASSERT_OK_AND_ASSIGN(std::string id, farm->SubmitJobFile("steps: [{run: 'true'}]"));
//   ASSERT_OK_AND_ASSIGN(farm::v1::Job job, farm->WaitForJobDone(id));
//
// Everything a test observes goes through farmctl, as a user's would: jobs are read with
// `farmctl get --output=json` and parsed as farm.v1.Job.
//
// Thread-compatible: use a MiniFarm from the test's main thread (see subprocess.h about
// PR_SET_PDEATHSIG). The destructor stops agents, then the coordinator (SIGTERM, then SIGKILL
// after a grace period), and when the current test has failed prints the tail of every
// process's log to stderr. FARM_TEST_KEEP=1 in the environment keeps the directory.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/channel.h"
#include "farm/v1/farm.pb.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"

namespace farm::testing {

// Polls `condition` every `poll` until it returns true (OK) or `timeout` passes
// (DEADLINE_EXCEEDED naming `what`). This is how tests wait: on a condition, with a deadline.
absl::Status WaitFor(const std::function<bool()>& condition, absl::Duration timeout,
                     absl::string_view what = "condition",
                     absl::Duration poll = absl::Milliseconds(10));

// What a finished command printed and how it exited (128 + N when killed by signal N).
struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
  // "exit N; stdout: ...; stderr: ..." for assertion messages.
  std::string DebugString() const;
};

struct MiniFarmOptions {
  // Where the three binaries are. Empty: $FARM_BIN_DIR, else the build tree's bin/ directory
  // compiled into the harness. (`= {}` on the members without a default of their own lets
  // MiniFarmOptions{.tls = true} leave them out.)
  std::string bin_dir = {};
  // How long a coordinator may take to write its port file.
  absl::Duration start_timeout = absl::Seconds(20);
  // Default deadline of one farmctl invocation.
  absl::Duration command_timeout = absl::Seconds(30);
  // Grace between SIGTERM and SIGKILL at teardown.
  absl::Duration stop_timeout = absl::Seconds(10);
  // TLS on: Create() makes a CA and certificates in <root>/certs (common/certs.h); the
  // coordinator serves TLS and knows callers by their certificates: farmctl as
  // farm://admin/admin, each agent as farm://agent/NAME. Off: a development farm (--insecure:
  // plaintext, no authentication).
  bool tls = false;
  // Names (DNS or IP) the coordinator's certificate holds besides 127.0.0.1 and localhost:
  // where the coordinator listens elsewhere (a network namespace's address).
  std::vector<std::string> tls_hosts = {};
};

// "--run_as=ME" with this process's user: agents a test starts run their steps as the test's
// user, whose private temp directories another step user could not reach.
std::string RunAsSelfFlag();

struct AgentOptions {
  // Members without a default of their own get `{}`, so that AgentOptions{"a1"} says all it means.
  std::string name;
  std::map<std::string, std::string> labels =
      {};  // passed as --labels=k=v,... (omitted when empty)
  int slots = 1;
  // e.g. "--keep_failed". Without a --run_as among them, the agent gets --run_as=<the test's
  // own user>: steps run as the test does (the agent's default as root is an unprivileged user,
  // which cannot reach the farm's private directory).
  std::vector<std::string> extra_flags = {};
};

class MiniFarm {
 public:
  // Creates the farm's directory; starts nothing. INTERNAL when the directory cannot be made.
  static absl::StatusOr<std::unique_ptr<MiniFarm>> Create(MiniFarmOptions options = {});
  ~MiniFarm();
  MiniFarm(const MiniFarm&) = delete;
  MiniFarm& operator=(const MiniFarm&) = delete;

  // ---- files
  // The farm's private directory; tests may create files in it (e.g. with Path()).
  const std::string& root() const { return root_.path(); }
  // root() + "/" + relative.
  std::string Path(const std::string& relative) const { return root_.Join(relative); }
  // Absolute path of a binary in the bin directory.
  std::string BinaryPath(const std::string& name) const;
  // How a client in the test process reaches the coordinator as admin (plaintext without TLS).
  const common::ClientSecurity& admin_security() const { return admin_security_; }
  // The flags that secure a farm-agent named `name` (with TLS: its own certificate, made on
  // first use); for agents a test starts itself.
  absl::StatusOr<std::vector<std::string>> AgentSecurityFlags(const std::string& name);
  // How a client in the test process reaches the coordinator as the agent `name` (its own
  // certificate; plaintext without TLS): to make the calls an agent would.
  absl::StatusOr<common::ClientSecurity> AgentSecurity(const std::string& name);

  // ---- coordinator
  // Starts farm-coordinator --listen=127.0.0.1:0 --data_dir=<root>/coordinator-data
  // --port_file=... plus `extra_flags`, and waits (start_timeout) for the port file.
  // FAILED_PRECONDITION when one is already running; UNAVAILABLE (with its stderr) when it
  // exits first; DEADLINE_EXCEEDED when it never writes the file.
  absl::Status StartCoordinator(std::vector<std::string> extra_flags = {});
  // Starts it again on the same data directory, with the same flags and on the same address, so
  // that running agents and saved addresses keep working. The previous process must have been
  // stopped or killed (FAILED_PRECONDITION otherwise).
  absl::Status RestartCoordinator();
  // SIGTERM; its exit code. DEADLINE_EXCEEDED (after SIGKILL) if it does not exit in `timeout`.
  absl::StatusOr<int> StopCoordinator(absl::Duration timeout = absl::Seconds(10));
  // kill -9, as a crash would.
  absl::Status KillCoordinator();
  // "127.0.0.1:PORT" once started.
  const std::string& coordinator_address() const { return coordinator_address_; }
  std::string coordinator_data_dir() const { return Path("coordinator-data"); }
  // The running coordinator process, or nullptr.
  Subprocess* coordinator() { return coordinator_.get(); }

  // ---- agents
  // Starts farm-agent --coordinator=<address> --name --labels --slots --work_dir=<root>/agents/NAME
  // (it does not wait for registration: see WaitForAgents). FAILED_PRECONDITION without a
  // coordinator or when an agent of that name runs.
  absl::Status StartAgent(AgentOptions options);
  // Until every agent in `names` is listed by `farmctl agents --output=json`.
  absl::Status WaitForAgents(const std::vector<std::string>& names,
                             absl::Duration timeout = absl::Seconds(20));
  // The agent's process, or nullptr.
  Subprocess* agent(const std::string& name);
  std::string agent_work_dir(const std::string& name) const;
  // SIGTERM (the agent drains); its exit code. DEADLINE_EXCEEDED after a SIGKILL.
  absl::StatusOr<int> StopAgent(const std::string& name,
                                absl::Duration timeout = absl::Seconds(10));
  absl::Status KillAgent(const std::string& name);

  // ---- farmctl
  // Runs farmctl --coordinator=<address> ARGS... (no --coordinator is added when args[0]
  // starts with "--coordinator") and waits for it. DEADLINE_EXCEEDED (with its output in the
  // message) when it runs past `timeout`; a non-zero exit is NOT an error here: look at
  // exit_code.
  absl::StatusOr<CommandResult> RunFarmctl(std::vector<std::string> args);
  absl::StatusOr<CommandResult> RunFarmctl(std::vector<std::string> args, absl::Duration timeout,
                                           const std::string& stdin_path = "");
  // The same with `input` on farmctl's stdin (e.g. `secret set NAME`); the file that carries it
  // is removed when farmctl ends.
  absl::StatusOr<CommandResult> RunFarmctlWithInput(std::vector<std::string> args,
                                                    const std::string& input);
  // Starts farmctl in the background (e.g. `submit --follow`), its stdout and stderr going to
  // the returned paths' files.
  struct Background {
    std::unique_ptr<Subprocess> process;
    std::string stdout_path;
    std::string stderr_path;
  };
  absl::StatusOr<Background> StartFarmctl(std::vector<std::string> args,
                                          const std::string& stdin_path = "");

  // Writes a job file (YAML or JSON text) under root() and returns its path.
  absl::StatusOr<std::string> WriteJobFile(const std::string& text,
                                           const std::string& extension = "yaml");
  // `farmctl submit FILE ARGS...`; the job id (the last non-empty stdout line). INTERNAL with
  // farmctl's output when it fails.
  absl::StatusOr<std::string> SubmitJobFile(const std::string& text,
                                            std::vector<std::string> extra_args = {});
  // `farmctl get ID --output=json`, raw and parsed. NOT_FOUND / INTERNAL with farmctl's output
  // when it fails; INTERNAL when the JSON is not a farm.v1.Job.
  absl::StatusOr<std::string> GetJobJson(const std::string& id);
  absl::StatusOr<farm::v1::Job> GetJob(const std::string& id);
  // Polls GetJob until `done(job)`; the job that satisfied it. DEADLINE_EXCEEDED with the last
  // state seen.
  absl::StatusOr<farm::v1::Job> WaitForJob(const std::string& id,
                                           const std::function<bool(const farm::v1::Job&)>& done,
                                           absl::Duration timeout = absl::Seconds(20));
  absl::StatusOr<farm::v1::Job> WaitForJobState(const std::string& id, farm::v1::JobState state,
                                                absl::Duration timeout = absl::Seconds(20));
  // Until the job is SUCCEEDED, FAILED or CANCELLED.
  absl::StatusOr<farm::v1::Job> WaitForJobDone(const std::string& id,
                                               absl::Duration timeout = absl::Seconds(20));
  // `farmctl get pN --output=json` parsed as a farm.v1.Pipeline, and polling it until every job
  // of it has ended (its state is SUCCEEDED, FAILED or CANCELLED).
  absl::StatusOr<farm::v1::Pipeline> GetPipeline(const std::string& id);
  absl::StatusOr<farm::v1::Pipeline> WaitForPipelineDone(
      const std::string& id, absl::Duration timeout = absl::Seconds(60));
  // `farmctl list --output=json ARGS...` / `farmctl agents --output=json`.
  absl::StatusOr<farm::v1::ListJobsResponse> ListJobs(std::vector<std::string> extra_args = {});
  absl::StatusOr<farm::v1::ListAgentsResponse> ListAgents();
  // `farmctl logs ID ARGS...`: the raw output. INTERNAL with farmctl's output when it fails.
  absl::StatusOr<std::string> Logs(const std::string& id, std::vector<std::string> extra_args = {});

 private:
  MiniFarm(MiniFarmOptions options, TempDir root);
  absl::Status LaunchCoordinator(const std::string& listen);
  void DumpLogs();

  // With options_.tls: makes the certificates and the flags below.
  absl::Status MakeCertificates();

  MiniFarmOptions options_;
  std::vector<std::string> coordinator_security_ = {"--insecure"};
  std::vector<std::string> farmctl_security_ = {"--insecure"};
  common::ClientSecurity admin_security_;
  TempDir root_;
  std::unique_ptr<Subprocess> coordinator_;
  std::vector<std::string> coordinator_flags_;
  std::string coordinator_address_;
  int coordinator_starts_ = 0;
  std::map<std::string, std::unique_ptr<Subprocess>> agents_;
  int farmctl_runs_ = 0;
  int job_files_ = 0;
};

// True for SUCCEEDED, FAILED and CANCELLED.
bool IsTerminal(farm::v1::JobState state);

}  // namespace farm::testing
