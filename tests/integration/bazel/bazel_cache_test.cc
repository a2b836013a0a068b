// Bazel (Debian's bazel-bootstrap 4.2.3) as the reference REAPI client: it builds a small
// genrule workspace against a real farm-coordinator with --remote_cache=grpc://..., cleans, and
// builds again; the second build must take every action from the remote cache, also with
// --remote_download_minimal. Then the coordinator loses one output blob, and the build must
// still succeed, re-running exactly the one action whose result can no longer be served.
// Against a coordinator on TLS, Bazel verifies it with the farm's CA (--tls_certificate) and
// authenticates with a submitter token (--remote_header=authorization=Bearer TOKEN). Debian 12's
// bazel-bootstrap cannot open gRPC connections over TLS at all (its netty finds no ALPN in the
// JDK's TLS provider and the Bazel server crashes); that test then skips and says so. Point
// $FARM_BAZEL at an upstream Bazel release to run it.
//
// Bazel must be installed (tests/run.sh installs bazel-bootstrap): this test fails, it does not
// skip, when it is missing. $FARM_BAZEL overrides the binary.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/digest.h"
#include "tests/testing/mini_farm.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"

namespace farm::testing {
namespace {

// Eight genrules: chains, a multi-output rule, a large output (ByteStream), an executable tool,
// an empty output. Nine actions: //:all builds the tool for the target configuration and `e`
// for the exec (host) configuration.
constexpr int kActions = 9;
constexpr char kBuildFile[] = R"BUILD(
genrule(name = "a", outs = ["a.txt"], cmd = "echo 'farm bazel test: a' > $@")
genrule(name = "b", srcs = [":a"], outs = ["b.txt"], cmd = "cat $(location :a) > $@; echo b >> $@")
genrule(
    name = "c",
    srcs = [":a", ":b"],
    outs = ["c.txt", "c2.txt"],
    cmd = "cat $(SRCS) > $(location c.txt); echo c2 > $(location c2.txt)",
)
genrule(name = "big", outs = ["big.txt"], cmd = "seq 1 800000 > $@")
genrule(name = "d", srcs = [":big"], outs = ["d.txt"], cmd = "wc -l < $(location :big) > $@")
genrule(
    name = "tool",
    outs = ["tool.sh"],
    cmd = "printf '#!/bin/sh\\necho tool ran\\n' > $@ && chmod +x $@",
    executable = True,
)
genrule(name = "e", tools = [":tool"], outs = ["e.txt"], cmd = "$(location :tool) > $@")
genrule(name = "empty", outs = ["empty.txt"], cmd = "touch $@")
)BUILD";
// The content of a.txt, to find its blob.
constexpr char kAContent[] = "farm bazel test: a\n";

std::string FindBazel() {
  if (const char* env = std::getenv("FARM_BAZEL"); env != nullptr && *env != '\0') return env;
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path ? path : "/usr/bin:/bin", ':')) {
    const std::string candidate = absl::StrCat(dir, "/bazel");
    if (!dir.empty() && ::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

// "INFO: 9 processes: 8 remote cache hit, 1 internal." → {"remote cache hit": 8, "internal": 1}
// plus "total".
std::map<std::string, int> ProcessSummary(const std::string& output) {
  std::map<std::string, int> out;
  static const std::regex kLine(R"(INFO: (\d+) process(?:es)?: ([^\n]*)\.)");
  std::smatch m;
  if (!std::regex_search(output, m, kLine)) return out;
  out["total"] = std::stoi(m[1]);
  for (absl::string_view part : absl::StrSplit(std::string(m[2]), ", ")) {
    const size_t space = part.find(' ');
    int n = 0;
    if (space == absl::string_view::npos || !absl::SimpleAtoi(part.substr(0, space), &n)) continue;
    out[std::string(part.substr(space + 1))] += n;
  }
  return out;
}

std::string SummaryLine(const std::string& output) {
  static const std::regex kLine(R"(INFO: \d+ process(?:es)?: [^\n]*)");
  std::smatch m;
  return std::regex_search(output, m, kLine) ? m[0].str() : "(no process summary)";
}

class BazelCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    bazel_ = FindBazel();
    ASSERT_FALSE(bazel_.empty())
        << "bazel is not installed; tests/run.sh installs it (apt-get install bazel-bootstrap)";
    MiniFarmOptions options;
    options.tls = tls_;
    ASSERT_OK_AND_ASSIGN(farm_, MiniFarm::Create(options));
    ASSERT_OK(farm_->StartCoordinator());
    if (tls_) {
      ASSERT_OK_AND_ASSIGN(
          CommandResult created,
          farm_->RunFarmctl({"token", "create", "--role=submitter", "--name=bazel"}));
      ASSERT_EQ(created.exit_code, 0) << created.DebugString();
      token_ = std::string(absl::StripAsciiWhitespace(created.out));
      ASSERT_FALSE(token_.empty()) << created.DebugString();
    }
    workspace_ = farm_->Path("ws");
    std::filesystem::create_directories(workspace_);
    ASSERT_OK(WriteFile(workspace_ + "/WORKSPACE", ""));
    ASSERT_OK(WriteFile(workspace_ + "/BUILD", kBuildFile));
  }

  void TearDown() override {
    if (farm_ != nullptr && !bazel_.empty()) {
      absl::StatusOr<CommandResult> r = Bazel({"shutdown"});
      if (!r.ok() || r->exit_code != 0) {
        ADD_FAILURE() << "bazel shutdown: " << (r.ok() ? r->DebugString() : r.status().ToString());
      }
    }
  }

  // Runs `bazel <startup flags> ARGS...` in the workspace and waits for it.
  absl::StatusOr<CommandResult> Bazel(std::vector<std::string> args,
                                      absl::Duration timeout = absl::Seconds(120)) {
    SubprocessOptions options;
    options.binary = bazel_;
    options.args = {
        "--output_user_root=" + farm_->Path("bazel-root"),
        "--nohome_rc",
        // A server that this test fails to shut down goes away by itself.
        "--max_idle_secs=60",
    };
    options.args.insert(options.args.end(), args.begin(), args.end());
    options.cwd = workspace_;
    options.stdout_path = farm_->Path(absl::StrCat("bazel-", runs_, ".stdout"));
    options.stderr_path = farm_->Path(absl::StrCat("bazel-", runs_, ".stderr"));
    ++runs_;
    FARM_ASSIGN_OR_RETURN(std::unique_ptr<Subprocess> process, Subprocess::Start(options));
    absl::StatusOr<int> code = process->Wait(timeout);
    if (!code.ok()) (void)process->Kill9();
    CommandResult result;
    result.out = ReadFile(options.stdout_path).value_or("");
    result.err = ReadFile(options.stderr_path).value_or("");
    if (!code.ok()) {
      return absl::DeadlineExceededError(absl::StrCat("bazel ", args.empty() ? "" : args[0], ": ",
                                                      code.status().message(), "\n",
                                                      result.DebugString()));
    }
    result.exit_code = *code;
    return result;
  }

  // How Bazel reaches the coordinator: plaintext, or TLS verified with the farm's CA and (when
  // `with_token`) the submitter token.
  std::vector<std::string> RemoteFlags(bool with_token) const {
    if (!tls_) return {"--remote_cache=grpc://" + farm_->coordinator_address()};
    std::vector<std::string> flags = {"--remote_cache=grpcs://" + farm_->coordinator_address(),
                                      "--tls_certificate=" + farm_->Path("certs/ca.crt")};
    if (with_token) flags.push_back("--remote_header=authorization=Bearer " + token_);
    return flags;
  }

  // Whether a Bazel server log under the output root says that this Bazel has no ALPN for TLS.
  bool BazelLacksTlsAlpn() const {
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(farm_->Path("bazel-root"), ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (it->path().filename().string().rfind("java.log", 0) != 0) continue;
      const std::string log = ReadFile(it->path().string()).value_or("");
      if (log.find("does not support ALPN") != std::string::npos) return true;
    }
    return false;
  }

  // `bazel build //:all` against the farm; the process summary of the build.
  std::map<std::string, int> Build(std::vector<std::string> extra = {}, bool with_token = true) {
    std::vector<std::string> args = {
        "build",
        "//:all",
        // Debian's bazelrc sets --sandbox_debug, which makes actions print changing text.
        "--nosandbox_debug",
        // Sandboxing needs namespaces that containers may not allow; it does not change keys.
        "--spawn_strategy=local",
        "--color=no",
        "--curses=no",
    };
    for (const std::string& flag : RemoteFlags(with_token)) args.push_back(flag);
    args.insert(args.end(), extra.begin(), extra.end());
    absl::StatusOr<CommandResult> r = Bazel(args);
    EXPECT_OK(r);
    if (!r.ok()) return {};
    EXPECT_EQ(r->exit_code, 0) << r->DebugString();
    last_output_ = r->err;
    last_summary_ = SummaryLine(r->err);
    std::cerr << "bazel build " << absl::StrJoin(extra, " ") << ": " << last_summary_ << "\n";
    return ProcessSummary(r->err);
  }

  void Clean() {
    absl::StatusOr<CommandResult> r = Bazel({"clean"});
    ASSERT_OK(r);
    ASSERT_EQ(r->exit_code, 0) << r->DebugString();
  }

  // Every action came from the remote cache: the summary lists remote cache hits and Bazel's
  // internal bookkeeping actions, nothing that ran.
  void ExpectAllRemoteHits(const std::map<std::string, int>& summary) {
    int hits = 0, internal = 0;
    if (auto it = summary.find("remote cache hit"); it != summary.end()) hits = it->second;
    if (auto it = summary.find("internal"); it != summary.end()) internal = it->second;
    EXPECT_EQ(hits, kActions) << last_summary_;
    EXPECT_EQ(summary.count("total") ? summary.at("total") : -1, hits + internal) << last_summary_;
  }

  bool tls_ = false;
  std::string token_;  // under TLS: a submitter token Bazel sends
  std::string bazel_;
  std::unique_ptr<MiniFarm> farm_;
  std::string workspace_;
  int runs_ = 0;
  std::string last_summary_;
  std::string last_output_;
};

class BazelCacheOverTlsTest : public BazelCacheTest {
 protected:
  BazelCacheOverTlsTest() { tls_ = true; }
};

TEST_F(BazelCacheTest, SecondCleanBuildIsAllRemoteCacheHits) {
  std::map<std::string, int> first = Build();
  EXPECT_EQ(first.count("remote cache hit"), 0u) << last_summary_;
  EXPECT_EQ(first["local"], kActions) << last_summary_;

  ASSERT_NO_FATAL_FAILURE(Clean());
  ExpectAllRemoteHits(Build());
  // The outputs came down whole: contents, and the executable bit.
  const std::string bin = workspace_ + "/bazel-bin/";
  EXPECT_EQ(ReadFile(bin + "c.txt").value_or(""), std::string(kAContent) + kAContent + "b\n");
  EXPECT_EQ(ReadFile(bin + "d.txt").value_or(""), "800000\n");
  EXPECT_EQ(ReadFile(bin + "big.txt").value_or("").size(), 5'488'895u);
  EXPECT_EQ(ReadFile(bin + "empty.txt").value_or("?"), "");
  EXPECT_EQ(ReadFile(bin + "e.txt").value_or(""), "tool ran\n");
  EXPECT_EQ(::access((bin + "tool.sh").c_str(), X_OK), 0);

  ASSERT_NO_FATAL_FAILURE(Clean());
  ExpectAllRemoteHits(Build({"--remote_download_minimal"}));
}

TEST_F(BazelCacheTest, ResultsWhoseBlobsAreLostAreMissesNotBrokenBuilds) {
  Build();
  ASSERT_NO_FATAL_FAILURE(Clean());
  ExpectAllRemoteHits(Build({"--remote_download_minimal"}));

  // The coordinator loses a.txt's blob while it is down (as after a disk problem); start-up
  // drops the entry, and the action result pointing at it must no longer be served.
  ASSERT_OK_AND_ASSIGN(int code, farm_->StopCoordinator());
  ASSERT_EQ(code, 0);
  const common::Digest a = common::DigestOf(kAContent);
  const std::string blob =
      absl::StrCat(farm_->coordinator_data_dir(), "/cas/blobs/", a.hash.substr(0, 2), "/", a.hash);
  ASSERT_TRUE(std::filesystem::remove(blob)) << blob;
  ASSERT_OK(farm_->RestartCoordinator());

  ASSERT_NO_FATAL_FAILURE(Clean());
  std::map<std::string, int> summary = Build({"--remote_download_minimal"});
  // a runs again; everything else (including b, whose key depends only on a's digest) hits.
  EXPECT_EQ(summary["remote cache hit"], kActions - 1) << last_summary_;
  EXPECT_EQ(summary["total"] - summary["internal"] - summary["remote cache hit"], 1)
      << last_summary_;
}

TEST_F(BazelCacheOverTlsTest, ATokenOverTlsGetsEveryHitAndNoCredentialGetsNone) {
  std::vector<std::string> probe = {"build", "//:a", "--nosandbox_debug", "--spawn_strategy=local"};
  for (const std::string& flag : RemoteFlags(/*with_token=*/true)) probe.push_back(flag);
  ASSERT_OK_AND_ASSIGN(CommandResult r, Bazel(probe));
  if (r.exit_code != 0 && BazelLacksTlsAlpn()) {
    GTEST_SKIP() << bazel_ << " cannot speak gRPC over TLS: its server log says \"JDK provider "
                 << "does not support ALPN protocol\" (Debian 12's bazel-bootstrap); set "
                 << "FARM_BAZEL to an upstream Bazel release to run this test";
  }
  ASSERT_EQ(r.exit_code, 0) << r.DebugString();
  ASSERT_NO_FATAL_FAILURE(Clean());

  std::map<std::string, int> first = Build();
  EXPECT_EQ(first["local"], kActions) << last_summary_;
  ASSERT_NO_FATAL_FAILURE(Clean());
  ExpectAllRemoteHits(Build());

  // Without the token the coordinator refuses Bazel's calls: Bazel says so, builds locally and
  // takes nothing from the cache.
  ASSERT_NO_FATAL_FAILURE(Clean());
  std::map<std::string, int> refused = Build({}, /*with_token=*/false);
  EXPECT_EQ(refused.count("remote cache hit"), 0u) << last_summary_;
  EXPECT_EQ(refused["local"], kActions) << last_summary_;
  EXPECT_NE(last_output_.find("UNAUTHENTICATED"), std::string::npos) << last_output_;
}

}  // namespace
}  // namespace farm::testing
