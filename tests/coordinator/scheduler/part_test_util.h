// Helpers for the unit tests of the scheduler's parts: each part runs against the in-memory
// store and a fake clock, with groups (Txn) built by hand and committed by the test.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "common/clock.h"
#include "coordinator/scheduler/engine.h"
#include "coordinator/store/keys.h"
#include "coordinator/store/memory_store.h"
#include "farm/v1/farm.pb.h"
#include "tests/testing/status_matchers.h"

namespace farm::coordinator {

class PartTest : public ::testing::Test {
 protected:
  // Writes the group's batch, as the engine would after its commands.
  void Commit(Txn& txn) {
    txn.Seal();
    ASSERT_FALSE(txn.failed());
    ASSERT_OK(store_.Write(txn.batch(), /*sync=*/true));
  }

  // How many keys family `cf` holds.
  int Count(Cf cf) {
    int n = 0;
    EXPECT_OK(store_.Scan(
        cf, "", "", [&](absl::string_view, absl::string_view) { return ++n, true; }, false));
    return n;
  }

  static farm::v1::Job NewJob(uint64_t seq, int priority = 0,
                              std::map<std::string, std::string> labels = {}, int steps = 1) {
    farm::v1::Job job;
    job.set_id(std::to_string(seq));
    job.set_seq(seq);
    job.mutable_spec()->set_name("job" + std::to_string(seq));
    job.mutable_spec()->set_priority(priority);
    for (const auto& [k, v] : labels) (*job.mutable_spec()->mutable_labels())[k] = v;
    for (int i = 0; i < steps; ++i) {
      farm::v1::StepSpec* s = job.mutable_spec()->add_steps();
      s->set_name("s" + std::to_string(i));
      s->set_run("true");
    }
    return job;
  }

  MemoryStore store_;
  common::FakeClock clock_;
};

}  // namespace farm::coordinator
