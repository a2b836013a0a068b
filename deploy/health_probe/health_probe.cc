// farm-health-probe: asks a coordinator's standard gRPC health service
// (grpc.health.v1.Health/Check) whether it serves, for container HEALTHCHECKs and Kubernetes
// exec probes. Kubernetes' own `grpc:` probes speak plaintext only, and the coordinator serves
// TLS only (outside --insecure development farms), so the probe is this small client: it
// verifies the coordinator with the CA and presents no credential (the health service is
// public; see README, "Security").
//
// Usage: farm-health-probe [--address=HOST:PORT] (--tls_ca=FILE | --insecure) [--timeout=5s]
//                          [--service=NAME]
// Exit code: 0 the coordinator answered SERVING; 1 anything else (NOT_SERVING, unreachable,
// a TLS failure, no answer within --timeout), with one line on stderr saying which; 64 bad
// flags. (Docker reserves exit code 2 in health checks, so none is used.)
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/channel.h"
#include "common/duration.h"

ABSL_FLAG(std::string, address, "127.0.0.1:7070", "the coordinator's HOST:PORT");
ABSL_FLAG(std::string, tls_ca, "",
          "the CA that signed the coordinator's certificate (default: $FARM_TLS_CA)");
ABSL_FLAG(bool, insecure, false, "plaintext, for a coordinator started with --insecure");
ABSL_FLAG(std::string, timeout, "5s", "how long to wait for the answer");
ABSL_FLAG(std::string, service, "", "the service to ask about (default: the whole server)");

namespace {

constexpr int kUnhealthy = 1;
constexpr int kUsage = 64;
// The longest service name sent; real ones are a few dozen bytes.
constexpr size_t kMaxServiceBytes = 200;

// HealthCheckRequest{service: `service`}: field 1, length-delimited (an empty message when the
// name is empty). The name is shorter than 128 bytes, so its length is one byte.
std::string EncodeRequest(const std::string& service) {
  if (service.empty()) return "";
  return absl::StrCat("\x0a", std::string(1, static_cast<char>(service.size())), service);
}

// HealthCheckResponse.status (field 1, a varint enum): 0 UNKNOWN, 1 SERVING, 2 NOT_SERVING,
// 3 SERVICE_UNKNOWN. An empty message is UNKNOWN; anything else unexpected is an error.
absl::StatusOr<uint64_t> DecodeStatus(const std::string& bytes) {
  if (bytes.empty()) return 0;
  if (bytes[0] != '\x08') return absl::DataLossError("not a HealthCheckResponse");
  uint64_t value = 0;
  for (size_t i = 1; i < bytes.size() && i <= 10; ++i) {
    const auto byte = static_cast<uint8_t>(bytes[i]);
    value |= static_cast<uint64_t>(byte & 0x7f) << (7 * (i - 1));
    if ((byte & 0x80) == 0) return value;
  }
  return absl::DataLossError("a truncated HealthCheckResponse");
}

const char* StatusName(uint64_t status) {
  switch (status) {
    case 0:
      return "UNKNOWN";
    case 1:
      return "SERVING";
    case 2:
      return "NOT_SERVING";
    case 3:
      return "SERVICE_UNKNOWN";
    default:
      return "an unknown status";
  }
}

// One Check call on `channel`; the response's bytes, or the call's error.
absl::StatusOr<std::string> Check(const std::shared_ptr<grpc::Channel>& channel,
                                  const std::string& service, int64_t timeout_ms) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  grpc::Slice slice(EncodeRequest(service));
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::Status status;
  absl::Notification done;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  // The deadline ends the call; this bound only guards against a call that never completes.
  if (!done.WaitForNotificationWithTimeout(absl::Milliseconds(timeout_ms) + absl::Seconds(5))) {
    return absl::DeadlineExceededError("the call never completed");
  }
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
  }
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return absl::DataLossError("an unreadable response");
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return bytes;
}

int Say(int code, const std::string& message) {
  std::cerr << "farm-health-probe: " << message << "\n";
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "farm-health-probe [--address=HOST:PORT] (--tls_ca=FILE | --insecure) [--timeout=5s] "
      "[--service=NAME]\nExit code 0 when the coordinator serves, 1 otherwise.");
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (rest.size() > 1) return Say(kUsage, std::string("unexpected argument: ") + rest[1]);
  absl::StatusOr<int64_t> timeout_ms = farm::common::ParseDurationMs(absl::GetFlag(FLAGS_timeout));
  if (!timeout_ms.ok() || *timeout_ms <= 0) {
    return Say(kUsage, "--timeout: expected a positive duration such as 5s");
  }
  const std::string service = absl::GetFlag(FLAGS_service);
  if (service.size() > kMaxServiceBytes) {
    return Say(kUsage, absl::StrCat("--service: longer than ", kMaxServiceBytes, " bytes"));
  }
  farm::common::ClientSecurityFlags flags;
  flags.insecure = absl::GetFlag(FLAGS_insecure);
  flags.tls_ca = absl::GetFlag(FLAGS_tls_ca);
  // No identity: the health service is public, and a probe should hold no credential.
  auto security = farm::common::LoadClientSecurity(flags, [](const char* name) -> const char* {
    return std::string(name) == "FARM_TLS_CA" ? std::getenv(name) : nullptr;
  });
  if (!security.ok()) return Say(kUsage, std::string(security.status().message()));
  const std::string address = absl::GetFlag(FLAGS_address);
  auto channel = farm::common::MakeChannel(address, *security);
  if (!channel.ok()) return Say(kUsage, std::string(channel.status().message()));

  absl::StatusOr<std::string> response = Check(*channel, service, *timeout_ms);
  if (!response.ok()) {
    return Say(kUnhealthy, absl::StrCat("the health check of ", address, " failed: ",
                                        absl::StatusCodeToString(response.status().code()), ": ",
                                        response.status().message()));
  }
  absl::StatusOr<uint64_t> status = DecodeStatus(*response);
  if (!status.ok()) return Say(kUnhealthy, std::string(status.status().message()));
  if (*status != 1) {
    return Say(kUnhealthy, absl::StrCat(address, " answered ", StatusName(*status)));
  }
  std::cout << address << " SERVING\n";
  return 0;
}
