// The cas group: a job's artifacts (`artifacts`, `download`) and the content-addressable store
// itself (`cas put`, `cas get`, `cas stat`), through common::CasClient on the coordinator's
// address. Where downloads may write is download.h's business.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/digest.h"
#include "common/job_state.h"
#include "coordinator/cli/command_table.h"
#include "coordinator/cli/download.h"
#include "coordinator/cli/format.h"
#include "coordinator/cli/session.h"

namespace farm::cli {
namespace {

using farm::v1::Job;

// A CAS or file-system error: one line, without "job ... not found" readings of NOT_FOUND.
int FailCas(Session& session, const absl::Status& status) {
  if (status.code() == absl::StatusCode::kUnavailable ||
      status.code() == absl::StatusCode::kDeadlineExceeded ||
      status.code() == absl::StatusCode::kUnimplemented) {
    return session.Fail(status);
  }
  session.io().err << "farmctl: " << OneLine(status.message()) << "\n";
  session.io().err.flush();
  return kExitError;
}

int Artifacts(Session& session) {
  absl::StatusOr<Job> job = session.GetJob(session.options().job_id);
  if (!job.ok()) return session.Fail(job.status(), session.options().job_id);
  return session.Print(session.json() ? FormatArtifactsJson(*job) : FormatArtifactsText(*job));
}

// Fetches `selected` into `dir`; the paths written (as the user would name them) in order.
absl::StatusOr<std::vector<std::string>> FetchArtifacts(
    Session& session, const std::vector<const farm::v1::Artifact*>& selected,
    const std::string& dir) {
  absl::StatusOr<common::BeneathRoot> root = PrepareDirectory(dir);
  if (!root.ok()) return root.status();
  std::vector<std::string> written;
  for (const farm::v1::Artifact* artifact : selected) {
    absl::StatusOr<Target> target = PrepareTarget(*root, dir, artifact->path());
    if (!target.ok()) return target.status();
    absl::StatusOr<common::Digest> digest = common::MakeDigest(artifact->hash(), artifact->size());
    if (!digest.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          artifact->path(), ": the job records a bad digest: ", digest.status().message()));
    }
    const absl::Status fetched =
        session.cas().DownloadAt(*digest, target->dir.get(), target->name,
                                 JoinPath(dir, artifact->path()), artifact->executable());
    if (!fetched.ok()) {
      return absl::Status(fetched.code(), absl::StrCat(artifact->path(), ": ", fetched.message()));
    }
    written.push_back(dir == "." ? artifact->path() : JoinPath(dir, artifact->path()));
    if (!session.json()) session.io().out << written.back() << "\n";
  }
  return written;
}

std::string DownloadJson(const Job& job, const std::string& dir,
                         const std::vector<const farm::v1::Artifact*>& selected) {
  std::vector<std::string> items;
  for (const farm::v1::Artifact* artifact : selected) items.push_back(JsonValue(*artifact));
  return JsonObject({{"job_id", JsonString(job.id())},
                     {"dir", JsonString(dir)},
                     {"artifacts", absl::StrCat("[", absl::StrJoin(items, ", "), "]")}});
}

int Download(Session& session) {
  const CliOptions& options = session.options();
  CliIo& io = session.io();
  absl::StatusOr<Job> job = session.GetJob(options.job_id);
  if (!job.ok()) return session.Fail(job.status(), options.job_id);
  const std::string dir = options.output_path.empty() ? "." : options.output_path;
  if (!common::IsTerminal(job->state())) {
    io.err << "farmctl: job " << job->id() << " is " << JobStateName(job->state())
           << "; its artifacts are recorded when it ends (farmctl wait " << job->id() << ")\n";
    return kExitError;
  }
  absl::StatusOr<std::vector<const farm::v1::Artifact*>> selected =
      SelectArtifacts(*job, options.paths);
  if (!selected.ok()) return FailCas(session, selected.status());
  if (selected->empty()) {
    io.err << "farmctl: " << FormatArtifactsText(*job);
    if (session.json()) session.Print(DownloadJson(*job, dir, {}));
    return kExitSucceeded;
  }
  absl::StatusOr<std::vector<std::string>> written = FetchArtifacts(session, *selected, dir);
  if (!written.ok()) return FailCas(session, written.status());
  if (session.json()) return session.Print(DownloadJson(*job, dir, *selected));
  int64_t bytes = 0;
  for (const farm::v1::Artifact* artifact : *selected) bytes += artifact->size();
  io.out.flush();
  io.err << "downloaded " << written->size() << (written->size() == 1 ? " file" : " files") << " ("
         << FormatBytes(bytes) << ") of job " << job->id() << " into " << dir
         << ", digests verified\n";
  io.err.flush();
  return kExitSucceeded;
}

int CasPut(Session& session) {
  const std::string& file = session.options().file;
  absl::StatusOr<common::Digest> digest = common::DigestFile(file);
  if (!digest.ok()) return FailCas(session, digest.status());
  absl::StatusOr<bool> present = session.cas().Stat(*digest);
  if (!present.ok()) return FailCas(session, present.status());
  if (!*present) {
    if (absl::Status s = session.cas().UploadFile(file, *digest); !s.ok()) {
      return FailCas(session, s);
    }
  }
  if (session.json()) {
    return session.Print(JsonObject({{"digest", JsonString(digest->ToString())},
                                     {"hash", JsonString(digest->hash)},
                                     {"size", absl::StrCat(digest->size)},
                                     {"uploaded", *present ? "false" : "true"}}));
  }
  return session.Print(absl::StrCat(digest->ToString(), "\n"));
}

int CasGet(Session& session) {
  const std::string& path = session.options().output_path;
  absl::StatusOr<common::Digest> digest = common::ParseDigest(session.options().digest);
  if (!digest.ok()) return FailCas(session, digest.status());
  if (absl::Status s = session.cas().Download(*digest, path); !s.ok()) return FailCas(session, s);
  if (session.json()) {
    return session.Print(JsonObject({{"digest", JsonString(digest->ToString())},
                                     {"path", JsonString(path)},
                                     {"size", absl::StrCat(digest->size)}}));
  }
  session.io().err << "wrote " << path << " (" << FormatBytes(digest->size)
                   << "), digest verified\n";
  session.io().err.flush();
  return kExitSucceeded;
}

int CasStat(Session& session) {
  absl::StatusOr<common::Digest> digest = common::ParseDigest(session.options().digest);
  if (!digest.ok()) return FailCas(session, digest.status());
  absl::StatusOr<bool> present = session.cas().Stat(*digest);
  if (!present.ok()) return FailCas(session, present.status());
  if (session.json()) {
    session.Print(JsonObject(
        {{"digest", JsonString(digest->ToString())}, {"present", *present ? "true" : "false"}}));
  } else {
    session.Print(absl::StrCat(digest->ToString(), *present ? " present\n" : " missing\n"));
  }
  return *present ? kExitSucceeded : kExitBlobMissing;
}

}  // namespace

void RegisterCasCommands(std::vector<CommandDef>& table) {
  constexpr absl::string_view kJobIds =
      "JOB is a job's id; `farmctl get pN` shows the ids of a pipeline's jobs.\n";
  table.push_back({"artifacts",
                   Command::kArtifacts,
                   {"JOB"},
                   false,
                   {},
                   "JOB",
                   "a job's artifacts: path, size, executable bit, digest",
                   kJobIds,
                   Artifacts});
  table.push_back({"download",
                   Command::kDownload,
                   {"JOB"},
                   true,
                   {"o"},
                   "JOB [PATH...] [-o DIR]",
                   "fetch a job's artifacts (all, or the PATHs) into DIR, verifying digests",
                   kJobIds,
                   Download});
  table.push_back({"cas put",
                   Command::kCasPut,
                   {"FILE"},
                   false,
                   {},
                   "FILE",
                   "store a file in the CAS; prints its HASH/SIZE",
                   "",
                   CasPut});
  table.push_back({"cas get",
                   Command::kCasGet,
                   {"HASH/SIZE"},
                   false,
                   {"o"},
                   "HASH/SIZE -o FILE",
                   "fetch a blob from the CAS into FILE, verified",
                   "",
                   CasGet});
  table.push_back({"cas stat",
                   Command::kCasStat,
                   {"HASH/SIZE"},
                   false,
                   {},
                   "HASH/SIZE",
                   "whether the CAS has a blob: exit 0 present, 1 missing",
                   "",
                   CasStat});
}

}  // namespace farm::cli
