// TLS material (a private key with its certificate chain, and/or root certificates) that a
// running process can replace: gRPC credentials built on provider() use what Update last set for
// every handshake after it, while established connections go on untouched. The coordinator's
// server credentials (coordinator/service/server_tls.h) and the agent's channel
// (channel.h, ClientSecurity::material) use it, so that SIGHUP reloads their TLS files.
//
// gRPC 1.51 offers no certificate provider a program can push to, only one that watches files
// (grpc::experimental::FileWatcherCertificateProvider, which re-reads them every second). The
// files it watches here are private in-memory files (memfd, named by /proc/self/fd/N) that only
// Create and Update write, after the caller has checked what it read: a half-written certificate
// on disk is never used, and nothing changes until the process is asked (SIGHUP). Each Update
// writes new memfds and moves them onto the watched descriptors with dup3; the watcher compares
// modification times around its reads, and each generation's files carry a different one, so it
// never pairs an old key with a new certificate. New handshakes use new material within about a
// second of Update.
//
// Errors: INTERNAL (with errno's text) when an in-memory file cannot be made;
// FAILED_PRECONDITION when Update would add or remove a part (identity or roots) that Create
// fixed. Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace grpc::experimental {
class CertificateProviderInterface;
}  // namespace grpc::experimental

namespace farm::common {

class TlsMaterial {
 public:
  // `identity`: a PEM private key followed by its certificate chain (empty: none); `roots`: PEM
  // CA certificates (empty: none).
  static absl::StatusOr<std::unique_ptr<TlsMaterial>> Create(const std::string& identity,
                                                             const std::string& roots);
  ~TlsMaterial();
  TlsMaterial(const TlsMaterial&) = delete;
  TlsMaterial& operator=(const TlsMaterial&) = delete;

  bool has_identity() const { return identity_fd_ >= 0; }
  bool has_roots() const { return roots_fd_ >= 0; }
  // For grpc::experimental::Tls{Server,Channel}CredentialsOptions; valid as long as this object.
  const std::shared_ptr<grpc::experimental::CertificateProviderInterface>& provider() const {
    return provider_;
  }

  // Serves `identity` and `roots` from now on; on error what is in use stays.
  absl::Status Update(const std::string& identity, const std::string& roots);

  // What is served now, for servers that build their own TLS contexts (http_server.h);
  // `generation` is new after each Update.
  struct Pems {
    std::string identity;
    std::string roots;
    int64_t generation = 0;
  };
  Pems Current() const;

 private:
  TlsMaterial() = default;
  absl::Status Publish(const std::string& identity, const std::string& roots)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  Pems current_ ABSL_GUARDED_BY(mu_);
  int identity_fd_ = -1;  // fixed after Create: Update replaces the file behind the descriptor
  int roots_fd_ = -1;
  std::shared_ptr<grpc::experimental::CertificateProviderInterface> provider_;
};

// OK when `cert_pem` starts with a certificate and `key_pem` holds its private key;
// INVALID_ARGUMENT naming `cert_flag` / `key_flag` and the file otherwise.
absl::Status CheckKeyPair(const std::string& cert_pem, const std::string& key_pem,
                          const std::string& cert_flag, const std::string& cert_path,
                          const std::string& key_flag, const std::string& key_path);
// OK when `pem` holds a certificate; INVALID_ARGUMENT naming `flag` and `path` otherwise.
absl::Status CheckCertificates(const std::string& pem, const std::string& flag,
                               const std::string& path);
// What TlsMaterial's identity is made of: the key, then the chain.
std::string IdentityPem(const std::string& key_pem, const std::string& cert_pem);

}  // namespace farm::common
