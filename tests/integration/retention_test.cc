// Retention and garbage collection on a real coordinator:
//  - `farmctl admin gc --dry-run` reports and changes nothing; `admin gc` removes a finished
//    job's output (then, later, the job), and `farmctl logs` says what became of the output;
//  - a soak: a steady stream of jobs through a coordinator with retention in seconds keeps its
//    data directory flat, while the same stream without retention grows it (the control run
//    that proves the check can fail).
#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/posix_io.h"
#include "farm/v1/farm.grpc.pb.h"
#include "tests/integration/farm_test_base.h"

namespace farm::testing {
namespace {

using ::testing::HasSubstr;

// A fake agent in the test process: it leases each job, uploads `log_bytes` of output and
// completes it, as fast as the coordinator lets it.
class SoakAgent {
 public:
  explicit SoakAgent(std::shared_ptr<grpc::Channel> channel)
      : jobs_(farm::v1::JobService::NewStub(channel)),
        agent_(farm::v1::AgentService::NewStub(channel)) {}

  static std::unique_ptr<grpc::ClientContext> Call() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    return ctx;
  }

  absl::Status Register() {
    farm::v1::RegisterRequest reg;
    reg.set_name("soak");
    reg.set_slots(1);
    reg.set_session_id("s1");
    farm::v1::RegisterResponse resp;
    grpc::Status s = agent_->Register(Call().get(), reg, &resp);
    return s.ok() ? absl::OkStatus() : absl::InternalError(s.error_message());
  }

  // Submits one job and runs it to its end; its id.
  absl::StatusOr<std::string> RunOneJob(const std::string& output) {
    farm::v1::SubmitJobRequest submit;
    submit.mutable_spec()->set_name("soak");
    farm::v1::StepSpec* step = submit.mutable_spec()->add_steps();
    step->set_name("s");
    step->set_run("true");
    farm::v1::SubmitJobResponse submitted;
    grpc::Status s = jobs_->Submit(Call().get(), submit, &submitted);
    if (!s.ok()) return absl::InternalError("submit: " + s.error_message());
    farm::v1::LeaseRequest lease_req;
    lease_req.set_agent("soak");
    lease_req.set_session_id("s1");
    lease_req.set_wait_ms(10'000);
    farm::v1::LeaseResponse lease;
    s = agent_->Lease(Call().get(), lease_req, &lease);
    if (!s.ok() || !lease.has_job()) return absl::InternalError("lease: " + s.error_message());
    farm::v1::LogUploadResponse uploaded;
    auto ctx = Call();
    auto writer = agent_->UploadLogs(ctx.get(), &uploaded);
    farm::v1::LogUploadChunk chunk;
    *chunk.mutable_lease() = lease.lease();
    chunk.set_data(output);
    writer->Write(chunk);
    writer->WritesDone();
    s = writer->Finish();
    if (!s.ok()) return absl::InternalError("upload: " + s.error_message());
    farm::v1::CompleteJobRequest complete;
    *complete.mutable_lease() = lease.lease();
    complete.set_outcome(farm::v1::ATTEMPT_SUCCEEDED);
    farm::v1::StepReport* last = complete.mutable_last_step();
    last->mutable_result()->set_state(farm::v1::STEP_SUCCEEDED);
    last->mutable_result()->set_log_bytes(static_cast<int64_t>(output.size()));
    farm::v1::CompleteJobResponse completed;
    s = agent_->CompleteJob(Call().get(), complete, &completed);
    if (!s.ok()) return absl::InternalError("complete: " + s.error_message());
    return submitted.job_id();
  }

 private:
  std::unique_ptr<farm::v1::JobService::Stub> jobs_;
  std::unique_ptr<farm::v1::AgentService::Stub> agent_;
};

class AdminGcTest : public FarmTest {
 protected:
  // Nothing is removed in the background: only `admin gc` removes, so the test sees each step.
  std::vector<std::string> CoordinatorFlags() const override {
    return {"--gc_interval=0", "--log_retention=1s", "--job_retention=20s"};
  }

  CommandResult Gc(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"admin", "gc"};
    args.insert(args.end(), extra.begin(), extra.end());
    absl::StatusOr<CommandResult> r = farm_->RunFarmctl(args);
    EXPECT_OK(r);
    if (!r.ok()) return {};
    EXPECT_EQ(r->exit_code, 0) << r->DebugString();
    return *r;
  }
};

TEST_F(AdminGcTest, DryRunReportsAndChangesNothingThenGcRemovesOutputThenTheJob) {
  ASSERT_OK_AND_ASSIGN(std::shared_ptr<grpc::Channel> channel,
                       common::MakeChannel(farm_->coordinator_address(), farm_->admin_security()));
  SoakAgent agent(channel);
  ASSERT_OK(agent.Register());
  ASSERT_OK_AND_ASSIGN(std::string id, agent.RunOneJob("kept-for-a-while\n"));
  ASSERT_OK_AND_ASSIGN(farm::v1::Job job, farm_->WaitForJobDone(id));
  ASSERT_EQ(job.state(), farm::v1::SUCCEEDED);
  const absl::Time ended = absl::FromUnixMillis(job.finished_ms());
  ASSERT_OK(WaitFor([&] { return absl::Now() > ended + absl::Milliseconds(1500); },
                    absl::Seconds(10), "the output's retention to pass"));

  CommandResult dry = Gc({"--dry-run"});
  EXPECT_THAT(dry.out, HasSubstr("dry run: nothing was changed"));
  EXPECT_THAT(dry.out, HasSubstr("1 jobs' output would be removed"));
  EXPECT_THAT(dry.out, HasSubstr("CAS:              nothing to evict (within --cas_max_bytes)"));
  ASSERT_OK_AND_ASSIGN(std::string logs, farm_->Logs(id, {"--raw"}));
  EXPECT_THAT(logs, HasSubstr("kept-for-a-while"));  // the dry run changed nothing

  CommandResult gc = Gc();
  EXPECT_THAT(gc.out, HasSubstr("1 jobs' output removed"));
  EXPECT_THAT(gc.out, HasSubstr("jobs:             0 removed"));
  ASSERT_OK_AND_ASSIGN(CommandResult removed, farm_->RunFarmctl({"logs", id}));
  EXPECT_NE(removed.exit_code, 0);
  EXPECT_THAT(removed.err, HasSubstr("output of job " + id +
                                     " was removed by retention "
                                     "(--log_retention)"));
  EXPECT_THAT(removed.err, HasSubstr("the job's record is kept"));
  ASSERT_OK(farm_->GetJob(id).status());  // the record stays

  ASSERT_OK(WaitFor([&] { return absl::Now() > ended + absl::Milliseconds(20500); },
                    absl::Seconds(30), "the job's retention to pass"));
  EXPECT_THAT(Gc({"--dry-run"}).out, HasSubstr("jobs:             1 would be removed"));
  ASSERT_OK(farm_->GetJob(id).status());
  EXPECT_THAT(Gc().out, HasSubstr("jobs:             1 removed"));
  ASSERT_OK_AND_ASSIGN(CommandResult gone, farm_->RunFarmctl({"get", id}));
  EXPECT_NE(gone.exit_code, 0);
  EXPECT_THAT(gone.err, HasSubstr("not found"));
  // A new job never takes the removed one's id.
  ASSERT_OK_AND_ASSIGN(std::string next, farm_->SubmitJobFile("steps: [{run: 'true'}]\n"));
  EXPECT_NE(next, id);
  EXPECT_GT(std::stoull(next), std::stoull(id));
}

TEST_F(AdminGcTest, OnlyAnAdminMayCollectGarbageAndBadFlagsAreRefused) {
  ASSERT_OK_AND_ASSIGN(CommandResult typo, farm_->RunFarmctl({"admin", "gc", "--dryrun"}));
  EXPECT_NE(typo.exit_code, 0);
  EXPECT_THAT(typo.err, HasSubstr("--dryrun"));
}

struct Sample {
  int jobs = 0;       // jobs finished when the sample was taken
  int64_t bytes = 0;  // the data dir's size then
};

struct SoakRun {
  std::vector<Sample> samples;  // one a second
  int jobs = 0;
};

constexpr int64_t kOutputBytes = 32 << 10;  // each job's output

// Runs jobs back to back for `duration` on a coordinator started with `flags`, sampling the
// size of its data directory (RocksDB and CAS) every second.
SoakRun Soak(const std::vector<std::string>& flags, absl::Duration duration) {
  SoakRun run;
  absl::StatusOr<std::unique_ptr<MiniFarm>> farm = MiniFarm::Create();
  EXPECT_OK(farm);
  if (!farm.ok()) return run;
  EXPECT_OK((*farm)->StartCoordinator(flags));
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      common::MakeChannel((*farm)->coordinator_address(), (*farm)->admin_security());
  EXPECT_OK(channel);
  if (!channel.ok()) return run;
  SoakAgent agent(*channel);
  EXPECT_OK(agent.Register());
  // Output that does not compress away (RocksDB compresses with LZ4).
  std::string output;
  uint64_t x = 88172645463325252ull;
  for (int i = 0; i < kOutputBytes; ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    output.push_back(static_cast<char>('a' + x % 26));
  }
  const absl::Time start = absl::Now();
  absl::Time next_sample = start;
  while (absl::Now() < start + duration) {
    absl::StatusOr<std::string> id = agent.RunOneJob(output);
    EXPECT_OK(id);
    if (!id.ok()) break;
    ++run.jobs;
    if (absl::Now() >= next_sample) {
      run.samples.push_back({run.jobs, common::DirectoryBytes((*farm)->coordinator_data_dir())});
      next_sample += absl::Seconds(1);
    }
  }
  return run;
}

std::string Describe(const SoakRun& run) {
  std::vector<std::string> points;
  for (const Sample& s : run.samples) points.push_back(absl::StrCat(s.jobs, ":", s.bytes >> 10));
  return absl::StrCat(run.jobs,
                      " jobs; jobs done:data dir KiB each second: ", absl::StrJoin(points, " "));
}

// How many bytes the data dir grows per job run after warm-up (the first third of the
// samples): the median of the slopes between every two of the later samples (Theil-Sen), so
// that a compaction's passing spike, or a few seconds in which the machine ran fewer jobs,
// moves it little. Growth per job, not per second: the rate at which a loaded machine runs jobs
// varies, the bytes each job leaves behind do not.
double GrowthPerJob(const SoakRun& run) {
  std::vector<double> slopes;
  const std::vector<Sample>& s = run.samples;
  for (size_t i = s.size() / 3; i < s.size(); ++i) {
    for (size_t j = i + 1; j < s.size(); ++j) {
      if (s[j].jobs == s[i].jobs) continue;
      slopes.push_back(static_cast<double>(s[j].bytes - s[i].bytes) / (s[j].jobs - s[i].jobs));
    }
  }
  if (slopes.empty()) return 0;
  std::sort(slopes.begin(), slopes.end());
  return slopes[slopes.size() / 2];
}

constexpr absl::Duration kSoakTime = absl::Seconds(24);

// Retention in seconds: finished jobs go 3 s after they end, their output after 1 s, events
// after 2 s, and the store is compacted every second. After warm-up the data dir must stop
// growing with the jobs run: less than a tenth of each job's output stays per job (without
// retention all of it stays, below).
TEST(RetentionSoakTest, TheDataDirStaysFlatUnderASteadyStreamOfJobs) {
  const SoakRun run =
      Soak({"--job_retention=3s", "--log_retention=1s", "--event_retention=2s", "--gc_interval=1s"},
           kSoakTime);
  const double growth = GrowthPerJob(run);
  std::cout << "retention soak: " << growth << " bytes per job after warm-up; " << Describe(run)
            << "\n";
  ASSERT_GE(run.samples.size(), 12u) << Describe(run);
  EXPECT_LT(growth, kOutputBytes / 10) << Describe(run);
}

// The control: the same stream without retention grows the data dir by about each job's output,
// far past the bound above.
TEST(RetentionSoakTest, WithoutRetentionTheSameStreamGrowsTheDataDir) {
  const SoakRun run =
      Soak({"--job_retention=0", "--log_retention=0", "--max_log_bytes=0", "--gc_interval=1s"},
           kSoakTime);
  const double growth = GrowthPerJob(run);
  std::cout << "control soak: " << growth << " bytes per job after warm-up; " << Describe(run)
            << "\n";
  ASSERT_GE(run.samples.size(), 12u) << Describe(run);
  EXPECT_GT(growth, kOutputBytes / 2) << Describe(run);
}

}  // namespace
}  // namespace farm::testing
