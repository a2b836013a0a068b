// Service tests of the operators' agent commands (AdminService: DrainAgent, ResumeAgent,
// RemoveAgent, LabelAgent): the real Coordinator in-process on 127.0.0.1:0 with a temporary
// RocksDB, driven through the generated stubs as farmctl and agents drive it.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>

#include "common/channel.h"
#include "coordinator/coordinator.h"
#include "farm/v1/farm.grpc.pb.h"
#include "tests/coordinator/in_process_coordinator.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace farm::coordinator {
namespace {

class AdminAgentsServiceTest : public InProcessCoordinatorTest {
 protected:
  void Configure(CoordinatorOptions& options) override { options.lease_ttl_ms = 5000; }

  void Register(const std::string& name, const std::string& session) {
    farm::v1::RegisterRequest reg;
    reg.set_name(name);
    reg.set_slots(1);
    reg.set_session_id(session);
    (*reg.mutable_labels())["os"] = "linux";
    farm::v1::RegisterResponse resp;
    grpc::Status s = agents_->Register(Ctx().get(), reg, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  farm::v1::AgentInfo Listed(const std::string& name) {
    farm::v1::ListAgentsResponse list;
    EXPECT_TRUE(admin_->ListAgents(Ctx().get(), farm::v1::ListAgentsRequest(), &list).ok());
    for (const farm::v1::AgentInfo& info : list.agents()) {
      if (info.name() == name) return info;
    }
    return farm::v1::AgentInfo();
  }
};

// A parked Lease call of an agent an operator labels gets the queued job the new label matches,
// long before its wait ends; the change is an event and survives a restart with the drain.
TEST_F(AdminAgentsServiceTest, ALabelReachesTheParkedLeaseAtOnceAndBothSurviveARestart) {
  Register("a1", "s1");
  farm::v1::SubmitJobRequest submit;
  submit.mutable_spec()->set_name("needs-gpu");
  (*submit.mutable_spec()->mutable_labels())["gpu"] = "yes";
  submit.mutable_spec()->add_steps()->set_run("true");
  farm::v1::SubmitJobResponse submitted;
  ASSERT_TRUE(jobs_->Submit(Ctx().get(), submit, &submitted).ok());

  std::future<farm::v1::LeaseResponse> parked = std::async(std::launch::async, [this] {
    farm::v1::LeaseRequest lr;
    lr.set_agent("a1");
    lr.set_session_id("s1");
    lr.set_wait_ms(50'000);
    farm::v1::LeaseResponse lease;
    EXPECT_TRUE(agents_->Lease(Ctx(60).get(), lr, &lease).ok());
    return lease;
  });
  farm::v1::LabelAgentRequest label;
  label.set_name("a1");
  (*label.mutable_set())["gpu"] = "yes";
  farm::v1::LabelAgentResponse labelled;
  grpc::Status s = admin_->LabelAgent(Ctx().get(), label, &labelled);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(labelled.agent().labels().at("gpu"), "yes");
  // The call may have parked before or after the label: either way it gets the job well
  // before its 50 s wait ends.
  ASSERT_EQ(parked.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  EXPECT_EQ(parked.get().job().id(), submitted.job_id());

  farm::v1::DrainAgentRequest drain;
  drain.set_name("a1");
  farm::v1::DrainAgentResponse drained;
  ASSERT_TRUE(admin_->DrainAgent(Ctx().get(), drain, &drained).ok());
  EXPECT_EQ(drained.agent().state(), "draining");
  EXPECT_EQ(drained.agent().jobs_size(), 1);

  farm::v1::ListEventsRequest events_req;
  farm::v1::ListEventsResponse events;
  ASSERT_TRUE(jobs_->ListEvents(Ctx().get(), events_req, &events).ok());
  std::vector<std::string> reasons;
  for (const farm::v1::Event& e : events.events()) {
    if (e.kind() == farm::v1::AGENT_LABELED || e.kind() == farm::v1::AGENT_DRAINING) {
      reasons.push_back(e.reason());
    }
  }
  EXPECT_EQ(reasons,
            (std::vector<std::string>{"set gpu=yes; by an operator", "drained by an operator"}));

  Boot();  // a coordinator restart on the same data
  farm::v1::AgentInfo info = Listed("a1");
  EXPECT_EQ(info.state(), "draining");
  EXPECT_EQ(info.labels().at("gpu"), "yes");
  EXPECT_EQ(info.operator_labels().at("gpu"), "yes");
}

TEST_F(AdminAgentsServiceTest, BadRequestsAreRefusedWithTheirCodeAndChangeNothing) {
  Register("a1", "s1");
  farm::v1::DrainAgentRequest drain;
  drain.set_name("ghost");
  farm::v1::DrainAgentResponse drained;
  grpc::Status s = admin_->DrainAgent(Ctx().get(), drain, &drained);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "no agent named \"ghost\"");
  drain.set_name("");
  s = admin_->DrainAgent(Ctx().get(), drain, &drained);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();

  farm::v1::LabelAgentRequest label;
  label.set_name("a1");
  (*label.mutable_set())["gpu\x01"] = "yes";
  farm::v1::LabelAgentResponse labelled;
  s = admin_->LabelAgent(Ctx().get(), label, &labelled);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  label.clear_set();
  (*label.mutable_set())["gpu"] = "a,b";
  s = admin_->LabelAgent(Ctx().get(), label, &labelled);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();

  farm::v1::RemoveAgentRequest remove;
  remove.set_name("a1");
  farm::v1::RemoveAgentResponse removed;
  s = admin_->RemoveAgent(Ctx().get(), remove, &removed);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();

  farm::v1::AgentInfo info = Listed("a1");
  EXPECT_EQ(info.state(), "idle");
  EXPECT_EQ(info.labels().size(), 1u);
  EXPECT_TRUE(info.operator_labels().empty());
}

}  // namespace
}  // namespace farm::coordinator
