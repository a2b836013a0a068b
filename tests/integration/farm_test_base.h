// The fixture every integration test starts from: a MiniFarm with a running coordinator.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_replace.h"
#include "farm/v1/farm.pb.h"
#include "tests/testing/mini_farm.h"
#include "tests/testing/status_matchers.h"

namespace farm::testing {

class FarmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(farm_, MiniFarm::Create(FarmOptions()));
    ASSERT_OK(farm_->StartCoordinator(CoordinatorFlags()));
  }

  // The farm SetUp makes (e.g. with TLS), for a fixture that needs another.
  virtual MiniFarmOptions FarmOptions() const { return {}; }
  // Flags of the coordinator SetUp starts, for a fixture that needs other settings.
  virtual std::vector<std::string> CoordinatorFlags() const { return {}; }

  // Starts an agent and waits until `farmctl agents` lists it.
  absl::Status StartAgent(const std::string& name,
                          const std::map<std::string, std::string>& labels = {}, int slots = 1,
                          const std::vector<std::string>& extra_flags = {}) {
    AgentOptions options;
    options.name = name;
    options.labels = labels;
    options.slots = slots;
    options.extra_flags = extra_flags;
    FARM_RETURN_IF_ERROR(farm_->StartAgent(std::move(options)));
    return farm_->WaitForAgents({name});
  }

  // A job file from a template: every "@KEY@" is replaced by vars[KEY]. (Job files are full of
  // shell `$`, so printf- or Substitute-style templates would be noise.)
  static std::string JobFile(const std::string& text,
                             const std::map<std::string, std::string>& vars = {}) {
    std::vector<std::pair<std::string, std::string>> replacements;
    for (const auto& [key, value] : vars) replacements.emplace_back("@" + key + "@", value);
    return absl::StrReplaceAll(text, replacements);
  }

  std::unique_ptr<MiniFarm> farm_;
};

// The same on a farm with TLS: certificates for the coordinator, farmctl (admin) and each agent.
class TlsFarmTest : public FarmTest {
 protected:
  MiniFarmOptions FarmOptions() const override {
    MiniFarmOptions options;
    options.tls = true;
    return options;
  }
};

}  // namespace farm::testing
