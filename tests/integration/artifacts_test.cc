// Artifacts on a real farm: a job's files go through the agent into the coordinator's CAS, and
// come back out with `farmctl artifacts`, `farmctl download` and `farmctl cas`, verified.
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/digest.h"
#include "tests/integration/farm_test_base.h"

namespace farm::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

using ArtifactsTest = FarmTest;

bool Executable(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && (st.st_mode & S_IXUSR) != 0;
}

// Every regular file below `dir`, relative and sorted.
std::vector<std::string> Tree(const std::string& dir) {
  std::vector<std::string> files;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (it->is_regular_file()) files.push_back(fs::relative(it->path(), dir).string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<std::string> Paths(const farm::v1::Job& job) {
  std::vector<std::string> paths;
  for (const farm::v1::Artifact& artifact : job.artifacts()) paths.push_back(artifact.path());
  return paths;
}

// The build writes three files under out/ (one of them large enough to be streamed, one
// executable) and one outside it, and keeps a copy of out/ at @EXPECTED@ to compare with.
constexpr char kBuildJob[] = R"job(
name: build-with-artifacts
env: {EXPECTED: "@EXPECTED@"}
steps:
  - name: build
    run: |
      mkdir -p out/sub
      echo hello > out/hello.txt
      head -c 3000000 /dev/urandom > out/sub/big.bin
      printf '#!/bin/sh\necho tool\n' > out/tool
      chmod +x out/tool
      echo not kept > notes.txt
      cp -a out "$EXPECTED"
artifacts: [out/*]
)job";

TEST_F(ArtifactsTest, AJobsFilesAreListedAndDownloadedVerified) {
  ASSERT_OK(StartAgent("a1"));
  const std::string expected = farm_->Path("expected");
  ASSERT_OK_AND_ASSIGN(std::string id,
                       farm_->SubmitJobFile(JobFile(kBuildJob, {{"EXPECTED", expected}})));
  ASSERT_OK_AND_ASSIGN(farm::v1::Job job, farm_->WaitForJobDone(id, absl::Seconds(60)));
  ASSERT_EQ(job.state(), farm::v1::SUCCEEDED) << job.ShortDebugString();

  // The job records them (and so does its attempt).
  EXPECT_THAT(Paths(job), ElementsAre("out/hello.txt", "out/sub/big.bin", "out/tool"));
  ASSERT_EQ(job.artifacts_size(), 3);
  EXPECT_EQ(job.artifacts(0).hash(), common::DigestOf("hello\n").hash);
  EXPECT_EQ(job.artifacts(0).size(), 6);
  EXPECT_FALSE(job.artifacts(0).executable());
  EXPECT_EQ(job.artifacts(1).size(), 3'000'000);
  EXPECT_TRUE(job.artifacts(2).executable());
  ASSERT_EQ(job.attempts_size(), 1);
  EXPECT_EQ(job.attempts(0).artifacts_size(), 3);

  ASSERT_OK_AND_ASSIGN(CommandResult listed, farm_->RunFarmctl({"artifacts", id}));
  EXPECT_EQ(listed.exit_code, 0) << listed.DebugString();
  EXPECT_THAT(listed.out, StartsWith("PATH"));
  EXPECT_THAT(listed.out, HasSubstr(absl::StrCat("out/hello.txt    6        -     ",
                                                 common::DigestOf("hello\n").hash, "/6")));
  EXPECT_THAT(listed.out, HasSubstr("out/sub/big.bin  3000000  -"));
  EXPECT_THAT(listed.out, HasSubstr("out/tool"));
  EXPECT_THAT(listed.out, HasSubstr("3 files"));

  const std::string dl = farm_->Path("dl");
  ASSERT_OK_AND_ASSIGN(CommandResult downloaded, farm_->RunFarmctl({"download", id, "-o", dl}));
  ASSERT_EQ(downloaded.exit_code, 0) << downloaded.DebugString();
  EXPECT_THAT(downloaded.err, HasSubstr("downloaded 3 files"));
  EXPECT_THAT(Tree(dl), ElementsAre("out/hello.txt", "out/sub/big.bin", "out/tool"));
  for (const char* path : {"hello.txt", "sub/big.bin", "tool"}) {
    ASSERT_OK_AND_ASSIGN(std::string want, ReadFile(expected + "/" + path));
    ASSERT_OK_AND_ASSIGN(std::string got, ReadFile(dl + "/out/" + path));
    EXPECT_TRUE(got == want) << path << ": " << got.size() << " bytes, expected " << want.size();
  }
  EXPECT_TRUE(Executable(dl + "/out/tool"));
  EXPECT_FALSE(Executable(dl + "/out/hello.txt"));

  // Only some of them: a file and a directory.
  const std::string some = farm_->Path("some");
  ASSERT_OK_AND_ASSIGN(CommandResult filtered,
                       farm_->RunFarmctl({"download", id, "out/sub", "out/tool", "-o", some}));
  ASSERT_EQ(filtered.exit_code, 0) << filtered.DebugString();
  EXPECT_THAT(Tree(some), ElementsAre("out/sub/big.bin", "out/tool"));

  // An unknown path is an error that names it, and nothing is written.
  const std::string none = farm_->Path("none");
  ASSERT_OK_AND_ASSIGN(CommandResult unknown, farm_->RunFarmctl({"download", id, "out/hello.txt",
                                                                 "notes.txt", "-o", none}));
  EXPECT_EQ(unknown.exit_code, 4) << unknown.DebugString();
  EXPECT_THAT(unknown.err, HasSubstr("has no artifact \"notes.txt\""));
  EXPECT_FALSE(fs::exists(none + "/out/hello.txt"));
}

TEST_F(ArtifactsTest, AFailedJobKeepsItsFilesOnlyWithArtifactsWhenAlways) {
  ASSERT_OK(StartAgent("a1"));
  ASSERT_OK_AND_ASSIGN(std::string plain, farm_->SubmitJobFile(R"job(
steps: [{run: "echo partial > log.txt; exit 2"}]
artifacts: ["*.txt"]
)job"));
  ASSERT_OK_AND_ASSIGN(farm::v1::Job job, farm_->WaitForJobDone(plain));
  EXPECT_EQ(job.state(), farm::v1::FAILED);
  EXPECT_THAT(job.artifacts(), IsEmpty());
  ASSERT_OK_AND_ASSIGN(CommandResult listed, farm_->RunFarmctl({"artifacts", plain}));
  EXPECT_THAT(listed.out, HasSubstr("has no artifacts"));

  ASSERT_OK_AND_ASSIGN(std::string always, farm_->SubmitJobFile(R"job(
steps: [{run: "echo partial > log.txt; exit 2"}]
artifacts: ["*.txt"]
artifacts_when: always
)job"));
  ASSERT_OK_AND_ASSIGN(job, farm_->WaitForJobDone(always));
  EXPECT_EQ(job.state(), farm::v1::FAILED);
  EXPECT_THAT(Paths(job), ElementsAre("log.txt"));
  ASSERT_OK_AND_ASSIGN(CommandResult downloaded,
                       farm_->RunFarmctl({"download", always, "-o", farm_->Path("dl")}));
  ASSERT_EQ(downloaded.exit_code, 0) << downloaded.DebugString();
  EXPECT_THAT(ReadFile(farm_->Path("dl/log.txt")), IsOkAndHolds(std::string("partial\n")));
}

TEST_F(ArtifactsTest, ABadGlobIsRefusedAtSubmitWithItsPosition) {
  ASSERT_OK_AND_ASSIGN(std::string path,
                       farm_->WriteJobFile("steps: [{run: 'true'}]\nartifacts: [../secrets/*]\n"));
  ASSERT_OK_AND_ASSIGN(CommandResult r, farm_->RunFarmctl({"submit", path}));
  EXPECT_EQ(r.exit_code, 4) << r.DebugString();
  EXPECT_THAT(r.err, StartsWith(absl::StrCat(path, ":2:13: artifacts[0]: ")));
  EXPECT_THAT(r.err, HasSubstr("\"..\" component"));
}

TEST_F(ArtifactsTest, CasPutStatGetThroughTheCoordinator) {
  const std::string file = farm_->Path("blob.bin");
  std::string data(2'500'000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>((i * 7919) >> 3);
  ASSERT_OK(WriteFile(file, data));
  const std::string key = common::DigestOf(data).ToString();

  ASSERT_OK_AND_ASSIGN(CommandResult stat, farm_->RunFarmctl({"cas", "stat", key}));
  EXPECT_EQ(stat.exit_code, 1) << stat.DebugString();
  EXPECT_EQ(stat.out, absl::StrCat(key, " missing\n"));

  ASSERT_OK_AND_ASSIGN(CommandResult put, farm_->RunFarmctl({"cas", "put", file}));
  ASSERT_EQ(put.exit_code, 0) << put.DebugString();
  EXPECT_EQ(put.out, absl::StrCat(key, "\n"));

  ASSERT_OK_AND_ASSIGN(stat, farm_->RunFarmctl({"cas", "stat", key}));
  EXPECT_EQ(stat.exit_code, 0) << stat.DebugString();
  EXPECT_EQ(stat.out, absl::StrCat(key, " present\n"));

  const std::string copy = farm_->Path("copy.bin");
  ASSERT_OK_AND_ASSIGN(CommandResult get, farm_->RunFarmctl({"cas", "get", key, "-o", copy}));
  ASSERT_EQ(get.exit_code, 0) << get.DebugString();
  ASSERT_OK_AND_ASSIGN(std::string got, ReadFile(copy));
  EXPECT_TRUE(got == data);

  const std::string absent = common::DigestOf("never stored").ToString();
  ASSERT_OK_AND_ASSIGN(get, farm_->RunFarmctl({"cas", "get", absent, "-o", farm_->Path("x")}));
  EXPECT_EQ(get.exit_code, 4) << get.DebugString();
  EXPECT_FALSE(FileExists(farm_->Path("x")));
}

TEST_F(ArtifactsTest, ABlobCorruptedOnDiskIsNeverDownloaded) {
  const std::string file = farm_->Path("blob.bin");
  const std::string data(200'000, 'a');
  ASSERT_OK(WriteFile(file, data));
  ASSERT_OK_AND_ASSIGN(CommandResult put, farm_->RunFarmctl({"cas", "put", file}));
  ASSERT_EQ(put.exit_code, 0) << put.DebugString();
  const common::Digest digest = common::DigestOf(data);

  // Flip the stored bytes (same size) wherever the coordinator keeps the blob.
  int corrupted = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(farm_->coordinator_data_dir(), ec);
       !ec && it != fs::end(it); it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    const std::string flat = absl::StrReplaceAll(it->path().string(), {{"/", ""}});
    if (!absl::StrContains(flat, digest.hash) || fs::file_size(it->path()) != data.size()) continue;
    ASSERT_OK(WriteFile(it->path().string(), std::string(data.size(), 'b')));
    ++corrupted;
  }
  ASSERT_GT(corrupted, 0) << "no blob file named after " << digest.hash << " under "
                          << farm_->coordinator_data_dir();

  const std::string copy = farm_->Path("copy.bin");
  ASSERT_OK_AND_ASSIGN(CommandResult get,
                       farm_->RunFarmctl({"cas", "get", digest.ToString(), "-o", copy}));
  EXPECT_EQ(get.exit_code, 4) << get.DebugString();
  EXPECT_FALSE(FileExists(copy));
}

}  // namespace
}  // namespace farm::testing
