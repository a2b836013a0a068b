// The Debian packages that deploy/package.sh built (the CTest fixture packages_build): lintian
// finds no error in them, systemd-analyze verify has nothing to say about their units, and they
// hold what README's "Installing on build machines" promises.
#include <gtest/gtest.h>

#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "tests/packaging/packages.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace farm::packaging {
namespace {

using farm::testing::ReadFile;
using farm::testing::TempDir;
using farm::testing::WriteFile;

class PackagingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(scratch_, TempDir::Create("farm-packaging"));
    for (const char* name : kPackages) {
      ASSERT_OK_AND_ASSIGN(std::string deb, FindPackage(name));
      debs_.push_back(deb);
    }
  }

  // Runs the tool `name` with `args`, expecting exit code 0; its stdout.
  std::string Tool(const std::string& name, std::vector<std::string> args) {
    absl::StatusOr<Output> out = RunCommand(FindTool(name), std::move(args), scratch_->path());
    EXPECT_OK(out);
    if (!out.ok()) return "";
    EXPECT_EQ(out->exit_code, 0) << name << ": " << out->DebugString();
    return out->out;
  }

  // The packages unpacked into `root`, as dpkg would install them there.
  void Unpack(const std::string& root) {
    for (const std::string& deb : debs_) Tool("dpkg-deb", {"-x", deb, root});
  }

  std::optional<TempDir> scratch_;
  std::vector<std::string> debs_;  // in kPackages' order
};

TEST_F(PackagingTest, LintianFindsNoError) {
  const std::string lintian = FindTool("lintian");
  if (lintian.empty()) GTEST_SKIP() << "lintian is not installed (deploy/install-deps.sh adds it)";
  std::vector<std::string> args = {"--display-level", ">=warning", "--no-tag-display-limit"};
  args.insert(args.end(), debs_.begin(), debs_.end());
  ASSERT_OK_AND_ASSIGN(Output out, RunCommand(lintian, args, scratch_->path(), absl::Minutes(5)));
  std::cout << "lintian:\n" << out.out << out.err << std::endl;
  std::vector<std::string> errors;
  for (absl::string_view line : absl::StrSplit(out.out, '\n')) {
    if (absl::StartsWith(line, "E: ")) errors.emplace_back(line);
  }
  EXPECT_TRUE(errors.empty()) << absl::StrJoin(errors, "\n");
  // lintian exits 2 when it finds an error (--fail-on=error), 1 when it could not run.
  EXPECT_EQ(out.exit_code, 0) << out.DebugString();
}

TEST_F(PackagingTest, SystemdAnalyzeVerifyHasNothingToSayAboutTheUnits) {
  const std::string analyze = FindTool("systemd-analyze");
  if (analyze.empty()) GTEST_SKIP() << "systemd-analyze is not installed (package systemd)";
  if (!std::filesystem::is_directory("/lib/systemd/system")) {
    GTEST_SKIP() << "no /lib/systemd/system: the units' dependencies (multi-user.target, ...) "
                    "cannot be resolved here";
  }
  // The packages' files in a tree of their own, with this machine's units, which theirs refer
  // to (multi-user.target, ...): verify then checks the packaged binaries (ExecStart=), not
  // whatever this machine has installed.
  const std::string root = scratch_->Join("root");
  Unpack(root);
  std::filesystem::copy("/lib/systemd/system", root + "/lib/systemd/system",
                        std::filesystem::copy_options::recursive |
                            std::filesystem::copy_options::skip_existing |
                            std::filesystem::copy_options::copy_symlinks);
  // The tools the units run from packages they depend on (ExecStop, ExecReload: procps' kill,
  // coreutils' tail), as this machine has them.
  for (const char* tool : {"/bin/kill", "/usr/bin/tail"}) {
    std::filesystem::create_directories(root + std::filesystem::path(tool).parent_path().string());
    std::filesystem::copy_file(tool, root + tool, std::filesystem::copy_options::skip_existing);
  }
  auto verify = [&](const std::vector<std::string>& units) {
    std::vector<std::string> args = {"verify", "--root=" + root};
    args.insert(args.end(), units.begin(), units.end());
    return RunCommand(analyze, args, scratch_->path());
  };
  // verify exits 0 on what it merely warns about (an unknown key, a bad value it ignores), so
  // any output at all fails the test. The control: a typo in a key is reported.
  ASSERT_OK_AND_ASSIGN(Output out, verify({"/lib/systemd/system/farm-coordinator.service",
                                           "/lib/systemd/system/farm-agent.service"}));
  EXPECT_EQ(out.exit_code, 0) << out.DebugString();
  EXPECT_EQ(out.out + out.err, "") << "systemd-analyze verify complained";

  ASSERT_OK_AND_ASSIGN(std::string unit, ReadFile(root + "/lib/systemd/system/farm-agent.service"));
  absl::StrReplaceAll({{"ProtectSystem=", "ProtectSystm="}}, &unit);
  ASSERT_OK(WriteFile(root + "/lib/systemd/system/farm-typo.service", unit));
  ASSERT_OK_AND_ASSIGN(Output typo, verify({"/lib/systemd/system/farm-typo.service"}));
  EXPECT_TRUE(absl::StrContains(typo.err, "Unknown key 'ProtectSystm'")) << typo.DebugString();
}

// What README's "Installing on build machines" relies on: the files, the conffiles, the units'
// hardening, the dependencies dpkg-shlibdeps computed, the users made by the maintainer scripts.
TEST_F(PackagingTest, PackagesHoldWhatTheReadmePromises) {
  const std::string root = scratch_->Join("root");
  Unpack(root);
  for (const char* binary : {"farm-coordinator", "farm-agent", "farmctl"}) {
    EXPECT_TRUE(std::filesystem::exists(root + "/usr/bin/" + binary)) << binary;
  }
  for (size_t i = 0; i < debs_.size(); ++i) {
    const std::string control = Tool("dpkg-deb", {"-f", debs_[i]});
    EXPECT_TRUE(absl::StrContains(control, "libc6 (>=")) << control;
    EXPECT_TRUE(absl::StrContains(control, "libgrpc++")) << control;
    EXPECT_TRUE(
        std::filesystem::exists(absl::StrCat(root, "/usr/share/doc/", kPackages[i], "/copyright")));
  }
  EXPECT_TRUE(absl::StrContains(Tool("dpkg-deb", {"-f", debs_[0], "Depends"}), "adduser"));

  // Conffiles and maintainer scripts.
  const std::string control_dir = scratch_->Join("control");
  std::filesystem::create_directories(control_dir);
  Tool("dpkg-deb", {"-e", debs_[0], control_dir + "/coordinator"});
  Tool("dpkg-deb", {"-e", debs_[1], control_dir + "/agent"});
  ASSERT_OK_AND_ASSIGN(std::string conffiles, ReadFile(control_dir + "/coordinator/conffiles"));
  EXPECT_TRUE(absl::StrContains(conffiles, "/etc/default/farm-coordinator\n")) << conffiles;
  ASSERT_OK_AND_ASSIGN(conffiles, ReadFile(control_dir + "/agent/conffiles"));
  EXPECT_TRUE(absl::StrContains(conffiles, "/etc/default/farm-agent\n")) << conffiles;
  ASSERT_OK_AND_ASSIGN(std::string postinst, ReadFile(control_dir + "/coordinator/postinst"));
  EXPECT_TRUE(absl::StrContains(postinst, "adduser")) << postinst;
  ASSERT_OK_AND_ASSIGN(postinst, ReadFile(control_dir + "/agent/postinst"));
  EXPECT_TRUE(absl::StrContains(postinst, "farm-build")) << postinst;

  // The units' hardening (README, "Installing on build machines").
  ASSERT_OK_AND_ASSIGN(std::string text,
                       ReadFile(root + "/lib/systemd/system/farm-coordinator.service"));
  UnitFile coordinator = ParseUnit(text);
  ASSERT_OK_AND_ASSIGN(text, ReadFile(root + "/lib/systemd/system/farm-agent.service"));
  UnitFile agent = ParseUnit(text);
  for (const UnitFile* unit : {&coordinator, &agent}) {
    EXPECT_EQ(UnitValue(*unit, "Service", "NoNewPrivileges"), "yes");
    EXPECT_EQ(UnitValue(*unit, "Service", "ProtectSystem"), "strict");
    EXPECT_EQ(UnitValue(*unit, "Service", "ProtectHome"), "yes");
    EXPECT_EQ(UnitValue(*unit, "Service", "PrivateTmp"), "yes");
    EXPECT_EQ(UnitValue(*unit, "Service", "Restart"), "on-failure");
    EXPECT_EQ(UnitValue(*unit, "Install", "WantedBy"), "multi-user.target");
  }
  EXPECT_EQ(UnitValue(coordinator, "Service", "User"), "farm");
  EXPECT_EQ(UnitValue(coordinator, "Service", "StateDirectory"), "farm");
  EXPECT_EQ(UnitValue(agent, "Service", "StateDirectory"), "farm-agent");
  EXPECT_EQ(UnitValue(agent, "Service", "KillMode"), "control-group");
  EXPECT_EQ(UnitValue(agent, "Service", "Delegate"), "yes");
}

}  // namespace
}  // namespace farm::packaging
