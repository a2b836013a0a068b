// How a benchmark farm's processes and the benchmark's own client reach each other: plaintext on
// loopback (the default, --insecure), or TLS with client certificates (farm-bench --tls), so
// that the cost of TLS per call can be measured beside plaintext with everything else equal.
// Immutable after creation; thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tests/testing/temp_dir.h"

namespace grpc {
class ChannelCredentials;
}

namespace farm::bench {

class BenchSecurity {
 public:
  // Plaintext. `insecure_flag`: whether the binaries take --insecure (builds from before the
  // security work served plaintext without it and refuse the flag).
  static std::shared_ptr<const BenchSecurity> Plaintext(bool insecure_flag);
  // TLS: a CA, a coordinator certificate for 127.0.0.1 and an admin client certificate, made
  // (common::InitCerts) in a new temporary directory, removed with this object.
  static absl::StatusOr<std::shared_ptr<const BenchSecurity>> Tls();

  bool tls() const { return certs_ != nullptr; }
  // "TLS" or "plaintext", for the report.
  std::string Name() const { return tls() ? "TLS" : "plaintext"; }

  // The coordinator's transport flags.
  std::vector<std::string> CoordinatorFlags() const;
  // Agent `name`'s transport flags. Under TLS a client certificate farm://agent/NAME is issued
  // into `dir` (created if missing) first, so that the agent acts as itself.
  absl::StatusOr<std::vector<std::string>> AgentFlags(const std::string& name,
                                                      const std::string& dir) const;
  // The benchmark's own credentials (the admin certificate under TLS).
  std::shared_ptr<grpc::ChannelCredentials> ClientCredentials() const;

 private:
  BenchSecurity() = default;

  bool insecure_flag_ = false;
  std::shared_ptr<testing::TempDir> certs_;  // null: plaintext
  std::string ca_pem_, admin_cert_pem_, admin_key_pem_;
};

}  // namespace farm::bench
