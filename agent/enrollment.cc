#include "agent/enrollment.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/backoff.h"
#include "common/channel.h"
#include "common/logging.h"
#include "common/posix_io.h"
#include "common/unique_fd.h"

namespace farm::agent {
namespace {

absl::Status SyncDirOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  common::UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return common::ErrnoStatus(errno, dir);
  if (::fsync(fd.get()) != 0) return common::ErrnoStatus(errno, absl::StrCat("syncing ", dir));
  return absl::OkStatus();
}

// The enrollment itself: Enroll, retried while the coordinator cannot be reached.
absl::StatusOr<farm::v1::EnrollResponse> EnrollWithRetries(const AgentOptions& options,
                                                           CoordinatorClient* client,
                                                           absl::string_view request_id,
                                                           CallCanceller* canceller) {
  farm::v1::EnrollRequest request;
  request.set_enroll_token(options.enroll_token);
  request.set_name(options.name);
  request.set_request_id(std::string(request_id));
  CallCanceller never_cancelled;
  if (canceller == nullptr) canceller = &never_cancelled;
  const absl::Time give_up = absl::Now() + absl::Milliseconds(kEnrollRetryMs);
  common::Backoff backoff;
  for (int failures = 0;; ++failures) {
    absl::StatusOr<farm::v1::EnrollResponse> response = client->Enroll(request, canceller);
    if (response.ok()) return response;
    if (!IsRetryable(response.status())) {
      return absl::Status(response.status().code(),
                          absl::StrCat("the coordinator refused the enrollment token: ",
                                       response.status().message()));
    }
    if (absl::Now() >= give_up) {
      return absl::UnavailableError(absl::StrCat(
          "could not enroll: the coordinator ", options.coordinator, " did not answer for ",
          kEnrollRetryMs / 1000, " s: ", response.status().message()));
    }
    if (failures % 10 == 0) {
      FARM_LOG(WARNING) << "[agent=" << options.name << "] enrolling with " << options.coordinator
                        << " failed, retrying: " << response.status();
    }
    if (canceller->SleepFor(backoff.NextDelayMs())) {
      return absl::CancelledError("enrollment cancelled");
    }
  }
}

}  // namespace

std::string CredentialPath(absl::string_view work_dir) {
  return absl::StrCat(work_dir, "/", kCredentialFileName);
}

absl::Status WriteCredentialFile(const std::string& path, absl::string_view token) {
  std::string temp = absl::StrCat(path, ".tmp-XXXXXX");
  common::UniqueFd fd(::mkostemp(temp.data(), O_CLOEXEC));  // mode 0600
  if (fd.get() < 0) return common::ErrnoStatus(errno, absl::StrCat("creating ", temp));
  absl::Status status = common::WriteAll(fd.get(), absl::StrCat(token, "\n"), temp);
  if (status.ok() && ::fchmod(fd.get(), 0600) != 0) status = common::ErrnoStatus(errno, temp);
  if (status.ok() && ::fsync(fd.get()) != 0) status = common::ErrnoStatus(errno, temp);
  if (fd.Close() != 0 && status.ok()) status = common::ErrnoStatus(errno, temp);
  if (status.ok() &&
      ::renameat2(AT_FDCWD, temp.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) != 0) {
    status = errno == EEXIST ? absl::AlreadyExistsError(absl::StrCat(path, " exists already"))
                             : common::ErrnoStatus(errno, absl::StrCat("renaming to ", path));
  }
  ::unlink(temp.c_str());  // after a rename: ENOENT, harmless
  if (!status.ok()) return status;
  return SyncDirOf(path);
}

absl::Status ResolveCredential(AgentOptions* options, CoordinatorClient* client,
                               absl::string_view request_id, CallCanceller* canceller) {
  const common::ClientSecurity& security = options->security;
  if (security.insecure || !security.token.empty() || !security.cert_pem.empty()) {
    return absl::OkStatus();
  }
  const std::string path = CredentialPath(options->work_dir);
  const std::string prefix = absl::StrCat("[agent=", options->name, "]");
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) {
    absl::StatusOr<std::string> token = common::ReadTokenFile(path, "the agent's credential");
    if (!token.ok()) return token.status();
    if (!options->enroll_token.empty()) {
      FARM_LOG(INFO) << prefix << " " << path
                     << " holds this agent's credential: the enrollment token is not needed and "
                        "is not used";
    }
    options->security.token = *std::move(token);
    return absl::OkStatus();
  }
  if (errno != ENOENT) return common::ErrnoStatus(errno, path);
  if (options->enroll_token.empty()) return absl::OkStatus();
  absl::StatusOr<farm::v1::EnrollResponse> enrolled =
      EnrollWithRetries(*options, client, request_id, canceller);
  if (!enrolled.ok()) return enrolled.status();
  if (absl::Status s = WriteCredentialFile(path, enrolled->token()); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("enrolled, but the credential could not be saved "
                                               "(ask for a new enrollment token): ",
                                               s.message()));
  }
  FARM_LOG(INFO) << prefix << " enrolled with " << options->coordinator
                 << ": its credential (token " << enrolled->info().id() << ") is in " << path;
  options->security.token = enrolled->token();
  return absl::OkStatus();
}

}  // namespace farm::agent
