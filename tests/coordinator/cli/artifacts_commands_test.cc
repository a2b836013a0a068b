// farmctl's artifact and CAS commands end to end (`artifacts`, `download`, `cas put/get/stat`)
// over real gRPC, against the in-process FakeFarm with the fake CAS on the same address.
#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/digest.h"
#include "coordinator/cli/commands.h"
#include "coordinator/cli/options.h"
#include "tests/common/fake_cas.h"
#include "tests/coordinator/cli/fake_farm.h"
#include "tests/coordinator/cli/usage_error.h"

namespace farm::cli {
namespace {

namespace fs = std::filesystem;
using ::farm::testing::FakeCas;
using ::farm::testing::FakeFarm;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool Executable(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && (st.st_mode & S_IXUSR) != 0;
}

// Every file below `dir`, relative, sorted.
std::vector<std::string> Tree(const std::string& dir) {
  std::vector<std::string> files;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (!it->is_directory()) files.push_back(fs::relative(it->path(), dir).string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

class FarmctlArtifactsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = ::testing::TempDir() + "/farmctl_artifacts.XXXXXX";
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  Result Run(const std::vector<std::string>& args) {
    static common::FakeClock clock;
    std::ostringstream out;
    std::ostringstream err;
    std::istringstream in;
    CliIo io{out, err, in, clock, absl::UTCTimeZone()};
    absl::StatusOr<CliOptions> options = ParseArgs(args, farm_.address());
    if (options.ok()) options->security.insecure = true;  // the fake coordinator speaks plaintext
    if (!options.ok()) return {kExitUsage, "", std::string(options.status().message())};
    options->retry_initial_backoff_ms = 5;
    options->retry_max_backoff_ms = 20;
    const int code = RunCommand(*options, io);
    return {code, out.str(), err.str()};
  }

  farm::v1::Artifact Stored(const std::string& path, const std::string& data,
                            bool executable = false) {
    const common::Digest digest = common::DigestOf(data);
    cas_.Put(data);
    farm::v1::Artifact artifact;
    artifact.set_path(path);
    artifact.set_hash(digest.hash);
    artifact.set_size(digest.size);
    artifact.set_executable(executable);
    return artifact;
  }

  // A SUCCEEDED job with these artifacts; returns its id.
  std::string AddJob(const std::vector<farm::v1::Artifact>& artifacts,
                     farm::v1::JobState state = farm::v1::SUCCEEDED) {
    farm::v1::Job job;
    job.set_state(state);
    job.mutable_spec()->add_steps()->set_name("build");
    job.mutable_spec()->add_artifacts("out/**");
    for (const farm::v1::Artifact& artifact : artifacts) *job.add_artifacts() = artifact;
    return farm_.AddJob(job);
  }

  std::string AddTypicalJob() {
    return AddJob({Stored("out/result.txt", "data\n"), Stored("out/bin/tool", "#!/bin/sh\n", true),
                   Stored("out/docs/a.md", "# a\n")});
  }

  FakeCas cas_;  // outlives farm_, whose server serves it
  FakeFarm farm_{cas_.services()};
  std::string dir_;
};

// --- artifacts ---------------------------------------------------------------------------------

TEST_F(FarmctlArtifactsTest, ArtifactsListsPathSizeExecAndDigest) {
  const std::string id = AddTypicalJob();
  const Result r = Run({"artifacts", id});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string hash = common::DigestOf("data\n").hash;
  EXPECT_THAT(r.out, StartsWith("PATH            SIZE  EXEC  DIGEST\n"));
  EXPECT_THAT(r.out, HasSubstr(absl::StrCat("out/result.txt  5     -     ", hash, "/5\n")));
  EXPECT_THAT(r.out, HasSubstr("out/bin/tool    10    x     "));
  EXPECT_THAT(r.out, HasSubstr("\n3 files, 19 B\n"));
  EXPECT_EQ(r.err, "");
}

TEST_F(FarmctlArtifactsTest, ArtifactsJson) {
  const std::string id = AddTypicalJob();
  const Result r = Run({"artifacts", id, "--output=json"});
  ASSERT_EQ(r.code, 0) << r.err;
  // The document is a JSON object whose "artifacts" are farm.v1.Artifact messages.
  farm::v1::Job as_job;
  google::protobuf::util::JsonParseOptions lenient;
  lenient.ignore_unknown_fields = true;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &as_job, lenient).ok()) << r.out;
  ASSERT_EQ(as_job.artifacts_size(), 3);
  EXPECT_EQ(as_job.artifacts(1).path(), "out/bin/tool");
  EXPECT_TRUE(as_job.artifacts(1).executable());
  EXPECT_EQ(as_job.artifacts(0).hash(), common::DigestOf("data\n").hash);
  EXPECT_THAT(r.out, HasSubstr(absl::StrCat("\"job_id\": \"", id, "\"")));
  EXPECT_THAT(r.out, HasSubstr("\"state\": \"SUCCEEDED\""));
}

TEST_F(FarmctlArtifactsTest, ArtifactsOfJobsWithoutAny) {
  farm::v1::Job plain;
  plain.set_state(farm::v1::SUCCEEDED);
  plain.mutable_spec()->add_steps()->set_name("x");
  const std::string none = farm_.AddJob(plain);
  EXPECT_EQ(Run({"artifacts", none}).out, absl::StrCat("job ", none, " declares no artifacts\n"));
  const std::string running = AddJob({}, farm::v1::RUNNING);
  EXPECT_EQ(
      Run({"artifacts", running}).out,
      absl::StrCat("job ", running, " is RUNNING; its artifacts are recorded when it ends\n"));
  const Result missing = Run({"artifacts", "999"});
  EXPECT_EQ(missing.code, kExitError);
  EXPECT_EQ(missing.err, "farmctl: job 999 not found\n");
}

// --- download ----------------------------------------------------------------------------------

TEST_F(FarmctlArtifactsTest, DownloadRecreatesPathsWithTheExecutableBit) {
  const std::string id = AddTypicalJob();
  const std::string out = dir_ + "/dl";
  const Result r = Run({"download", id, "-o", out});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(Tree(out), ElementsAre("out/bin/tool", "out/docs/a.md", "out/result.txt"));
  EXPECT_EQ(Slurp(out + "/out/result.txt"), "data\n");
  EXPECT_EQ(Slurp(out + "/out/bin/tool"), "#!/bin/sh\n");
  EXPECT_TRUE(Executable(out + "/out/bin/tool"));
  EXPECT_FALSE(Executable(out + "/out/result.txt"));
  EXPECT_EQ(r.out, absl::StrCat(out, "/out/result.txt\n", out, "/out/bin/tool\n", out,
                                "/out/docs/a.md\n"));
  EXPECT_EQ(r.err, absl::StrCat("downloaded 3 files (19 B) of job ", id, " into ", out,
                                ", digests verified\n"));
}

TEST_F(FarmctlArtifactsTest, DownloadDefaultsToTheCurrentDirectory) {
  const std::string id = AddTypicalJob();
  const fs::path before = fs::current_path();
  fs::current_path(dir_);
  const Result r = Run({"download", id, "out/result.txt"});
  fs::current_path(before);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "out/result.txt\n");
  EXPECT_EQ(Slurp(dir_ + "/out/result.txt"), "data\n");
}

TEST_F(FarmctlArtifactsTest, DownloadFiltersByFileOrDirectory) {
  const std::string id = AddTypicalJob();
  const std::string out = dir_ + "/dl";
  const Result r = Run({"download", id, "out/docs/", "./out/result.txt", "-o", out});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(Tree(out), ElementsAre("out/docs/a.md", "out/result.txt"));
}

TEST_F(FarmctlArtifactsTest, AnUnknownPathIsAnErrorAndNothingIsWritten) {
  const std::string id = AddTypicalJob();
  const std::string out = dir_ + "/dl";
  const Result r = Run({"download", id, "out/result.txt", "out/nope", "-o", out});
  EXPECT_EQ(r.code, kExitError);
  EXPECT_THAT(r.err, StartsWith(absl::StrCat("farmctl: job ", id,
                                             " has no artifact \"out/nope\" (its artifacts: "
                                             "out/result.txt, out/bin/tool, out/docs/a.md)")));
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(FarmctlArtifactsTest, ACorruptBlobFailsTheDownloadAndLeavesNoFile) {
  farm::v1::Artifact good = Stored("out/good", "good");
  farm::v1::Artifact bad = Stored("out/bad", "the real bytes");
  cas_.PutRaw(absl::StrCat(bad.hash(), "/", bad.size()), "forged content");
  const std::string id = AddJob({good, bad});
  const std::string out = dir_ + "/dl";
  const Result r = Run({"download", id, "-o", out});
  EXPECT_EQ(r.code, kExitError);
  EXPECT_THAT(r.err, StartsWith("farmctl: out/bad: blob "));
  EXPECT_THAT(r.err, HasSubstr("hash to"));
  EXPECT_THAT(Tree(out), ElementsAre("out/good"));  // no partial or temporary file
}

TEST_F(FarmctlArtifactsTest, DownloadRefusesPathsLeavingTheDirectory) {
  const std::string out = dir_ + "/dl";
  for (const std::string path : {"../escape", "/tmp/abs", "out/../../escape", "a//b"}) {
    const std::string id = AddJob({Stored(path, "evil")});
    const Result r = Run({"download", id, "-o", out});
    EXPECT_EQ(r.code, kExitError) << path;
    EXPECT_THAT(r.err, HasSubstr("refusing to write artifact")) << path;
  }
  EXPECT_THAT(Tree(dir_), IsEmpty());
}

TEST_F(FarmctlArtifactsTest, DownloadRefusesASymlinkLeadingOutOfTheDirectory) {
  const std::string out = dir_ + "/dl";
  const std::string elsewhere = dir_ + "/elsewhere";
  fs::create_directories(out);
  fs::create_directories(elsewhere);
  fs::create_symlink(elsewhere, out + "/out");
  const std::string id = AddJob({Stored("out/x", "x")});
  const Result r = Run({"download", id, "-o", out});
  EXPECT_EQ(r.code, kExitError);
  EXPECT_THAT(r.err, HasSubstr("is a symbolic link leading outside"));
  EXPECT_THAT(Tree(elsewhere), IsEmpty());

  // A link that stays inside DIR is fine.
  fs::remove(out + "/out");
  fs::create_directories(out + "/real");
  fs::create_symlink("real", out + "/out");
  const Result ok = Run({"download", id, "-o", out});
  EXPECT_EQ(ok.code, 0) << ok.err;
  EXPECT_EQ(Slurp(out + "/real/x"), "x");
}

TEST_F(FarmctlArtifactsTest, DownloadOfAJobThatHasNotEnded) {
  const std::string id = AddJob({}, farm::v1::RUNNING);
  const Result r = Run({"download", id, "-o", dir_ + "/dl"});
  EXPECT_EQ(r.code, kExitError);
  EXPECT_THAT(r.err, HasSubstr(absl::StrCat("job ", id, " is RUNNING")));
}

TEST_F(FarmctlArtifactsTest, DownloadJsonListsWhatWasWritten) {
  const std::string id = AddTypicalJob();
  const Result r = Run({"download", id, "out/result.txt", "-o", dir_ + "/dl", "--output=json"});
  ASSERT_EQ(r.code, 0) << r.err;
  farm::v1::Job as_job;
  google::protobuf::util::JsonParseOptions lenient;
  lenient.ignore_unknown_fields = true;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &as_job, lenient).ok()) << r.out;
  ASSERT_EQ(as_job.artifacts_size(), 1);
  EXPECT_EQ(as_job.artifacts(0).path(), "out/result.txt");
  EXPECT_THAT(r.out, HasSubstr(absl::StrCat("\"dir\": \"", dir_, "/dl\"")));
}

// --- cas ---------------------------------------------------------------------------------------

TEST_F(FarmctlArtifactsTest, CasPutStatGet) {
  const std::string file = dir_ + "/in.bin";
  const std::string data(3 << 20, 'z');  // large enough to be streamed
  std::ofstream(file, std::ios::binary) << data;
  const common::Digest digest = common::DigestOf(data);

  Result r = Run({"cas", "stat", digest.ToString()});
  EXPECT_EQ(r.code, kExitBlobMissing);
  EXPECT_EQ(r.out, absl::StrCat(digest.ToString(), " missing\n"));

  r = Run({"cas", "put", file});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, absl::StrCat(digest.ToString(), "\n"));
  EXPECT_EQ(cas_.Get(digest.ToString()), data);
  EXPECT_EQ(cas_.stats().write_streams, 1);

  // A second put of the same content sends nothing.
  r = Run({"cas", "put", file});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(cas_.stats().write_streams, 1);

  r = Run({"cas", "stat", digest.ToString()});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, absl::StrCat(digest.ToString(), " present\n"));

  r = Run({"cas", "get", digest.ToString(), "-o", dir_ + "/copy.bin"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Slurp(dir_ + "/copy.bin"), data);
  EXPECT_THAT(r.err, HasSubstr("digest verified"));
}

TEST_F(FarmctlArtifactsTest, CasJson) {
  const std::string file = dir_ + "/f";
  std::ofstream(file) << "abc";
  const std::string key = common::DigestOf("abc").ToString();
  Result r = Run({"cas", "put", file, "--output=json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(absl::StrCat("\"digest\": \"", key, "\"")));
  EXPECT_THAT(r.out, HasSubstr("\"uploaded\": true"));
  r = Run({"cas", "stat", key, "--output=json"});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("\"present\": true"));
}

TEST_F(FarmctlArtifactsTest, CasGetErrors) {
  const common::Digest missing = common::DigestOf("never stored");
  Result r = Run({"cas", "get", missing.ToString(), "-o", dir_ + "/x"});
  EXPECT_EQ(r.code, kExitError);
  EXPECT_EQ(r.err, absl::StrCat("farmctl: blob ", missing.ToString(), " is not in the store\n"));
  EXPECT_FALSE(fs::exists(dir_ + "/x"));

  const common::Digest forged = common::DigestOf("honest");
  cas_.PutRaw(forged.ToString(), "forged");
  r = Run({"cas", "get", forged.ToString(), "-o", dir_ + "/y"});
  EXPECT_EQ(r.code, kExitError);
  EXPECT_THAT(r.err, HasSubstr("hash to"));
  EXPECT_FALSE(fs::exists(dir_ + "/y"));

  r = Run({"cas", "put", dir_ + "/no-such-file"});
  EXPECT_EQ(r.code, kExitError);
  EXPECT_THAT(r.err, StartsWith("farmctl: "));
  EXPECT_THAT(r.err, HasSubstr("no-such-file"));
}

TEST(FarmctlArtifactsUnreachableTest, SaysSoInOneLine) {
  std::string address;
  {
    FakeFarm farm;
    address = farm.address();
  }
  const std::string key = common::DigestOf("x").ToString();
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"artifacts", "1"},
           {"download", "1"},
           {"cas", "stat", key},
           {"cas", "get", key, "-o", ::testing::TempDir() + "/unreachable-x"}}) {
    common::FakeClock clock;
    std::ostringstream out;
    std::ostringstream err;
    std::istringstream in;
    CliIo io{out, err, in, clock, absl::UTCTimeZone()};
    absl::StatusOr<CliOptions> options = ParseArgs(args, address);
    if (options.ok()) options->security.insecure = true;  // the fake coordinator speaks plaintext
    ASSERT_TRUE(options.ok()) << options.status();
    options->retry_initial_backoff_ms = 1;
    options->retry_max_backoff_ms = 2;
    EXPECT_EQ(RunCommand(*options, io), kExitError) << args[0];
    EXPECT_EQ(err.str(), absl::StrCat("farmctl: cannot reach the coordinator at ", address,
                                      " (connection refused)\n"))
        << args[0];
  }
}

}  // namespace
}  // namespace farm::cli
