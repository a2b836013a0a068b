// Network partitions. One agent runs in its own network namespace, joined to the coordinator by a
// veth pair with addresses in a private /30 that exists only inside this machine (the
// coordinator listens on the host end; nothing leaves the machine). Bringing the namespace's end
// of the link down cuts that agent off; bringing it up heals the partition.
//
// - Shorter than the lease TTL, 10 times: the job finishes normally on the cut-off agent, with no
//   rerun, and its output (part of it written while cut off, so buffered and sent later) arrives
//   whole: no byte lost or doubled.
// - Longer than the TTL, 10 times: the lease expires, the job is rerun on the other agent and
//   succeeds there; after the heal, a completion for the first attempt (replayed through the
//   AgentService stub with its lease, as the cut-off agent would send it) is refused with
//   FAILED_PRECONDITION and changes nothing: the job has exactly one accepted result.
//
// Needs root (network namespaces, veth); skips with the reason when they are not permitted.
#include <grpcpp/client_context.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/channel.h"
#include "common/grpc_status.h"
#include "farm/v1/farm.grpc.pb.h"
#include "tests/fault/checker.h"
#include "tests/testing/mini_farm.h"
#include "tests/testing/netns.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"

namespace farm::fault {
namespace {

using farm::testing::FileExists;
using farm::testing::FindIp;
using farm::testing::Ip;
using farm::testing::MiniFarm;
using farm::testing::ReadFile;
using farm::testing::RemoveStaleNamespaces;
using farm::testing::Subprocess;
using farm::testing::SubprocessOptions;
using farm::testing::WaitFor;
using farm::testing::WriteFile;

constexpr int kCycles = 10;
// Short enough for the test, long against the partitions that must not cost the lease (at most
// 1.2 s, plus TCP's retransmission backoff after the heal, plus a heartbeat interval of TTL/3).
constexpr absl::Duration kLeaseTtl = absl::Seconds(5);

constexpr absl::string_view kNetnsPrefix = "farmpart";

class PartitionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ip_ = FindIp();
    if (ip_.empty()) GTEST_SKIP() << "the partition test needs iproute2's `ip`";
    // Names unique to this process; a /30 in 10.0.0.0/8 that no interface here uses.
    const int id = getpid();
    netns_ = absl::StrCat(kNetnsPrefix, id);
    host_if_ = absl::StrCat("fph", id);
    ns_if_ = absl::StrCat("fpn", id);
    std::mt19937 rng(static_cast<uint32_t>(getpid()));
    std::string prefix;
    for (int tries = 0; tries < 50 && prefix.empty(); ++tries) {
      const std::string candidate =
          absl::StrCat("10.", 200 + rng() % 50, ".", rng() % 256, ".", (rng() % 64) * 4);
      if (!AddressInUse(candidate)) prefix = candidate;
    }
    ASSERT_FALSE(prefix.empty()) << "no free private /30 found";
    const std::string base = prefix.substr(0, prefix.rfind('.') + 1);
    const int last = std::stoi(prefix.substr(prefix.rfind('.') + 1));
    host_addr_ = absl::StrCat(base, last + 1);
    ns_addr_ = absl::StrCat(base, last + 2);
    // TLS on, as on a real network: the coordinator's certificate names the link's address.
    ASSERT_OK_AND_ASSIGN(farm_, MiniFarm::Create({.tls = true, .tls_hosts = {host_addr_}}));
    RemoveStaleNamespaces(ip_, farm_->root(), kNetnsPrefix);

    absl::Status added = Ip(ip_, farm_->root(), {"netns", "add", netns_});
    if (absl::IsPermissionDenied(added)) {
      GTEST_SKIP() << "network namespaces are not permitted here (the partition test needs "
                      "root): "
                   << added.message();
    }
    ASSERT_OK(added);
    netns_added_ = true;
    absl::Status veth =
        Ip(ip_, farm_->root(), {"link", "add", host_if_, "type", "veth", "peer", "name", ns_if_});
    if (absl::IsPermissionDenied(veth)) {
      GTEST_SKIP() << "veth pairs are not permitted here: " << veth.message();
    }
    ASSERT_OK(veth);
    veth_added_ = true;
    ASSERT_OK(Ip(ip_, farm_->root(), {"link", "set", ns_if_, "netns", netns_}));
    ASSERT_OK(Ip(ip_, farm_->root(), {"addr", "add", host_addr_ + "/30", "dev", host_if_}));
    ASSERT_OK(Ip(ip_, farm_->root(), {"link", "set", host_if_, "up"}));
    ASSERT_OK(
        Ip(ip_, farm_->root(), {"-n", netns_, "addr", "add", ns_addr_ + "/30", "dev", ns_if_}));
    ASSERT_OK(Ip(ip_, farm_->root(), {"-n", netns_, "link", "set", ns_if_, "up"}));
    ASSERT_OK(Ip(ip_, farm_->root(), {"-n", netns_, "link", "set", "lo", "up"}));
    std::cout << "netns " << netns_ << ": coordinator on " << host_addr_ << ", agent on "
              << ns_addr_ << std::endl;

    // The coordinator listens only on the host end of the link (the last --listen wins).
    ASSERT_OK(farm_->StartCoordinator(
        {absl::StrCat("--listen=", host_addr_, ":0"),
         absl::StrCat("--lease_ttl=", absl::ToInt64Milliseconds(kLeaseTtl), "ms")}));
    ASSERT_OK(StartNamespacedAgent());
    farm::testing::AgentOptions host;
    host.name = "host-agent";
    host.labels = {{"pool", "part"}, {"side", "host"}};
    ASSERT_OK(farm_->StartAgent(host));
    ASSERT_OK(farm_->WaitForAgents({"ns-agent", "host-agent"}));
    ASSERT_OK_AND_ASSIGN(checker_, Checker::Create(farm_->coordinator_address(),
                                                   {.security = farm_->admin_security()}));
    effects_ = farm_->Path("effects.log");
  }

  void TearDown() override {
    if (ns_agent_ != nullptr) (void)ns_agent_->Kill9();
    ns_agent_.reset();
    if (farm_ != nullptr && veth_added_) {
      EXPECT_OK(Ip(ip_, farm_->root(), {"link", "del", host_if_}));  // both ends go
    }
    if (farm_ != nullptr && netns_added_) {
      EXPECT_OK(Ip(ip_, farm_->root(), {"netns", "del", netns_}));
    }
    farm_.reset();
  }

  bool AddressInUse(const std::string& prefix) {
    // /proc/net/fib_trie lists every address and route of this namespace.
    absl::StatusOr<std::string> trie = ReadFile("/proc/net/fib_trie");
    const std::string base = prefix.substr(0, prefix.rfind('.') + 1);
    return !trie.ok() || absl::StrContains(*trie, base);
  }

  // farm-agent inside the namespace, reaching the coordinator over the veth pair.
  absl::Status StartNamespacedAgent() {
    std::error_code ec;
    std::filesystem::create_directories(farm_->agent_work_dir("ns-agent"), ec);
    FARM_ASSIGN_OR_RETURN(std::vector<std::string> security, farm_->AgentSecurityFlags("ns-agent"));
    SubprocessOptions options;
    options.binary = ip_;
    options.args = {"netns", "exec", netns_, farm_->BinaryPath("farm-agent"),
                    absl::StrCat("--coordinator=", farm_->coordinator_address()), "--name=ns-agent",
                    "--slots=1", "--labels=pool=part,side=ns",
                    absl::StrCat("--work_dir=", farm_->agent_work_dir("ns-agent")),
                    // As MiniFarm's agents: steps run as the test (root here, for netns).
                    "--run_as=root"};
    options.args.insert(options.args.end(), security.begin(), security.end());
    options.stdout_path = farm_->Path("agent-ns-agent-1.stdout");
    options.stderr_path = farm_->Path("agent-ns-agent-1.stderr");
    FARM_ASSIGN_OR_RETURN(ns_agent_, Subprocess::Start(options));
    return absl::OkStatus();
  }

  absl::Status Partition() {
    return Ip(ip_, farm_->root(), {"-n", netns_, "link", "set", ns_if_, "down"});
  }
  absl::Status Heal() {
    return Ip(ip_, farm_->root(), {"-n", netns_, "link", "set", ns_if_, "up"});
  }

  // A job whose step prints a line, marks that it runs, waits (bounded) for `release` when it
  // is attempt 1, prints another line, and records its execution for the checker.
  farm::v1::JobSpec GatedJob(const std::string& name,
                             const std::map<std::string, std::string>& labels,
                             const std::string& release) {
    farm::v1::JobSpec spec;
    spec.set_name(name);
    spec.mutable_labels()->insert(labels.begin(), labels.end());
    farm::v1::StepSpec* step = spec.add_steps();
    step->set_name("gated");
    step->set_run(absl::StrCat("echo \"before $FARM_JOB_ID\"\n", "touch '", farm_->root(),
                               "'/\"started-$FARM_JOB_ID-$FARM_ATTEMPT\"\n",
                               "if [ \"$FARM_ATTEMPT\" = 1 ]; then\n", "  i=0\n",
                               "  while [ ! -e '", release,
                               "' ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done\n", "fi\n",
                               "echo \"after $FARM_JOB_ID\"\n", EffectStep(effects_).run(), "\n"));
    return spec;
  }

  // Whether attempt `attempt` of job `job_id` has run its step to the end.
  bool HasEffect(const std::string& job_id, int attempt) {
    absl::StatusOr<std::string> text = ReadFile(effects_);
    return text.ok() && absl::StrContains(absl::StrCat("\n", *text),
                                          absl::StrCat("\n", job_id, " ", attempt, "\n"));
  }

  absl::Status WaitStarted(const std::string& job_id, int attempt) {
    const std::string marker = farm_->Path(absl::StrCat("started-", job_id, "-", attempt));
    return WaitFor([&] { return FileExists(marker); }, absl::Seconds(30),
                   absl::StrCat("job ", job_id, " attempt ", attempt, " to start"));
  }

  std::string ip_;
  std::unique_ptr<MiniFarm> farm_;
  std::unique_ptr<Subprocess> ns_agent_;
  std::unique_ptr<Checker> checker_;
  std::string effects_;
  std::string netns_, host_if_, ns_if_, host_addr_, ns_addr_;
  bool netns_added_ = false;
  bool veth_added_ = false;
};

TEST_F(PartitionTest, ShorterThanTheTtlTheJobFinishesWithoutARerun) {
  std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<int> hold_ms(500, 1200);
  for (int cycle = 1; cycle <= kCycles; ++cycle) {
    SCOPED_TRACE(absl::StrCat("cycle ", cycle));
    const std::string release = farm_->Path(absl::StrCat("release-short-", cycle));
    ASSERT_OK_AND_ASSIGN(std::string id, checker_->Submit(GatedJob(absl::StrCat("short-", cycle),
                                                                   {{"side", "ns"}}, release)));
    ASSERT_OK(WaitStarted(id, 1));

    ASSERT_OK(Partition());
    const absl::Time cut = absl::Now();
    // The step finishes while its agent is cut off: its output and result must wait.
    ASSERT_OK(WriteFile(release, ""));
    ASSERT_OK(WaitFor([&] { return HasEffect(id, 1); }, absl::Seconds(3),
                      "the step to finish while cut off"));
    ASSERT_OK_AND_ASSIGN(farm::v1::Job cut_off, farm_->GetJob(id));
    EXPECT_EQ(cut_off.state(), farm::v1::RUNNING) << "the partition let the result through";
    const absl::Duration hold = absl::Milliseconds(hold_ms(rng));  // its length, at random
    if (absl::Now() - cut < hold) absl::SleepFor(hold - (absl::Now() - cut));
    ASSERT_OK(Heal());
    const absl::Duration partitioned = absl::Now() - cut;

    ASSERT_OK_AND_ASSIGN(farm::v1::Job job, farm_->WaitForJobDone(id, absl::Seconds(30)));
    std::cout << "short partition " << cycle << ": "
              << absl::FormatDuration(absl::Trunc(partitioned, absl::Milliseconds(1))) << ", job "
              << id << " " << farm::v1::JobState_Name(job.state()) << " after "
              << job.attempts_size() << " attempt(s)" << std::endl;
    EXPECT_EQ(job.state(), farm::v1::SUCCEEDED) << job.ShortDebugString();
    ASSERT_EQ(job.attempts_size(), 1)
        << "rerun after a partition shorter than the TTL: " << job.ShortDebugString();
    EXPECT_EQ(job.attempts(0).agent(), "ns-agent");
    ASSERT_OK_AND_ASSIGN(std::string logs, farm_->Logs(id));
    EXPECT_EQ(logs, absl::StrCat("before ", id, "\nafter ", id, "\n"));
  }
  ASSERT_OK_AND_ASSIGN(CheckReport report, checker_->WaitAndCheck(absl::Seconds(30), effects_));
  std::cout << report.Line() << std::endl;
  EXPECT_TRUE(report.ok()) << absl::StrJoin(report.problems, "\n");
  EXPECT_EQ(report.reruns, 0);
}

TEST_F(PartitionTest, LongerThanTheTtlTheJobIsRerunElsewhereAndTheLateResultRefused) {
  // The late result comes from the cut-off agent itself (its own certificate).
  ASSERT_OK_AND_ASSIGN(common::ClientSecurity ns_agent, farm_->AgentSecurity("ns-agent"));
  ASSERT_OK_AND_ASSIGN(std::shared_ptr<grpc::Channel> channel,
                       common::MakeChannel(farm_->coordinator_address(), ns_agent));
  std::unique_ptr<farm::v1::AgentService::Stub> agent_stub =
      farm::v1::AgentService::NewStub(channel);
  for (int cycle = 1; cycle <= kCycles; ++cycle) {
    SCOPED_TRACE(absl::StrCat("cycle ", cycle));
    // Keep the host agent busy, so that the first attempt goes to the agent in the namespace.
    const std::string unblock = farm_->Path(absl::StrCat("unblock-", cycle));
    ASSERT_OK_AND_ASSIGN(
        std::string blocker,
        checker_->Submit(GatedJob(absl::StrCat("blocker-", cycle), {{"side", "host"}}, unblock)));
    ASSERT_OK(WaitStarted(blocker, 1));
    const std::string release = farm_->Path(absl::StrCat("release-long-", cycle));
    ASSERT_OK_AND_ASSIGN(std::string id, checker_->Submit(GatedJob(absl::StrCat("long-", cycle),
                                                                   {{"pool", "part"}}, release)));
    ASSERT_OK(WaitStarted(id, 1));

    ASSERT_OK(Partition());
    const absl::Time cut = absl::Now();
    ASSERT_OK(WriteFile(unblock, ""));  // the host agent is free to take the rerun
    ASSERT_OK_AND_ASSIGN(farm::v1::Job rerun,
                         farm_->WaitForJobDone(id, kLeaseTtl + absl::Seconds(20)));
    const absl::Duration partitioned = absl::Now() - cut;
    // Only now may the first attempt finish: whatever it reports arrives late.
    ASSERT_OK(WriteFile(release, ""));
    ASSERT_OK(Heal());

    std::cout << "long partition " << cycle << ": job " << id << " "
              << farm::v1::JobState_Name(rerun.state()) << " "
              << absl::FormatDuration(absl::Trunc(partitioned, absl::Milliseconds(1)))
              << " after the cut, " << rerun.attempts_size() << " attempts" << std::endl;
    EXPECT_EQ(rerun.state(), farm::v1::SUCCEEDED) << rerun.ShortDebugString();
    ASSERT_EQ(rerun.attempts_size(), 2) << rerun.ShortDebugString();
    EXPECT_EQ(rerun.attempts(0).agent(), "ns-agent");
    EXPECT_EQ(rerun.attempts(0).outcome(), farm::v1::ATTEMPT_LOST);
    EXPECT_EQ(rerun.attempts(1).agent(), "host-agent");
    EXPECT_EQ(rerun.attempts(1).outcome(), farm::v1::ATTEMPT_SUCCEEDED);

    // The cut-off agent's late result, as it would send it: refused, and nothing changes.
    farm::v1::CompleteJobRequest late;
    late.mutable_lease()->set_job_id(id);
    late.mutable_lease()->set_attempt(rerun.attempts(0).number());
    late.mutable_lease()->set_epoch(rerun.attempts(0).epoch());
    late.set_outcome(farm::v1::ATTEMPT_SUCCEEDED);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    farm::v1::CompleteJobResponse ack;
    const absl::Status refused =
        common::FromGrpcStatus(agent_stub->CompleteJob(&context, late, &ack));
    EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;

    // The agent in the namespace comes back and is idle again (whatever it sent was refused).
    ASSERT_OK(WaitFor(
        [&] {
          absl::StatusOr<farm::v1::ListAgentsResponse> agents = farm_->ListAgents();
          if (!agents.ok()) return false;
          for (const farm::v1::AgentInfo& agent : agents->agents()) {
            if (agent.name() == "ns-agent") return agent.state() == "idle";
          }
          return false;
        },
        absl::Seconds(30), "the partitioned agent to be back and idle", absl::Milliseconds(100)));
    // Cut off, it could not be told: it must have killed its step itself, one TTL after its
    // last renewed heartbeat, long before `release` appeared.
    EXPECT_FALSE(HasEffect(id, 1))
        << "the cut-off agent's step ran to its end after its lease had lapsed";
    ASSERT_OK_AND_ASSIGN(farm::v1::Job after, farm_->GetJob(id));
    EXPECT_EQ(after.attempts_size(), 2) << after.ShortDebugString();
    EXPECT_EQ(after.attempts(0).outcome(), farm::v1::ATTEMPT_LOST) << after.ShortDebugString();
    EXPECT_EQ(after.state(), farm::v1::SUCCEEDED);
    EXPECT_EQ(after.finished_ms(), rerun.finished_ms());
    ASSERT_OK_AND_ASSIGN(farm::v1::Job blocked, farm_->WaitForJobDone(blocker));
    EXPECT_EQ(blocked.state(), farm::v1::SUCCEEDED);
  }
  ASSERT_OK_AND_ASSIGN(CheckReport report, checker_->WaitAndCheck(absl::Seconds(30), effects_));
  std::cout << report.Line() << std::endl;
  EXPECT_TRUE(report.ok()) << absl::StrJoin(report.problems, "\n");
  EXPECT_EQ(report.reruns, kCycles);
}

}  // namespace
}  // namespace farm::fault
