// Issue 13's backup and status commands (role admin): `admin backup DIR` (AdminService.Backup)
// and `admin status` (AdminService.GetStatus). Restoring is not a farmctl command: it runs on
// the coordinator's machine, before the coordinator opens its data directory
// (`farm-coordinator --restore_from=DIR --data_dir=NEW`), so there is no running coordinator to
// ask.
#include <grpcpp/client_context.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "common/grpc_status.h"
#include "common/text.h"
#include "coordinator/cli/command_table.h"
#include "coordinator/cli/format.h"
#include "coordinator/cli/session.h"

namespace farm::cli {
namespace {

// A backup links (or copies) every file of the store and the CAS: it may take long on a big
// farm with the backup on another file system. farmctl waits this long for the answer; the
// coordinator finishes a backup whether or not anyone still waits.
constexpr int64_t kBackupDeadlineMs = 24 * 3600'000;

int AdminBackup(Session& session) {
  farm::v1::BackupRequest req;
  req.set_dir(session.options().backup_dir);
  if (absl::Status s = common::ValidateRequestText(req); !s.ok()) return session.Fail(s);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Milliseconds(kBackupDeadlineMs)));
  farm::v1::BackupResponse resp;
  absl::Status status =
      common::FromGrpcStatus(session.client().admin().Backup(&context, req, &resp));
  if (!status.ok()) return session.Fail(status);
  if (session.json()) return session.Print(ToJson(resp));
  return session.Print(absl::StrCat("backup written to ", OneLine(resp.dir()),
                                    " (on the coordinator's machine): ", resp.db_files(),
                                    " store files (", FormatBytes(resp.db_bytes()), "), ",
                                    resp.blobs(), " blobs (", FormatBytes(resp.blob_bytes()), "); ",
                                    resp.linked_files(), " hard links, ", resp.copied_files(),
                                    " copies, in ", FormatElapsed(resp.took_ms()), "\n"));
}

std::string JobCountsText(const farm::v1::GetStatusResponse& s) {
  std::string text;
  int64_t total = 0;
  for (const farm::v1::JobStateCount& c : s.jobs()) {
    absl::StrAppend(&text, text.empty() ? "" : ", ", JobStateName(c.state()), " ", c.count());
    total += c.count();
  }
  return absl::StrCat(total, " (", text, ")");
}

std::string StatusText(const farm::v1::GetStatusResponse& s, const TextContext& context) {
  std::string text = absl::StrCat(
      "farm-coordinator ", OneLine(s.version()), ", up ", FormatElapsed(s.uptime_ms()), " (since ",
      absl::FormatTime("%Y-%m-%d %H:%M %Z", absl::FromUnixMillis(s.started_ms()),
                       context.time_zone),
      ")\n");
  absl::StrAppend(&text, "data dir  ", OneLine(s.data_dir()), ": ", FormatBytes(s.data_dir_bytes()),
                  "; disk ", FormatBytes(s.disk_free_bytes()), " free of ",
                  FormatBytes(s.disk_total_bytes()), "\n");
  absl::StrAppend(&text, "store     ", FormatBytes(s.store_bytes()), ", ",
                  FormatBytes(s.pending_compaction_bytes()), " pending compaction\n");
  absl::StrAppend(&text, "cas       ", s.cas_blobs(), " blobs, ", FormatBytes(s.cas_bytes()),
                  " of ", FormatBytes(s.cas_max_bytes()), "; ", s.cas_uploads(),
                  " uploads open; since start ", s.cas_evicted_blobs(), " evicted, ",
                  s.cas_corrupt_blobs(), " corrupt\n");
  absl::StrAppend(&text, "agents    ", s.agents_online(), " online, ", s.agents_draining(),
                  " draining, ", s.agents_offline(), " offline\n");
  absl::StrAppend(&text, "jobs      ", JobCountsText(s), "\n");
  absl::StrAppend(&text, "store families (keys are estimates):\n");
  absl::StrAppend(
      &text, absl::StrFormat("  %-14s %12s %12s %12s\n", "FAMILY", "KEYS", "LIVE", "IN MEMORY"));
  for (const farm::v1::StoreFamilyStatus& f : s.families()) {
    absl::StrAppend(
        &text, absl::StrFormat("  %-14s %12d %12s %12s\n", OneLine(f.name()), f.estimated_keys(),
                               FormatBytes(f.live_bytes()), FormatBytes(f.memtable_bytes())));
  }
  return text;
}

int AdminStatus(Session& session) {
  absl::StatusOr<farm::v1::GetStatusResponse> resp =
      session.CallOnce(&farm::v1::AdminService::Stub::GetStatus, session.client().admin(),
                       farm::v1::GetStatusRequest());
  if (!resp.ok()) return session.Fail(resp.status());
  if (session.json()) return session.Print(ToJson(*resp));
  return session.Print(StatusText(*resp, session.Context()));
}

}  // namespace

void RegisterAdminBackupCommands(std::vector<CommandDef>& table) {
  table.push_back(
      {"admin backup",
       Command::kAdminBackup,
       {"DIR"},
       false,
       {},
       "DIR",
       "a consistent snapshot of the store and the CAS, taken while the farm serves (role admin)",
       "DIR is a path on the COORDINATOR's machine (absolute), written by the coordinator: it "
       "must not exist, its parent must. Files are hard links where the file system allows "
       "(instant, but sharing the disk with the farm: copy the backup elsewhere to survive a "
       "disk), copies otherwise. The secrets key file is not in it: keep that apart.\nRestore "
       "on the coordinator's machine, into a new data dir: farm-coordinator "
       "--restore_from=DIR --data_dir=NEW ... (it checks every file first, then starts).\n",
       AdminBackup});
  table.push_back({"admin status",
                   Command::kAdminStatus,
                   {},
                   false,
                   {},
                   "",
                   "version, uptime, disk, store and CAS sizes, agents, jobs by state (role admin)",
                   "Cheap to call: counters the coordinator keeps, no scan. The store's keys per "
                   "family are RocksDB's estimates; the job counts are exact.\n",
                   AdminStatus});
}

}  // namespace farm::cli
