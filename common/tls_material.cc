#include "common/tls_material.h"

#include <fcntl.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/openssl_ptr.h"
#include "common/posix_io.h"
#include "common/status_macros.h"

namespace farm::common {
namespace {

// How often gRPC's watcher re-reads the in-memory files (seconds; its minimum).
constexpr unsigned int kWatchIntervalSeconds = 1;

// Every memfd of every generation gets its own modification time (see the header).
std::atomic<int64_t> g_generation{1};

std::string FdPath(int fd) { return absl::StrCat("/proc/self/fd/", fd); }

X509Ptr FirstCertificate(const std::string& pem) {
  X509Ptr cert(PEM_read_bio_X509(PemBio(pem).get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  return cert;
}

// A new memfd holding `text`, its modification time `generation` seconds after the epoch.
absl::StatusOr<int> MemFile(const char* name, const std::string& text, int64_t generation) {
  const int fd = memfd_create(name, MFD_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "memfd_create");
  if (absl::Status s = WriteAll(fd, text, "write to a memfd"); !s.ok()) {
    ::close(fd);
    return s;
  }
  const struct timespec times[2] = {{generation, 0}, {generation, 0}};
  if (futimens(fd, times) != 0) {
    const int err = errno;
    ::close(fd);
    return ErrnoStatus(err, "futimens on a memfd");
  }
  return fd;
}

// Puts `fresh` in the place of descriptor `*slot` (atomically for every reader of its /proc
// path), or makes it the slot when there is none yet. Closes `fresh` either way.
absl::Status Replace(int fresh, int* slot) {
  if (*slot < 0) {
    *slot = fresh;
    return absl::OkStatus();
  }
  const int result = dup3(fresh, *slot, O_CLOEXEC);
  const int err = errno;
  ::close(fresh);
  if (result < 0) return ErrnoStatus(err, "dup3");
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckKeyPair(const std::string& cert_pem, const std::string& key_pem,
                          const std::string& cert_flag, const std::string& cert_path,
                          const std::string& key_flag, const std::string& key_path) {
  X509Ptr cert = FirstCertificate(cert_pem);
  KeyPtr key(PEM_read_bio_PrivateKey(PemBio(key_pem).get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (cert == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(cert_flag, ": ", cert_path, " holds no certificate"));
  }
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(key_flag, ": ", key_path, " holds no private key"));
  }
  const bool match = X509_check_private_key(cert.get(), key.get()) == 1;
  ERR_clear_error();
  if (!match) {
    return absl::InvalidArgumentError(absl::StrCat(
        key_flag, ": ", key_path, " is not the key of the certificate in ", cert_path));
  }
  return absl::OkStatus();
}

absl::Status CheckCertificates(const std::string& pem, const std::string& flag,
                               const std::string& path) {
  if (FirstCertificate(pem) == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", path, " holds no certificate"));
  }
  return absl::OkStatus();
}

std::string IdentityPem(const std::string& key_pem, const std::string& cert_pem) {
  return absl::StrCat(key_pem, key_pem.empty() || key_pem.back() == '\n' ? "" : "\n", cert_pem);
}

absl::StatusOr<std::unique_ptr<TlsMaterial>> TlsMaterial::Create(const std::string& identity,
                                                                 const std::string& roots) {
  std::unique_ptr<TlsMaterial> material(new TlsMaterial());
  {
    absl::MutexLock lock(&material->mu_);
    FARM_RETURN_IF_ERROR(material->Publish(identity, roots));
  }
  const std::string identity_path = material->has_identity() ? FdPath(material->identity_fd_) : "";
  material->provider_ = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      identity_path, identity_path, material->has_roots() ? FdPath(material->roots_fd_) : "",
      kWatchIntervalSeconds);
  return material;
}

TlsMaterial::~TlsMaterial() {
  provider_.reset();  // stops the watcher before its files go
  if (identity_fd_ >= 0) ::close(identity_fd_);
  if (roots_fd_ >= 0) ::close(roots_fd_);
}

absl::Status TlsMaterial::Publish(const std::string& identity, const std::string& roots) {
  const int64_t generation = g_generation.fetch_add(1);
  int identity_fd = -1;
  if (!identity.empty()) {
    FARM_ASSIGN_OR_RETURN(identity_fd, MemFile("farm-tls-identity", identity, generation));
  }
  int roots_fd = -1;
  if (!roots.empty()) {
    absl::StatusOr<int> fd = MemFile("farm-tls-roots", roots, generation);
    if (!fd.ok()) {
      if (identity_fd >= 0) ::close(identity_fd);
      return fd.status();
    }
    roots_fd = *fd;
  }
  // The roots first: a handshake between the two swaps pairs the old identity with the new
  // roots, which the operator has made to accept the same peers.
  if (roots_fd >= 0) {
    if (absl::Status s = Replace(roots_fd, &roots_fd_); !s.ok()) {
      if (identity_fd >= 0) ::close(identity_fd);
      return s;
    }
  }
  if (identity_fd >= 0) FARM_RETURN_IF_ERROR(Replace(identity_fd, &identity_fd_));
  current_ = Pems{identity, roots, generation};
  return absl::OkStatus();
}

TlsMaterial::Pems TlsMaterial::Current() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

absl::Status TlsMaterial::Update(const std::string& identity, const std::string& roots) {
  absl::MutexLock lock(&mu_);
  if (identity.empty() == has_identity() || roots.empty() == has_roots()) {
    return absl::FailedPreconditionError(
        "a certificate or CA file was added or removed: that changes with a restart only");
  }
  return Publish(identity, roots);
}

}  // namespace farm::common
