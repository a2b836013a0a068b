// Service tests of the coordinator's edge against hostile strings: the real Coordinator
// in-process on 127.0.0.1:0, driven through the generated stubs as a hostile client would.
// Every string field is refused with INVALID_ARGUMENT naming it when it holds a NUL, a control
// character or bytes that are not UTF-8 (the last ones fail protobuf's own parse, which the
// callback server used to answer UNIMPLEMENTED with no message); a refused call changes
// nothing; and no error repeats more than a few hundred bytes of what the client sent.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "common/channel.h"
#include "coordinator/coordinator.h"
#include "farm/v1/farm.grpc.pb.h"
#include "tests/coordinator/in_process_coordinator.h"
#include "tests/testing/status_matchers.h"

namespace farm::coordinator {
namespace {

using namespace std::string_literals;  // "\0"s keeps the NUL
using ::testing::AllOf;
using ::testing::HasSubstr;

// One bad string, and what the refusal says about it (its escaped form and the problem).
struct BadText {
  std::string text;
  std::string shown;
  std::string problem;
};

std::vector<BadText> BadTexts(const std::string& prefix) {
  return {
      {prefix + "\0"s, prefix + "\\x00", "contains a NUL byte"},
      {prefix + "\x1b[2J", prefix + "\\x1b[2J", "contains a control character"},
      {prefix + "\xff", prefix + "\\xff", "is not valid UTF-8"},
  };
}

class HostileInputTest : public InProcessCoordinatorTest {
 protected:
  static farm::v1::SubmitJobRequest ValidSubmit() {
    farm::v1::SubmitJobRequest req;
    req.mutable_spec()->set_name("hello");
    (*req.mutable_spec()->mutable_labels())["os"] = "linux";
    (*req.mutable_spec()->mutable_env())["GREETING"] = "hello\nworld";
    req.mutable_spec()->add_steps()->set_run("echo \"$GREETING\"\n\techo done\n");
    return req;
  }

  static farm::v1::RegisterRequest ValidRegister(const std::string& name) {
    farm::v1::RegisterRequest req;
    req.set_name(name);
    req.set_slots(1);
    req.set_session_id("s-1");
    (*req.mutable_labels())["os"] = "linux";
    return req;
  }

  grpc::Status Submit(const farm::v1::SubmitJobRequest& req) {
    farm::v1::SubmitJobResponse resp;
    return jobs_->Submit(Ctx().get(), req, &resp);
  }
  grpc::Status Register(const farm::v1::RegisterRequest& req) {
    farm::v1::RegisterResponse resp;
    return agents_->Register(Ctx().get(), req, &resp);
  }
  int JobCount() {
    farm::v1::ListJobsResponse resp;
    EXPECT_TRUE(jobs_->List(Ctx().get(), {}, &resp).ok());
    return resp.jobs_size();
  }
  int AgentCount() {
    farm::v1::ListAgentsResponse resp;
    EXPECT_TRUE(admin_->ListAgents(Ctx().get(), {}, &resp).ok());
    return resp.agents_size();
  }
};

// Asserts that `s` is INVALID_ARGUMENT naming `field`, showing `bad` escaped, saying its problem.
void ExpectRefused(const grpc::Status& s, const std::string& field, const BadText& bad) {
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << field << ": " << s.error_message();
  EXPECT_THAT(s.error_message(),
              AllOf(HasSubstr(field + " \"" + bad.shown + "\""), HasSubstr(bad.problem)));
}

TEST_F(HostileInputTest, TheValidRequestsAreAccepted) {
  ASSERT_TRUE(Submit(ValidSubmit()).ok());
  ASSERT_TRUE(Register(ValidRegister("agent-\xc3\xa9")).ok());  // UTF-8 is fine
  EXPECT_EQ(JobCount(), 1);
  EXPECT_EQ(AgentCount(), 1);
}

TEST_F(HostileInputTest, LabelsAreRefusedByName) {
  for (const BadText& bad : BadTexts("os")) {
    farm::v1::SubmitJobRequest req = ValidSubmit();
    (*req.mutable_spec()->mutable_labels())[bad.text] = "linux";
    ExpectRefused(Submit(req), "spec.labels key", bad);

    req = ValidSubmit();
    (*req.mutable_spec()->mutable_labels())["os"] = bad.text;
    ExpectRefused(Submit(req), "spec.labels[\"os\"]", bad);

    farm::v1::RegisterRequest reg = ValidRegister("agent");
    (*reg.mutable_labels())[bad.text] = "linux";
    ExpectRefused(Register(reg), "labels key", bad);
  }
  EXPECT_EQ(JobCount(), 0);
  EXPECT_EQ(AgentCount(), 0);
}

TEST_F(HostileInputTest, EnvKeysAreRefusedByName) {
  for (const BadText& bad : BadTexts("PATH")) {
    farm::v1::SubmitJobRequest req = ValidSubmit();
    (*req.mutable_spec()->mutable_env())[bad.text] = "/bin";
    ExpectRefused(Submit(req), "spec.env key", bad);

    req = ValidSubmit();
    (*req.mutable_spec()->mutable_steps(0)->mutable_env())[bad.text] = "/bin";
    ExpectRefused(Submit(req), "spec.steps[0].env key", bad);
  }
  EXPECT_EQ(JobCount(), 0);
}

TEST_F(HostileInputTest, AgentNamesAreRefusedByName) {
  for (const BadText& bad : BadTexts("agent")) {
    ExpectRefused(Register(ValidRegister(bad.text)), "name", bad);

    farm::v1::LeaseRequest lease;
    lease.set_agent(bad.text);
    lease.set_session_id("s-1");
    farm::v1::LeaseResponse lease_resp;
    ExpectRefused(agents_->Lease(Ctx().get(), lease, &lease_resp), "agent", bad);

    farm::v1::HeartbeatRequest heartbeat;
    heartbeat.set_agent(bad.text);
    farm::v1::HeartbeatResponse heartbeat_resp;
    ExpectRefused(agents_->Heartbeat(Ctx().get(), heartbeat, &heartbeat_resp), "agent", bad);
  }
  EXPECT_EQ(AgentCount(), 0);
}

TEST_F(HostileInputTest, JobIdsAreRefusedByName) {
  for (const BadText& bad : BadTexts("1")) {
    farm::v1::GetJobRequest get;
    get.set_job_id(bad.text);
    farm::v1::Job job;
    ExpectRefused(jobs_->Get(Ctx().get(), get, &job), "job_id", bad);

    farm::v1::CancelJobRequest cancel;
    cancel.set_job_id(bad.text);
    farm::v1::CancelJobResponse cancel_resp;
    ExpectRefused(jobs_->Cancel(Ctx().get(), cancel, &cancel_resp), "job_id", bad);

    farm::v1::WatchLogsRequest watch;
    watch.set_job_id(bad.text);
    auto ctx = Ctx();
    auto reader = jobs_->WatchLogs(ctx.get(), watch);
    farm::v1::WatchLogsResponse message;
    EXPECT_FALSE(reader->Read(&message));
    ExpectRefused(reader->Finish(), "job_id", bad);

    farm::v1::StepStartedRequest started;
    started.mutable_lease()->set_job_id(bad.text);
    farm::v1::Ack ack;
    ExpectRefused(agents_->StepStarted(Ctx().get(), started, &ack), "lease.job_id", bad);

    auto upload_ctx = Ctx();
    farm::v1::LogUploadResponse upload_resp;
    auto writer = agents_->UploadLogs(upload_ctx.get(), &upload_resp);
    farm::v1::LogUploadChunk chunk;
    chunk.mutable_lease()->set_job_id(bad.text);
    chunk.set_data("output");
    writer->Write(chunk);
    writer->WritesDone();
    ExpectRefused(writer->Finish(), "lease.job_id", bad);
  }
}

TEST_F(HostileInputTest, OtherSubmittedNamesAndIdsAreRefusedByName) {
  for (const BadText& bad : BadTexts("x")) {
    farm::v1::SubmitJobRequest req = ValidSubmit();
    req.set_request_id(bad.text);
    ExpectRefused(Submit(req), "request_id", bad);

    req = ValidSubmit();
    req.mutable_spec()->mutable_steps(0)->set_name(bad.text);
    ExpectRefused(Submit(req), "spec.steps[0].name", bad);

    req = ValidSubmit();
    req.mutable_spec()->set_concurrency_group(bad.text);
    ExpectRefused(Submit(req), "spec.concurrency_group", bad);

    farm::v1::SubmitPipelineRequest pipeline;
    pipeline.mutable_spec()->set_name("release");
    farm::v1::PipelineJobSpec* job = pipeline.mutable_spec()->add_jobs();
    job->set_name("build");
    job->mutable_spec()->add_steps()->set_run("make");
    job->add_needs(bad.text);
    farm::v1::SubmitPipelineResponse pipeline_resp;
    ExpectRefused(jobs_->SubmitPipeline(Ctx().get(), pipeline, &pipeline_resp),
                  "spec.jobs[0].needs[0]", bad);
  }
  EXPECT_EQ(JobCount(), 0);
}

TEST_F(HostileInputTest, ScriptsAndEnvValuesMayHoldLineBreaksButNoOtherControls) {
  farm::v1::SubmitJobRequest req = ValidSubmit();
  req.mutable_spec()->mutable_steps(0)->set_run("printf '\x1b[31mred'\n");
  ExpectRefused(Submit(req), "spec.steps[0].run",
                {"", "printf '\\x1b[31mred'\\n", "contains a control character"});
  EXPECT_EQ(JobCount(), 0);
  ASSERT_TRUE(Submit(ValidSubmit()).ok());  // newlines and tabs in both
}

TEST_F(HostileInputTest, ErrorsEchoAtMostAFewHundredBytesOfTheInput) {
  const std::string huge_id(1 << 20, '7');  // a well-formed-looking but absurd id
  farm::v1::GetJobRequest get;
  get.set_job_id(huge_id);
  farm::v1::Job job;
  grpc::Status s = jobs_->Get(Ctx().get(), get, &job);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_LT(s.error_message().size(), 1024u) << s.error_message().substr(0, 2000);
  EXPECT_THAT(s.error_message(), HasSubstr("(1048576 bytes)"));

  farm::v1::CancelJobRequest cancel;
  cancel.set_job_id(huge_id);
  farm::v1::CancelJobResponse cancel_resp;
  s = jobs_->Cancel(Ctx().get(), cancel, &cancel_resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_LT(s.error_message().size(), 1024u);

  // A bad byte at the end of a long id: refused, cut, and the place said.
  get.set_job_id(huge_id + "\x01");
  s = jobs_->Get(Ctx().get(), get, &job);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_LT(s.error_message().size(), 1024u);
  EXPECT_THAT(s.error_message(), HasSubstr("at byte 1048576"));

  farm::v1::LeaseRequest lease;
  lease.set_agent(std::string(1 << 20, 'a'));
  lease.set_session_id("s-1");
  farm::v1::LeaseResponse lease_resp;
  s = agents_->Lease(Ctx().get(), lease, &lease_resp);
  EXPECT_FALSE(s.ok());
  EXPECT_LT(s.error_message().size(), 1024u);

  farm::v1::SubmitJobRequest req = ValidSubmit();
  (*req.mutable_spec()->mutable_labels())[std::string(1 << 20, 'k')] = "v";
  s = Submit(req);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_LT(s.error_message().size(), 1024u);
}

}  // namespace
}  // namespace farm::coordinator
