// Online backup and restore on the real binaries (issue 13): `farmctl admin backup` while
// submits keep coming, `farm-coordinator --restore_from` into a new data dir, and what an
// operator then finds there: every job acknowledged before the backup began, every artifact
// intact, and jobs that were running requeued as after any restart. Bad input (a backup dir that
// exists, a missing parent, a directory that is no backup, an altered blob, a data dir in use)
// answers one line and leaves nothing behind. And `admin status` counts what is there.
#include <google/protobuf/util/json_util.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/farm_client.h"
#include "tests/integration/farm_test_base.h"

namespace farm::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

class BackupTest : public FarmTest {
 protected:
  // Short leases, so that a job running at backup time is found lost soon after the restore.
  std::vector<std::string> CoordinatorFlags() const override { return {"--lease_ttl=2s"}; }
};

// Writes a file of `bytes` pseudo-random bytes (different per job) under out/, and a copy of it
// where the test can compare.
constexpr char kArtifactJob[] = R"job(
name: artifact-@N@
env: {EXPECTED: "@EXPECTED@"}
steps:
  - run: |
      mkdir -p out
      head -c @BYTES@ /dev/urandom > out/data-@N@.bin
      echo "job @N@" > out/note.txt
      mkdir -p "$EXPECTED"
      cp out/* "$EXPECTED/"
artifacts: [out/*]
)job";

// Submits jobs no agent takes (they stay QUEUED), recording each acknowledged id, until
// `stop` or `max` submits.
class SubmitLoad {
 public:
  SubmitLoad(const std::string& address, const common::ClientSecurity& security, int max) {
    client_ = *common::FarmClient::Create(address, security);
    thread_ = std::thread([this, max] {
      for (int i = 0; i < max && !stop_.load(); ++i) {
        farm::v1::SubmitJobRequest req;
        req.set_request_id(absl::StrCat("load-", ::getpid(), "-", i));
        req.mutable_spec()->set_name(absl::StrCat("load-", i));
        (*req.mutable_spec()->mutable_labels())["pool"] = "nowhere";
        req.mutable_spec()->add_steps()->set_run("true");
        absl::StatusOr<farm::v1::SubmitJobResponse> resp =
            client_->Call(&farm::v1::JobService::Stub::Submit, client_->jobs(), req);
        if (!resp.ok()) continue;
        absl::MutexLock lock(&mu_);
        acked_.push_back(resp->job_id());
      }
    });
  }
  ~SubmitLoad() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::vector<std::string> Acked() {
    absl::MutexLock lock(&mu_);
    return acked_;
  }

 private:
  std::unique_ptr<common::FarmClient> client_;
  std::atomic<bool> stop_{false};
  absl::Mutex mu_;
  std::vector<std::string> acked_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

absl::StatusOr<farm::v1::GetStatusResponse> StatusOf(MiniFarm& farm) {
  FARM_ASSIGN_OR_RETURN(CommandResult r, farm.RunFarmctl({"admin", "status", "--output=json"}));
  if (r.exit_code != 0) return absl::InternalError(r.DebugString());
  farm::v1::GetStatusResponse status;
  if (!google::protobuf::util::JsonStringToMessage(r.out, &status).ok()) {
    return absl::InternalError(absl::StrCat("not a GetStatusResponse: ", r.out));
  }
  return status;
}

int64_t CountOf(const farm::v1::GetStatusResponse& status, farm::v1::JobState state) {
  for (const auto& c : status.jobs()) {
    if (c.state() == state) return c.count();
  }
  return -1;
}

TEST_F(BackupTest, BackupUnderLoadRestoresEveryAcknowledgedJobAndArtifact) {
  ASSERT_OK(StartAgent("a1", {}, 2));
  // Finished jobs with artifacts, then one that runs while the backup is taken.
  std::vector<std::string> artifact_jobs;
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(
        std::string id,
        farm_->SubmitJobFile(
            JobFile(kArtifactJob, {{"N", absl::StrCat(i)},
                                   {"BYTES", absl::StrCat(200'000 * (i + 1))},
                                   {"EXPECTED", farm_->Path(absl::StrCat("expected-", i))}})));
    artifact_jobs.push_back(id);
  }
  for (const std::string& id : artifact_jobs) {
    ASSERT_OK_AND_ASSIGN(farm::v1::Job job, farm_->WaitForJobDone(id, absl::Seconds(60)));
    ASSERT_EQ(job.state(), farm::v1::SUCCEEDED) << job.ShortDebugString();
  }
  ASSERT_OK_AND_ASSIGN(std::string running, farm_->SubmitJobFile("steps: [{run: 'sleep 300'}]\n"));
  ASSERT_OK(farm_->WaitForJobState(running, farm::v1::RUNNING).status());

  // A bounded submit load; the backup starts once it is under way, and every id acknowledged
  // before that moment must come back.
  SubmitLoad load(farm_->coordinator_address(), farm_->admin_security(), 400);
  ASSERT_OK(WaitFor([&] { return load.Acked().size() >= 50; }, absl::Seconds(30), "submits"));
  const std::vector<std::string> before = load.Acked();
  const std::string backup = farm_->Path("backups/nightly");
  fs::create_directories(farm_->Path("backups"));
  ASSERT_OK_AND_ASSIGN(CommandResult made, farm_->RunFarmctl({"admin", "backup", backup}));
  ASSERT_EQ(made.exit_code, 0) << made.DebugString();
  EXPECT_THAT(made.out, HasSubstr(absl::StrCat("backup written to ", backup)));
  const size_t during = load.Acked().size();
  load.Stop();
  EXPECT_LT(before.size(), during) << "the load should still run while the backup is taken";
  EXPECT_TRUE(FileExists(backup + "/farm-backup.json"));
  // Nothing but the backup in its parent (no temporary directory left).
  std::vector<std::string> siblings;
  for (const auto& e : fs::directory_iterator(farm_->Path("backups"))) {
    siblings.push_back(e.path().filename().string());
  }
  EXPECT_THAT(siblings, ::testing::ElementsAre("nightly"));

  // Restore into a new data dir, on a second farm (its own directory and port).
  ASSERT_OK_AND_ASSIGN(auto restored, MiniFarm::Create());
  ASSERT_OK(restored->StartCoordinator({"--restore_from=" + backup, "--lease_ttl=2s"}));
  ASSERT_OK_AND_ASSIGN(auto client, common::FarmClient::Create(restored->coordinator_address(),
                                                               restored->admin_security()));
  for (const std::string& id : before) {
    farm::v1::GetJobRequest get;
    get.set_job_id(id);
    absl::StatusOr<farm::v1::Job> job =
        client->Call(&farm::v1::JobService::Stub::Get, client->jobs(), get);
    ASSERT_TRUE(job.ok()) << "job " << id
                          << " was acknowledged before the backup: " << job.status();
    EXPECT_EQ(job->state(), farm::v1::QUEUED);
  }
  // Every artifact downloads intact.
  for (int i = 0; i < 3; ++i) {
    const std::string dl = restored->Path(absl::StrCat("dl-", i));
    ASSERT_OK_AND_ASSIGN(CommandResult got,
                         restored->RunFarmctl({"download", artifact_jobs[i], "-o", dl}));
    ASSERT_EQ(got.exit_code, 0) << got.DebugString();
    for (const std::string& name : {absl::StrCat("data-", i, ".bin"), std::string("note.txt")}) {
      ASSERT_OK_AND_ASSIGN(std::string want,
                           ReadFile(farm_->Path(absl::StrCat("expected-", i, "/", name))));
      ASSERT_OK_AND_ASSIGN(std::string have, ReadFile(dl + "/out/" + name));
      EXPECT_TRUE(have == want) << name << ": " << have.size() << " bytes, want " << want.size();
    }
  }
  // The job that ran during the backup: its lease expires (no agent here) and it is requeued.
  ASSERT_OK_AND_ASSIGN(farm::v1::Job requeued,
                       restored->WaitForJob(running, [](const farm::v1::Job& job) {
                         return job.state() == farm::v1::QUEUED && job.attempts_size() == 1 &&
                                job.attempts(0).outcome() == farm::v1::ATTEMPT_LOST;
                       }));
  EXPECT_EQ(requeued.state(), farm::v1::QUEUED);
  ASSERT_OK_AND_ASSIGN(farm::v1::GetStatusResponse status, StatusOf(*restored));
  EXPECT_GE(CountOf(status, farm::v1::QUEUED), static_cast<int64_t>(before.size()) + 1);
  EXPECT_EQ(CountOf(status, farm::v1::SUCCEEDED), 3);
}

TEST_F(BackupTest, BadBackupDirsAreRefusedWithOneLine) {
  const std::string existing = farm_->Path("exists");
  fs::create_directories(existing);
  ASSERT_OK_AND_ASSIGN(CommandResult exists, farm_->RunFarmctl({"admin", "backup", existing}));
  EXPECT_EQ(exists.exit_code, 4) << exists.DebugString();
  EXPECT_THAT(exists.err, HasSubstr(absl::StrCat("backup dir ", existing, " exists")));
  EXPECT_EQ(std::count(exists.err.begin(), exists.err.end(), '\n'), 1) << exists.err;
  EXPECT_TRUE(fs::is_empty(existing));

  const std::string orphan = farm_->Path("missing/parent/b");
  ASSERT_OK_AND_ASSIGN(CommandResult no_parent, farm_->RunFarmctl({"admin", "backup", orphan}));
  EXPECT_EQ(no_parent.exit_code, 4) << no_parent.DebugString();
  EXPECT_THAT(no_parent.err, HasSubstr("does not exist"));
  EXPECT_FALSE(fs::exists(farm_->Path("missing")));

  ASSERT_OK_AND_ASSIGN(CommandResult relative, farm_->RunFarmctl({"admin", "backup", "rel/b"}));
  EXPECT_EQ(relative.exit_code, 4) << relative.DebugString();
  EXPECT_THAT(relative.err, HasSubstr("must be an absolute path on the coordinator's machine"));
}

TEST_F(BackupTest, RestoreRefusesWhatIsNotAWholeBackupAndWritesNothing) {
  ASSERT_OK(StartAgent("a1"));
  ASSERT_OK_AND_ASSIGN(
      std::string id,
      farm_->SubmitJobFile(JobFile(
          kArtifactJob, {{"N", "0"}, {"BYTES", "4096"}, {"EXPECTED", farm_->Path("expected")}})));
  ASSERT_OK_AND_ASSIGN(farm::v1::Job job, farm_->WaitForJobDone(id, absl::Seconds(60)));
  ASSERT_EQ(job.state(), farm::v1::SUCCEEDED) << job.ShortDebugString();
  const std::string backup = farm_->Path("b1");
  ASSERT_OK_AND_ASSIGN(CommandResult made, farm_->RunFarmctl({"admin", "backup", backup}));
  ASSERT_EQ(made.exit_code, 0) << made.DebugString();

  // A directory that is no backup.
  ASSERT_OK_AND_ASSIGN(auto other, MiniFarm::Create());
  fs::create_directories(farm_->Path("junk"));
  ASSERT_OK(WriteFile(farm_->Path("junk/file"), "x"));
  absl::Status junk = other->StartCoordinator({"--restore_from=" + farm_->Path("junk")});
  EXPECT_THAT(std::string(junk.message()), HasSubstr("is not a farm backup")) << junk;
  EXPECT_TRUE(fs::is_empty(other->coordinator_data_dir()));  // the harness made it

  // A data dir that is in use.
  fs::create_directories(other->coordinator_data_dir());
  ASSERT_OK(WriteFile(other->coordinator_data_dir() + "/keep", "mine"));
  absl::Status busy = other->StartCoordinator({"--restore_from=" + backup});
  EXPECT_THAT(std::string(busy.message()), HasSubstr("is not empty")) << busy;
  EXPECT_EQ(ReadFileOrEmpty(other->coordinator_data_dir() + "/keep"), "mine");
  fs::remove(other->coordinator_data_dir() + "/keep");

  // An altered blob (replaced, so that the live file it was linked to stays as it was).
  const std::string hash = job.artifacts(0).hash();
  const std::string blob = absl::StrCat(backup, "/cas/blobs/", hash.substr(0, 2), "/", hash);
  ASSERT_OK_AND_ASSIGN(std::string content, ReadFile(blob));
  content[0] ^= 1;
  ASSERT_EQ(::unlink(blob.c_str()), 0);
  ASSERT_OK(WriteFile(blob, content));
  absl::Status altered = other->StartCoordinator({"--restore_from=" + backup});
  EXPECT_THAT(std::string(altered.message()), HasSubstr(absl::StrCat("is corrupted: blob ", hash)))
      << altered;
  EXPECT_TRUE(fs::is_empty(other->coordinator_data_dir()));  // the harness made it

  // The live farm still serves the original.
  const std::string dl = farm_->Path("dl");
  ASSERT_OK_AND_ASSIGN(CommandResult got, farm_->RunFarmctl({"download", id, "-o", dl}));
  EXPECT_EQ(got.exit_code, 0) << got.DebugString();
}

TEST_F(BackupTest, StatusCountsJobsAgentsAndBlobsInTextAndJson) {
  ASSERT_OK(StartAgent("a1"));
  std::vector<std::string> ids;
  for (const char* run : {"true", "true", "exit 3"}) {
    ASSERT_OK_AND_ASSIGN(std::string id,
                         farm_->SubmitJobFile(absl::StrCat("steps: [{run: '", run, "'}]\n")));
    ASSERT_OK(farm_->WaitForJobDone(id).status());
  }
  ASSERT_OK_AND_ASSIGN(std::string queued,
                       farm_->SubmitJobFile("labels: {pool: none}\nsteps: [{run: 'true'}]\n"));
  ASSERT_OK_AND_ASSIGN(std::string cancelled,
                       farm_->SubmitJobFile("labels: {pool: none}\nsteps: [{run: 'true'}]\n"));
  ASSERT_OK_AND_ASSIGN(CommandResult cancel, farm_->RunFarmctl({"cancel", cancelled}));
  ASSERT_EQ(cancel.exit_code, 0) << cancel.DebugString();
  ASSERT_OK_AND_ASSIGN(
      std::string with_artifact,
      farm_->SubmitJobFile(JobFile(
          kArtifactJob, {{"N", "9"}, {"BYTES", "1000"}, {"EXPECTED", farm_->Path("expected")}})));
  ASSERT_OK(farm_->WaitForJobDone(with_artifact, absl::Seconds(60)).status());

  ASSERT_OK_AND_ASSIGN(farm::v1::GetStatusResponse status, StatusOf(*farm_));
  EXPECT_EQ(CountOf(status, farm::v1::SUCCEEDED), 3);
  EXPECT_EQ(CountOf(status, farm::v1::FAILED), 1);
  EXPECT_EQ(CountOf(status, farm::v1::QUEUED), 1);
  EXPECT_EQ(CountOf(status, farm::v1::CANCELLED), 1);
  EXPECT_EQ(CountOf(status, farm::v1::RUNNING), 0);
  EXPECT_EQ(status.agents_online(), 1);
  EXPECT_EQ(status.agents_offline(), 0);
  EXPECT_EQ(status.cas_blobs(), 2);         // data-9.bin and note.txt
  EXPECT_EQ(status.cas_bytes(), 1000 + 6);  // "job 9\n"
  EXPECT_EQ(status.data_dir(), farm_->coordinator_data_dir());
  EXPECT_GT(status.disk_free_bytes(), 0);
  EXPECT_FALSE(status.version().empty());
  EXPECT_GE(status.families_size(), 19);  // every column family

  ASSERT_OK_AND_ASSIGN(CommandResult text, farm_->RunFarmctl({"admin", "status"}));
  ASSERT_EQ(text.exit_code, 0) << text.DebugString();
  EXPECT_THAT(text.out, HasSubstr("agents    1 online, 0 draining, 0 offline"));
  EXPECT_THAT(text.out, HasSubstr("jobs      6 (QUEUED 1, RUNNING 0, SUCCEEDED 3, FAILED 1, "
                                  "CANCELLED 1, SKIPPED 0, WAITING 0)"));
  EXPECT_THAT(text.out, HasSubstr("cas       2 blobs, 1006 B"));

  // The counts are the store's: a restart finds them as they were.
  ASSERT_OK(farm_->StopAgent("a1").status());
  ASSERT_OK_AND_ASSIGN(int code, farm_->StopCoordinator());
  ASSERT_EQ(code, 0);
  ASSERT_OK(farm_->RestartCoordinator());
  ASSERT_OK_AND_ASSIGN(farm::v1::GetStatusResponse again, StatusOf(*farm_));
  EXPECT_EQ(CountOf(again, farm::v1::SUCCEEDED), 3);
  EXPECT_EQ(CountOf(again, farm::v1::QUEUED), 1);
  EXPECT_EQ(CountOf(again, farm::v1::CANCELLED), 1);
}

}  // namespace
}  // namespace farm::testing
