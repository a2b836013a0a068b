#include "coordinator/auth/authz_table.h"

#include <google/protobuf/descriptor.h>
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "build/bazel/remote/execution/v2/remote_execution.pb.h"
#include "farm/v1/farm.pb.h"
#include "google/bytestream/bytestream.pb.h"

namespace farm::coordinator {
namespace {

// Every RPC of every service the farm's protos define: a new one without an entry in the
// table fails here (the service test checks the same of the running server, role by role).
std::set<std::string> AllProtoMethods() {
  // Referencing a message links its file's descriptors into the generated pool.
  const google::protobuf::FileDescriptor* files[] = {
      farm::v1::Job::descriptor()->file(),
      build::bazel::remote::execution::v2::Digest::descriptor()->file(),
      google::bytestream::ReadRequest::descriptor()->file(),
  };
  std::set<std::string> methods;
  for (const google::protobuf::FileDescriptor* file : files) {
    for (int s = 0; s < file->service_count(); ++s) {
      const google::protobuf::ServiceDescriptor* service = file->service(s);
      for (int m = 0; m < service->method_count(); ++m) {
        methods.insert(absl::StrCat("/", service->full_name(), "/", service->method(m)->name()));
      }
    }
  }
  return methods;
}

TEST(AuthzTableTest, EveryRpcOfEveryServiceHasAnEntry) {
  const std::set<std::string> methods = AllProtoMethods();
  ASSERT_GE(methods.size(), 30u);
  for (const std::string& method : methods) {
    EXPECT_NE(FindAuthz(method), nullptr) << method << " has no entry in the table";
  }
}

TEST(AuthzTableTest, EveryEntryNamesAnRpcThatExists) {
  std::set<std::string> methods = AllProtoMethods();
  methods.insert("/grpc.health.v1.Health/Check");
  methods.insert("/grpc.health.v1.Health/Watch");
  std::set<absl::string_view> seen;
  for (const AuthzEntry& e : AuthzTable()) {
    // The HTTP port's pages ("GET /metrics"): http_port_test checks them against what it serves.
    const bool http = absl::StartsWith(e.method, "GET ") || absl::StartsWith(e.method, "POST ");
    EXPECT_TRUE(http || methods.count(std::string(e.method))) << e.method << " is not a served RPC";
    EXPECT_TRUE(seen.insert(e.method).second) << e.method << " is listed twice";
  }
}

TEST(AuthzTableTest, AMethodNotInTheTableIsDeniedToEveryRole) {
  for (Role role : {Role::kViewer, Role::kSubmitter, Role::kAgent, Role::kAdmin}) {
    EXPECT_FALSE(Allowed("/farm.v1.JobService/DeleteEverything", role));
    EXPECT_FALSE(Allowed("", role));
  }
}

TEST(AuthzTableTest, RolesCanDoWhatTheirDescriptionsSay) {
  // viewer: reads; submitter: + submit and cancel; agent: its protocol and the CAS; admin: all.
  EXPECT_TRUE(Allowed("/farm.v1.JobService/Get", Role::kViewer));
  EXPECT_FALSE(Allowed("/farm.v1.JobService/Submit", Role::kViewer));
  EXPECT_FALSE(Allowed("/farm.v1.JobService/Cancel", Role::kViewer));
  EXPECT_FALSE(Allowed("/google.bytestream.ByteStream/Write", Role::kViewer));
  EXPECT_TRUE(Allowed("/google.bytestream.ByteStream/Read", Role::kViewer));
  EXPECT_TRUE(Allowed("/farm.v1.JobService/Submit", Role::kSubmitter));
  EXPECT_TRUE(Allowed("/farm.v1.JobService/CancelPipeline", Role::kSubmitter));
  EXPECT_FALSE(Allowed("/farm.v1.AgentService/Lease", Role::kSubmitter));
  EXPECT_FALSE(Allowed("/farm.v1.AdminService/CreateToken", Role::kSubmitter));
  EXPECT_TRUE(Allowed("/farm.v1.AgentService/CompleteJob", Role::kAgent));
  EXPECT_TRUE(Allowed("/google.bytestream.ByteStream/Write", Role::kAgent));
  EXPECT_FALSE(Allowed("/farm.v1.JobService/Submit", Role::kAgent));
  EXPECT_FALSE(Allowed("/farm.v1.JobService/Get", Role::kAgent));
  EXPECT_FALSE(Allowed("/farm.v1.AdminService/ListTokens", Role::kAgent));
  // Public: health (probes carry no credential), enrollment (the agent has none yet: the
  // enrollment token in the request is its credential), and the web dashboard's shell, its files
  // and its sign-in (they hold no data).
  const std::set<std::string> web_public = {
      "GET /",       "GET /jobs",    "GET /jobs/*", "GET /pipelines", "GET /pipelines/*",
      "GET /agents", "GET /factory", "GET /login",  "GET /static/*",  "POST /login"};
  EXPECT_TRUE(Allowed("/farm.v1.AdminService/CreateEnrollToken", Role::kAdmin));
  EXPECT_FALSE(Allowed("/farm.v1.AdminService/CreateEnrollToken", Role::kAgent));
  for (const AuthzEntry& e : AuthzTable()) {
    EXPECT_TRUE(Allowed(e.method, Role::kAdmin)) << e.method;
    EXPECT_EQ(e.is_public, absl::string_view(e.method).substr(0, 17) == "/grpc.health.v1.H" ||
                               e.method == "/farm.v1.AgentService/Enroll" ||
                               e.method == "GET /healthz" ||
                               web_public.count(std::string(e.method)) > 0)
        << e.method;
  }
}

}  // namespace
}  // namespace farm::coordinator
